"""The Assistant: question + permitted hits -> an Answer whose every sentence carries a verified citation.

With an LLM the model writes the answer from numbered passages and `grounding` keeps only the sentences
that cite a passage; any failure (timeout, 429, 5xx, a malformed or uncited reply) falls back to the
offline extractive answer with a note. Without one, the extractive answerer is the answer.
"""

from __future__ import annotations

import copy
import logging
import re
import time
import uuid
from dataclasses import replace
from typing import Any, Generator, Iterator, Sequence

from assistant import prompts
from assistant.extractive import (MAX_QUOTE, ExtractiveConfig, confidence, context_span, display, extend, quote_of,
                                  overlaps, score_question, select, supporting)
from assistant.grounding import ground, is_instruction
from assistant.llm import LLM, USAGE_KEYS, Completion, LLMError
from assistant.types import Answer, Citation
from ingest.embedders import Embedder
from ingest.errors import ConfigError, InvalidInput
from ingest.keywords import STOPWORDS, query_terms
from retriever.search import Retriever
from ingest.access import Filters, Principal
from retriever.types import Hit

log = logging.getLogger(__name__)
NO_EVIDENCE = ("The knowledge base does not cover this question, so Lore will not guess. "
               "The closest sources are listed below; check them or ask the document owners.")
EXTRACTIVE = "extractive-v1"
_FOLLOW_UP = re.compile(r"^\s*(and|or|but|also|what about|how about|what if|same for|and for|and what)\b", re.I)
_PRONOUN = re.compile(r"\b(it|its|they|them|their|that|those|this|these|there)\b", re.I)
MAX_STANDALONE = 300


def _previous_question(history: Sequence[dict] | None) -> str:
    return next((t.get("content", "") for t in reversed(history or ()) if t.get("role") == "user"), "")


def is_follow_up(question: str) -> bool:
    words = question.split()
    return bool(_FOLLOW_UP.match(question) or len(words) <= 4 or (len(words) <= 8 and _PRONOUN.search(question)))


def focus_question(question: str, history: Sequence[dict] | None) -> str:
    """What the answer's sentences are scored against: a follow-up's own words first, then the topic
    words of the question before it that it leaves out ("do I need to have worked there a while to
    qualify? (parental leave sourcegraph)"), so the earlier question finds the documents and the
    follow-up picks the sentence."""
    prev = _previous_question(history)
    if not prev or not is_follow_up(question):
        return question
    own = set(query_terms(question))
    words = [w.lower() for w in re.findall(r"[^\W_]+", prev)]
    # "and what about sick leave?" after "... annual leave ...": "annual" is replaced, not kept
    replaced = {a for a, b in zip(words, words[1:]) if b in own and _replaced(a, own)}
    topic = [t for t in query_terms(prev) if t not in own and t not in replaced]
    return f"{question} ({' '.join(topic)})" if topic else question


def resolve_follow_up(question: str, history: Sequence[dict] | None) -> str:
    """Offline heuristic: a short or referring follow-up is searched together with the previous question.

    "and for contractors?" after "how much PTO do employees get?" searches for both. A question of
    more than eight words that does not start with a connective stands on its own.
    """
    prev = _previous_question(history)
    if not prev or not is_follow_up(question):
        return question
    own = set(query_terms(question))
    words = list(re.finditer(r"[^\W_]+", prev))
    drop = [m for m, n in zip(words, words[1:]) if n.group(0).lower() in own and _replaced(m.group(0).lower(), own)]
    for m in reversed(drop):  # "annual leave" when the follow-up asks about "sick leave"
        prev = prev[:m.start()] + prev[m.end():].lstrip(" ")
    return f"{prev} {question}"


def _replaced(word: str, own: set[str]) -> bool:
    return word.isalpha() and word not in own and word not in STOPWORDS


class _Run:
    """What one request gathers besides the answer: notes, token usage, the condense prompt if used."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.usage: dict[str, int] = {}
        self.prompts: dict[str, str] = {}
        self.fallback: str | None = None
        self.focus = ""

    def add_usage(self, c: Completion) -> None:
        for k in USAGE_KEYS:
            if k in c.usage:
                self.usage[k] = self.usage.get(k, 0) + c.usage[k]


class Assistant:
    """`Assistant(retriever, embedder).answer("How many PTO days carry over?", Principal("ana"))`.

    With `llm=OpenAIChatLLM(...)` the model writes the answer from the top `llm_passages` hits.
    """

    def __init__(self, retriever: Retriever, embedder: Embedder, *, config: ExtractiveConfig | None = None,
                 top_k: int = 8, llm: LLM | None = None, prompt_version: str = "v1", llm_passages: int = 6,
                 condense: bool = True) -> None:
        if top_k < 1:
            raise ConfigError(f"assistant top_k must be at least 1, got {top_k}")
        if llm_passages < 1:
            raise ConfigError(f"assistant llm_passages must be at least 1, got {llm_passages}")
        self.retriever, self.embedder = retriever, embedder
        self.config = config or ExtractiveConfig()
        self.top_k, self.llm, self.llm_passages = top_k, llm, llm_passages
        self.answer_prompt = prompts.load("answer", prompt_version) if llm else None
        self.condense_prompt = prompts.load("condense", prompt_version) if llm and condense else None

    def reconfigured(self, **changes: Any) -> "Assistant":
        """A sibling answering with `changes` applied to the extractive config (e.g. `threshold=`), sharing
        this one's retriever, embedder and LLM; this assistant is left as it was."""
        sibling = copy.copy(self)
        sibling.config = replace(self.config, **changes)
        return sibling

    @property
    def models(self) -> dict:
        m = {"embedder": self.embedder.model_id, "answerer": "llm" if self.llm else EXTRACTIVE}
        if self.retriever.reranker is not None:
            m["reranker"] = self.retriever.reranker.model_id
        if self.llm is not None and self.answer_prompt is not None:
            m["llm"] = self.llm.model_id
            m["prompt"] = self.answer_prompt.id
        return m

    def answer(self, question: str, principal: Principal, filters: Filters | None = None,
               history: Sequence[dict] | None = None) -> Answer:
        *_, final = self._run(_checked(question), principal, filters, history, streaming=False)
        assert isinstance(final, Answer)  # noqa: S101 - _run ends with the Answer, after any text
        return final

    def stream(self, question: str, principal: Principal, filters: Filters | None = None,
               history: Sequence[dict] | None = None) -> Iterator[str | Answer]:
        """Text deltas as they are written, then the validated Answer as the last item.

        The deltas are the model's raw text: markers that validation removes, or a fallback after a
        failure mid-stream, show only in the final Answer, which is authoritative.
        """
        return self._run(_checked(question), principal, filters, history, streaming=True)

    # -- the request -----------------------------------------------------------------------------
    def _run(self, question: str, principal: Principal, filters: Filters | None, history: Sequence[dict] | None,
             streaming: bool) -> Iterator[str | Answer]:
        trace_id, run = uuid.uuid4().hex, _Run()
        t0 = time.perf_counter()
        query = self._standalone(question, history, run)
        # sentences are scored against the model's standalone question, else the follow-up's own words
        run.focus = query if query != resolve_follow_up(question, history) else focus_question(question, history)
        hits = list(self.retriever.search(query, principal, filters, self.top_k).hits)
        t1 = time.perf_counter()
        if self.llm is None or not hits:
            answer = self._extractive(question, run.focus, hits, trace_id, query)
            if streaming:
                yield from _deltas(answer.text)
        else:
            answer = yield from self._generate(question, query, hits, trace_id, run, streaming)
        t2 = time.perf_counter()
        timings = {"retrieve_ms": round((t1 - t0) * 1000, 2), "answer_ms": round((t2 - t1) * 1000, 2),
                   "total_ms": round((t2 - t0) * 1000, 2)}
        models = {**answer.models, **run.prompts}
        log.info("answer %s status=%s citations=%d conf=%.3f model=%s tokens=%s latency_ms=%.0f fallback=%s",
                 trace_id, answer.status, len(answer.citations), answer.confidence, models.get("llm", "-"),
                 run.usage.get("total_tokens", "-"), timings["total_ms"], run.fallback or "-")
        yield replace(answer, timings_ms=timings, models=models, notes=tuple(run.notes), usage=dict(run.usage))

    def _standalone(self, question: str, history: Sequence[dict] | None, run: _Run) -> str:
        """The follow-up as a standalone question: condensed by the LLM when there is one, else the heuristic."""
        llm, prompt = self.llm, self.condense_prompt
        if not history or llm is None or prompt is None:
            return resolve_follow_up(question, history)
        turns = prompts.conversation_block(history)
        if not turns:
            return question
        run.prompts["condense_prompt"] = prompt.id
        try:
            done = llm.complete(prompt.messages(history=turns, question=question))
        except LLMError as exc:
            run.notes.append(f"follow-up not condensed (llm {exc.reason}); searched with the offline heuristic")
            return resolve_follow_up(question, history)
        run.add_usage(done)
        line = next((ln.strip() for ln in done.text.splitlines() if ln.strip()), "")
        line = re.sub(r"^(standalone question:\s*)", "", line, flags=re.I).strip(" \"'`")
        if not line or len(line) > MAX_STANDALONE:
            run.notes.append("follow-up condensation gave no usable question; searched with the offline heuristic")
            return resolve_follow_up(question, history)
        log.debug("answer follow-up condensed (%d chars)", len(line))
        return line

    def _generate(self, question: str, query: str, hits: list[Hit], trace_id: str, run: _Run,
                  streaming: bool) -> Generator[str, None, Answer]:
        llm, prompt = self.llm, self.answer_prompt
        assert llm is not None and prompt is not None  # noqa: S101 - only called when an LLM is configured
        passages = hits[:self.llm_passages]
        messages = prompt.messages(passages=prompts.passages_block(passages), question=query,
                                               no_evidence=prompts.NO_EVIDENCE_SENTINEL)
        streamed = False
        try:
            if streaming:
                done = None
                for item in llm.stream(messages):
                    if isinstance(item, Completion):
                        done = item
                    else:
                        streamed = True
                        yield item
                if done is None:
                    raise LLMError("malformed", "the stream ended without a completion")
            else:
                done = llm.complete(messages)
        except LLMError as exc:
            return (yield from self._fall_back(question, query, hits, trace_id, run, exc.reason,
                                               f"llm {exc.reason}", streaming and not streamed))
        run.add_usage(done)
        if done.finish_reason == "length":
            run.notes.append("the model's answer was cut off at max_tokens")
        g = ground(done.text, passages, self.embedder)
        if g.bad_markers:
            run.notes.append(f"removed citation markers naming no passage: {sorted(set(g.bad_markers))}")
        run.notes.extend(f"dropped sentence without a valid citation: {s[:200]}" for s in g.dropped)
        run.notes.extend(f"dropped sentence resting on an instruction inside a passage: {s[:200]}" for s in g.injected)
        run.notes.extend(f"dropped sentence whose figures or names its passages do not hold: {s[:200]}"
                         for s in g.unsupported)
        if g.no_evidence:
            return Answer(question, NO_EVIDENCE, "no_evidence", (), tuple(hits[:5]), {}, self.models, trace_id)
        if not g.citations:
            return (yield from self._fall_back(question, query, hits, trace_id, run, "ungrounded",
                                               "no sentence of the model's answer kept a valid citation",
                                               streaming and not streamed))
        # an LLM answer's confidence: the share of the model's sentences that kept a valid citation
        grounded_share = g.kept / (g.kept + len(g.dropped) + len(g.injected) + len(g.unsupported))
        return Answer(question, g.text, "answered", g.citations, tuple(hits), {}, self.models, trace_id,
                      grounded_share)

    def _fall_back(self, question: str, query: str, hits: list[Hit], trace_id: str, run: _Run, reason: str,
                   why: str, send_text: bool) -> Generator[str, None, Answer]:
        run.fallback = reason
        run.notes.append(f"{why}; showing the extractive answer instead")
        answer = self._extractive(question, run.focus, hits, trace_id, query)
        if send_text:
            yield from _deltas(answer.text)
        return answer

    def _extractive(self, question: str, query: str, hits: list[Hit], trace_id: str, standalone: str = "") -> Answer:
        """`query`: what sentences are scored against (a follow-up's own words first); `standalone`: the
        follow-up joined to the question before it, whose evidence also counts for confidence."""
        scored, tops = score_question(query, hits, self.embedder, self.config)
        scored = [s for s in scored if not is_instruction(s.unit.text)]
        tops = [s for s in tops if not is_instruction(s.unit.text)]
        conf = confidence(scored, query, self.config, hits)
        if standalone and standalone != query and hits and conf < self.config.threshold:
            whole = [s for s in score_question(standalone, hits, self.embedder, self.config)[0]
                     if not is_instruction(s.unit.text)]
            conf = max(conf, confidence(whole, standalone, self.config, hits))
        models = {**self.models, "answerer": EXTRACTIVE}
        if not hits or conf < self.config.threshold:
            return Answer(question, NO_EVIDENCE, "no_evidence", (), tuple(hits[:5]), {}, models, trace_id, conf)
        chosen = extend(select(scored, self.config, query, tops), hits, query, self.config)
        markers: dict[int, int] = {}
        spans: list[list] = []  # [hit index, start, end] of each citation's quote in its passage
        parts = []
        for s in chosen:
            hit = hits[s.hit_index]
            m = markers.setdefault(s.hit_index, len(markers) + 1)
            near = [o.unit for o in scored[:8] if o.hit_index == s.hit_index and o.unit != s.unit][:2]
            lo, hi = context_span(hit.chunk.text, s.unit, near=near)
            same = next((sp for sp in spans if sp[0] == s.hit_index and sp[1] < hi and lo < sp[2]), None)
            if same is None:
                spans.append([s.hit_index, lo, hi])
            elif max(hi, same[2]) - min(lo, same[1]) <= MAX_QUOTE:
                same[1:] = [min(lo, same[1]), max(hi, same[2])]  # neighbours: one quote shows both
            else:  # too long for one quote: two, the earlier one cut back where this unit starts
                same[1:] = _cut_back(hit.chunk.text, same[1], same[2], s.unit)
                spans.append([s.hit_index, s.unit.start, s.unit.start + len(quote_of(s.unit))])
            parts.append(f"{display(s.unit.text)} [{m}]")
        for s in supporting(scored, hits, chosen[0].hit_index, spans, self.config):
            markers.setdefault(s.hit_index, len(markers) + 1)
            lo, hi = context_span(hits[s.hit_index].chunk.text, s.unit)
            if overlaps(spans, s.hit_index, lo, hi):  # keep a passage's quotes apart
                lo, hi = s.unit.start, s.unit.start + len(quote_of(s.unit))
            spans.append([s.hit_index, lo, hi])
        cites = tuple(Citation.from_hit(markers[i], hits[i], hits[i].chunk.text[lo:hi]) for i, lo, hi in spans)
        return Answer(question, " ".join(parts), "extractive", cites, tuple(hits), {}, models, trace_id, conf)


def _cut_back(text: str, lo: int, hi: int, unit) -> list[int]:
    """The span [lo, hi) without `unit` and whatever lies past it, whitespace trimmed at both ends."""
    if lo < unit.start:
        hi = min(hi, unit.start)
    else:
        lo = max(lo, unit.end)
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    while lo < hi and text[lo].isspace():
        lo += 1
    return [lo, hi]


def _checked(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInput("the question is empty; ask something the knowledge base might answer")
    return question.strip()


def _deltas(text: str) -> Iterator[str]:
    """A finished text as word-sized deltas, the way a model would stream it."""
    yield from re.findall(r"\S+\s*|\s+", text)
