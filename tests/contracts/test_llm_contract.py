"""The LLM contract (assistant/llm.py), run against every implementation: the scripted offline model, the
OpenAI-compatible client against a server speaking OpenAI's wire protocol, and llama.cpp over the real
SmolLM2 GGUF file. What the Assistant relies on (assistant/service.py): `complete` returns a `Completion`,
`stream` yields str deltas then that `Completion` last, usage under USAGE_KEYS, `max_tokens` honoured, and
every failure an `LLMError` whose reason is one the Assistant can record."""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import pytest

from assistant.gguf import GgufLLM
from assistant.llm import LLM, USAGE_KEYS, Completion, LLMError, OpenAIChatLLM, ScriptedLLM
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.models import smollm2

MAX_TOKENS = 12
REASONS = {"timeout", "rate_limited", "server_error", "connection", "refused", "malformed", "unexpected"}
ASK = [{"role": "system", "content": "Answer in one short sentence."},
       {"role": "user", "content": "What colour is the sky on a clear day?"}]
LONG = [{"role": "user", "content": "Count from one to one hundred in words, separated by commas."}]
REPLY = "The sky is blue on a clear day, because air scatters blue light the most."


@dataclasses.dataclass
class Case:
    llm: LLM
    next_reply: Callable[[str], None]  # what a scripted model says next (a real model ignores it)
    failing: Callable[[], tuple[LLM, list[dict], set[str]]]  # a model, messages it fails on, the reasons allowed
    sent_max_tokens: Callable[[], int | None]  # the limit the model was last asked for, where it is visible


def _scripted() -> Iterator[Case]:
    llm = ScriptedLLM([REPLY])
    bad = ScriptedLLM([LLMError("timeout", "no reply in 30 s; raise LORE_LLM__TIMEOUT")])
    yield Case(llm, lambda text: None, lambda: (bad, ASK, {"timeout"}), lambda: None)


def _openai(server: FakeOpenAI) -> Iterator[Case]:
    llm = OpenAIChatLLM(server.base_url, "fake-gpt", api_key="sk-contract", max_retries=0, timeout=5.0,
                        max_tokens=MAX_TOKENS)

    def fail():
        server.script(Reply(status=401))
        return llm, ASK, {"refused"}

    def sent() -> int | None:
        return server.chat_requests[-1].body["max_tokens"]

    server.reset()
    yield Case(llm, lambda text: server.script(text), fail, sent)
    server.reset()


def _gguf(model: GgufLLM) -> Iterator[Case]:
    too_long = [{"role": "user", "content": "word " * 2000}]  # more tokens than the context holds
    yield Case(model, lambda text: None, lambda: (model, too_long, {"refused"}), lambda: model.max_tokens)


@pytest.fixture(scope="module")
def openai_server():
    s = FakeOpenAI().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gguf_model() -> GgufLLM:
    """One load of the real model for the module: small context, few tokens (two shared cores)."""
    return GgufLLM(smollm2(), n_ctx=512, threads=2, max_tokens=MAX_TOKENS)


@pytest.fixture(params=["scripted", "openai", "gguf"])
def case(request) -> Iterator[Case]:
    if request.param == "scripted":
        yield from _scripted()
    elif request.param == "openai":
        yield from _openai(request.getfixturevalue("openai_server"))
    else:
        yield from _gguf(request.getfixturevalue("gguf_model"))


def _check_completion(done: Completion, llm: LLM) -> None:
    assert isinstance(done, Completion) and isinstance(done.text, str) and done.text.strip()
    assert done.model == llm.model_id
    assert set(done.usage) == set(USAGE_KEYS) and all(isinstance(v, int) and v >= 0 for v in done.usage.values())
    assert done.usage["total_tokens"] == done.usage["prompt_tokens"] + done.usage["completion_tokens"]
    assert done.usage["prompt_tokens"] > 0 and done.usage["completion_tokens"] > 0
    assert done.finish_reason in ("stop", "length")


def test_model_id_names_the_model(case):
    assert isinstance(case.llm.model_id, str) and case.llm.model_id.strip()


def test_complete_returns_a_whole_completion(case):
    case.next_reply(REPLY)
    messages = [dict(m) for m in ASK]
    done = case.llm.complete(messages)
    _check_completion(done, case.llm)
    assert messages == ASK  # the caller's messages are not changed


def test_stream_yields_str_deltas_then_the_completion_last(case):
    case.next_reply(REPLY)
    items = list(case.llm.stream(ASK))
    deltas, final = items[:-1], items[-1]
    assert deltas and all(isinstance(d, str) and d for d in deltas)
    _check_completion(final, case.llm)
    assert "".join(deltas) == final.text


def test_max_tokens_is_honoured(case):
    case.next_reply("one, two, three, four, five")
    done = case.llm.complete(LONG)
    sent = case.sent_max_tokens()
    if sent is not None:
        assert sent == MAX_TOKENS
        assert done.usage["completion_tokens"] <= MAX_TOKENS
    if done.finish_reason == "length":
        assert done.usage["completion_tokens"] == sent


def test_a_failure_is_an_llm_error_naming_its_reason(case):
    llm, messages, reasons = case.failing()
    with pytest.raises(LLMError) as complete:
        llm.complete(messages)
    assert complete.value.reason in REASONS and complete.value.reason in reasons
    assert str(complete.value).startswith(f"LLM {complete.value.reason}: ") and len(str(complete.value)) > 12
    llm, messages, reasons = case.failing()
    with pytest.raises(LLMError) as streamed:
        list(llm.stream(messages))
    assert streamed.value.reason in reasons


def test_it_still_answers_after_a_failure(case):
    llm, messages, _ = case.failing()
    with pytest.raises(LLMError):
        llm.complete(messages)
    if llm is case.llm:
        case.next_reply(REPLY)
        _check_completion(case.llm.complete(ASK), case.llm)
