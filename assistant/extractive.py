"""The offline answerer: picks the sentences that answer the question from the top passages.

Each candidate sentence is scored by the embedder (cosine to the question) and by lexical overlap
with the question's content words, plus a prior from its passage's retrieval rank. The best few
become the answer verbatim, so numbers, dates and limits stay exactly as written, each with its
citation. Evidence too weak for the calibrated threshold means `no_evidence`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from assistant.sentences import Unit, split_units
from ingest.embedders import Embedder
from ingest.keywords import query_terms
from retriever.types import Hit

_SUFFIX = re.compile(r"(?:ations?|ingly|ings?|edly|ies|ied|ment|ness|able|ible|ers?|est|ed|es|ly|s)$")
MAX_QUOTE = 400
MAX_WORDS = 120


def stem(word: str) -> str:
    w = word.lower()
    return _SUFFIX.sub("", w) if len(w) > 4 else w


def _terms(text: str) -> set[str]:
    return {stem(t) for t in query_terms(text)}


@dataclass(frozen=True, slots=True)
class Scored:
    hit_index: int
    unit: Unit
    score: float
    semantic: float
    lexical: float


@dataclass(frozen=True, slots=True)
class ExtractiveConfig:
    passages: int = 4  # top hits whose sentences are candidates
    max_sentences: int = 3
    semantic_weight: float = 0.55
    lexical_weight: float = 0.30
    prior_weight: float = 0.15
    keep_ratio: float = 0.85  # further sentences must score within this share of the best
    threshold: float = 0.42  # calibrated: `lore eval calibrate` (docs/benchmarks.md)


def _quote(text: str) -> str:
    """The unit itself, or its first MAX_QUOTE characters cut at a word (still an exact substring)."""
    if len(text) <= MAX_QUOTE:
        return text
    cut = text.rfind(" ", 0, MAX_QUOTE)
    return text[:cut if cut > 0 else MAX_QUOTE]


def score_units(question: str, hits: Sequence[Hit], embedder: Embedder, cfg: ExtractiveConfig) -> list[Scored]:
    qterms = _terms(question)
    cands: list[tuple[int, Unit]] = []
    for i, h in enumerate(hits[:cfg.passages]):
        for u in split_units(h.chunk.text):
            if u.kind not in ("heading", "header") and len(u.text) >= 8:
                cands.append((i, u))
    if not cands:
        return []
    heads = [" > ".join(hits[i].chunk.section[-1:]) for i, _ in cands]
    vecs = embedder.embed_documents([_unit_text(hd, u) for hd, (_, u) in zip(heads, cands)])
    q = embedder.embed_query(question)
    sem = vecs @ q
    out = []
    for (i, u), s, hd in zip(cands, sem, heads):
        uterms = _terms(u.text) | _terms(hd) | _terms(u.context)
        lex = len(qterms & uterms) / len(qterms) if qterms else 0.0
        prior = 1.0 / math.sqrt(i + 1)
        total = cfg.semantic_weight * float(s) + cfg.lexical_weight * lex + cfg.prior_weight * prior
        out.append(Scored(i, u, total, float(s), lex))
    out.sort(key=lambda x: -x.score)
    return out


def _unit_text(heading: str, u: Unit) -> str:
    """What the embedder sees for a unit: its section heading, and a table row's header."""
    body = f"{u.context}\n{u.text}" if u.context else u.text
    return f"{heading}: {body}" if heading else body


def select(scored: list[Scored], cfg: ExtractiveConfig) -> list[Scored]:
    """The best sentence, then up to `max_sentences` close seconds that add something new."""
    if not scored:
        return []
    best = scored[0]
    chosen = [best]
    words = len(best.unit.text.split())
    for s in scored[1:]:
        if len(chosen) >= cfg.max_sentences or s.score < cfg.keep_ratio * best.score:
            break
        w = len(s.unit.text.split())
        if words + w > MAX_WORDS:
            continue
        if any(_overlap(s.unit.text, c.unit.text) > 0.6 for c in chosen):
            continue
        chosen.append(s)
        words += w
    # reading order within a passage, passages in rank order: the answer reads naturally
    return sorted(chosen, key=lambda s: (s.hit_index, s.unit.start))


def _overlap(a: str, b: str) -> float:
    ta, tb = _terms(a), _terms(b)
    return len(ta & tb) / max(1, min(len(ta), len(tb)))


def confidence(scored: list[Scored]) -> float:
    return scored[0].score if scored else 0.0


def quote_of(unit: Unit) -> str:
    return _quote(unit.text)

