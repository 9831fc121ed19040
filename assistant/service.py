"""The Assistant: question + permitted hits -> an Answer whose every sentence carries a verified citation."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Sequence

from assistant.extractive import ExtractiveConfig, confidence, quote_of, score_units, select
from assistant.types import Answer, Citation
from ingest.embedders import Embedder
from ingest.errors import ConfigError
from retriever.search import Retriever
from retriever.types import Filters, Hit, Principal

log = logging.getLogger(__name__)
NO_EVIDENCE = ("The knowledge base does not cover this question, so Lore will not guess. "
               "The closest sources are listed below; check them or ask the document owners.")
_FOLLOW_UP = re.compile(r"^\s*(and|or|but|also|what about|how about|what if|same for|and for|and what)\b", re.I)
_PRONOUN = re.compile(r"\b(it|its|they|them|their|that|those|this|these|there)\b", re.I)


def resolve_follow_up(question: str, history: Sequence[dict] | None) -> str:
    """Offline heuristic: a short or referring follow-up is searched together with the previous question.

    "and for contractors?" after "how much PTO do employees get?" searches for both. A question of
    more than eight words that does not start with a connective stands on its own.
    """
    if not history:
        return question
    prev = next((t.get("content", "") for t in reversed(history) if t.get("role") == "user"), "")
    if not prev:
        return question
    words = question.split()
    if _FOLLOW_UP.match(question) or len(words) <= 4 or (len(words) <= 8 and _PRONOUN.search(question)):
        return f"{prev} {question}"
    return question


class Assistant:
    """`Assistant(retriever, embedder).answer("How many PTO days carry over?", Principal("ana"))`."""

    def __init__(self, retriever: Retriever, embedder: Embedder, *, config: ExtractiveConfig | None = None,
                 top_k: int = 8) -> None:
        if top_k < 1:
            raise ConfigError(f"assistant top_k must be at least 1, got {top_k}")
        self.retriever, self.embedder = retriever, embedder
        self.config = config or ExtractiveConfig()
        self.top_k = top_k

    @property
    def models(self) -> dict:
        m = {"embedder": self.embedder.model_id, "answerer": "extractive-v1"}
        if self.retriever.reranker is not None:
            m["reranker"] = self.retriever.reranker.model_id
        return m

    def answer(self, question: str, principal: Principal, filters: Filters | None = None,
               history: Sequence[dict] | None = None) -> Answer:
        if not isinstance(question, str) or not question.strip():
            raise ConfigError("the question is empty; ask something the knowledge base might answer")
        trace_id = uuid.uuid4().hex
        t0 = time.perf_counter()
        query = resolve_follow_up(question.strip(), history)
        hits = list(self.retriever.search(query, principal, filters, self.top_k).hits)
        t1 = time.perf_counter()
        answer = self._extractive(question.strip(), query, hits, trace_id)
        t2 = time.perf_counter()
        timings = {"retrieve_ms": round((t1 - t0) * 1000, 2), "answer_ms": round((t2 - t1) * 1000, 2),
                   "total_ms": round((t2 - t0) * 1000, 2)}
        log.info("answer %s status=%s citations=%d conf=%.3f", trace_id, answer.status, len(answer.citations),
                 answer.confidence)
        return _with(answer, timings_ms=timings)

    def _extractive(self, question: str, query: str, hits: list[Hit], trace_id: str) -> Answer:
        scored = score_units(query, hits, self.embedder, self.config)
        conf = confidence(scored)
        if not hits or conf < self.config.threshold:
            return Answer(question, NO_EVIDENCE, "no_evidence", (), tuple(hits[:5]), {}, self.models, trace_id, conf)
        chosen = select(scored, self.config)
        markers: dict[int, int] = {}
        parts, cites = [], []
        for s in chosen:
            hit = hits[s.hit_index]
            if s.hit_index not in markers:
                markers[s.hit_index] = len(markers) + 1
            m = markers[s.hit_index]
            quote = quote_of(s.unit)
            cites.append(Citation.from_hit(m, hit, quote))
            parts.append(f"{' '.join(quote.split())} [{m}]")
        return Answer(question, " ".join(parts), "extractive", tuple(cites), tuple(hits), {}, self.models,
                      trace_id, conf)


def _with(a: Answer, **kw) -> Answer:
    from dataclasses import replace

    return replace(a, **kw)
