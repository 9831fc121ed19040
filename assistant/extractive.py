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
    max_sentences: int = 5  # and at most MAX_WORDS words in all
    semantic_weight: float = 0.55
    lexical_weight: float = 0.30
    prior_weight: float = 0.15
    keep_ratio: float = 0.75  # further sentences must score within this share of the best
    threshold: float = 0.42  # calibrated: `lore eval calibrate` (docs/benchmarks.md)
    idf_lexical: bool = True  # weigh question terms by their rarity among the candidate sentences
    number_boost: float = 0.05  # added when the question asks how long/many/much... and the unit has a figure
    coverage_weight: float = 0.1  # selection: reward for question terms the answer does not cover yet
    extend_next: bool = True  # quote the next sentence too when it holds the figure the question asks for


def _quote(text: str) -> str:
    """The unit itself, or its first MAX_QUOTE characters cut at a word (still an exact substring)."""
    if len(text) <= MAX_QUOTE:
        return text
    cut = text.rfind(" ", 0, MAX_QUOTE)
    return text[:cut if cut > 0 else MAX_QUOTE]


_QUANTITY = re.compile(r"\b(how (long|many|much|often|soon|fast|quickly|big|large|old)|what (time|date|day|year|"
                       r"version|percentage|fraction|amount|limit|number|size|window)|when|which version|"
                       r"deadline|minimum|maximum|max|min|limit|cost|price|rate)\b", re.I)
_FIGURE = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|"
                     r"hundred|thousand|million|half|quarter|daily|weekly|monthly|annually|yearly)\b", re.I)


def asks_quantity(question: str) -> bool:
    return bool(_QUANTITY.search(question))


def has_figure(text: str) -> bool:
    return bool(_FIGURE.search(text))


def term_weights(qterms: set[str], unit_terms: Sequence[set[str]], idf: bool) -> dict[str, float]:
    """Each question term's weight: 1, or its rarity among the candidate sentences (rare terms decide)."""
    if not idf or not unit_terms:
        return {t: 1.0 for t in qterms}
    n = len(unit_terms)
    return {t: math.log(1.0 + n / (1.0 + sum(t in u for u in unit_terms))) for t in qterms}


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
    uterms = [_terms(u.text) | _terms(hd) | _terms(u.context) for hd, (_, u) in zip(heads, cands)]
    w = term_weights(qterms, uterms, cfg.idf_lexical)
    total_w = sum(w.values())
    quantity = cfg.number_boost and asks_quantity(question)
    out = []
    for (i, u), s, ut in zip(cands, sem, uterms):
        lex = sum(w[t] for t in qterms & ut) / total_w if total_w else 0.0
        prior = 1.0 / math.sqrt(i + 1)
        total = cfg.semantic_weight * float(s) + cfg.lexical_weight * lex + cfg.prior_weight * prior
        if quantity and has_figure(u.text):
            total += cfg.number_boost
        out.append(Scored(i, u, total, float(s), lex))
    out.sort(key=lambda x: -x.score)
    return out


def _unit_text(heading: str, u: Unit) -> str:
    """What the embedder sees for a unit: its section heading, and a table row's header."""
    body = f"{u.context}\n{u.text}" if u.context else u.text
    return f"{heading}: {body}" if heading else body


def select(scored: list[Scored], cfg: ExtractiveConfig, question: str = "") -> list[Scored]:
    """The best sentence, then up to `max_sentences` close seconds that add something new.

    With `coverage_weight`, each further pick is the close second that best covers question terms the
    answer does not cover yet (a question with two parts gets both), not just the next best score.
    """
    if not scored:
        return []
    best = scored[0]
    chosen = [best]
    words = len(best.unit.text.split())
    qterms = _terms(question) if cfg.coverage_weight else set()
    covered = _terms(best.unit.text) & qterms
    pool = [s for s in scored[1:] if s.score >= cfg.keep_ratio * best.score]
    while pool and len(chosen) < cfg.max_sentences:
        def gain(s: Scored) -> float:
            new = len((_terms(s.unit.text) & qterms) - covered) / len(qterms) if qterms else 0.0
            return s.score + cfg.coverage_weight * new

        pick = max(pool, key=gain) if qterms else pool[0]
        pool.remove(pick)
        w = len(pick.unit.text.split())
        if words + w > MAX_WORDS or any(_overlap(pick.unit.text, c.unit.text) > 0.6 for c in chosen):
            continue
        chosen.append(pick)
        covered |= _terms(pick.unit.text) & qterms
        words += w
    # reading order within a passage, passages in rank order: the answer reads naturally
    return sorted(chosen, key=lambda s: (s.hit_index, s.unit.start))


def extend(chosen: list[Scored], hits: Sequence[Hit], question: str, cfg: ExtractiveConfig) -> list[Scored]:
    """A picked sentence without the figure the question asks for takes the next sentence of its paragraph
    when that one has it ("... some fraction of the interval." + "A typical setting might be 10%.")."""
    if not cfg.extend_next or not asks_quantity(question):
        return chosen
    out = []
    for s in chosen:
        u = s.unit
        if u.kind == "sentence" and not has_figure(u.text):
            text = hits[s.hit_index].chunk.text
            nxt = next((n for n in split_units(text) if n.start >= u.end), None)
            gap = text[u.end:nxt.start] if nxt else ""
            if (nxt is not None and nxt.kind == "sentence" and "\n\n" not in gap and has_figure(nxt.text)
                    and nxt.end - u.start <= MAX_QUOTE and not any(c.unit.start == nxt.start for c in chosen)):
                u = Unit(text[u.start:nxt.end], u.start, nxt.end, "sentence", u.context)
        out.append(Scored(s.hit_index, u, s.score, s.semantic, s.lexical))
    return out


def _overlap(a: str, b: str) -> float:
    ta, tb = _terms(a), _terms(b)
    return len(ta & tb) / max(1, min(len(ta), len(tb)))


def confidence(scored: list[Scored]) -> float:
    return scored[0].score if scored else 0.0


def quote_of(unit: Unit) -> str:
    return _quote(unit.text)

