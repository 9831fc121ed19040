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
    max_sentences: int = 6  # and at most MAX_WORDS words in all
    semantic_weight: float = 0.55
    lexical_weight: float = 0.30
    prior_weight: float = 0.25
    keep_ratio: float = 0.65  # further sentences must score within this share of the best
    threshold: float = 0.58  # calibrated on the dev sets: `lore eval calibrate` (docs/benchmarks.md)
    idf_lexical: bool = True  # weigh question terms by their rarity among the candidate sentences
    number_boost: float = 0.08  # added when the question asks how long/many/much... and the unit has a figure
    intent_boost: float = 0.1  # added when the question asks why/how it was fixed and the unit gives a cause/fix
    coverage_weight: float = 0.1  # selection: reward for question terms the answer does not cover yet
    figure_penalty: float = 0.1  # confidence lost when a how-many question's best evidence has no figure
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


# Other answer types a question asks for, and the words a sentence that gives that answer tends to use.
_INTENTS = (
    (re.compile(r"\b(why|root cause|what caused|cause of|caused by|what went wrong|what happened|how did .{0,40}"
                r"(end up|happen|break|fail)|reason)\b", re.I),
     re.compile(r"\b(because|due to|caused|causing|root cause|result of|as a result|led to|lead to|triggered|"
                r"resulted in|bug|misconfigur\w*|expired|broke|failed|failure)\b", re.I)),
    (re.compile(r"\b(fix(ed)?|resolved?|mitigat\w*|workaround|recover\w*|what did (they|we|you) do)\b", re.I),
     re.compile(r"\b(fix\w*|resolv\w*|mitigat\w*|roll(ed)? back|revert\w*|restor\w*|increas\w*|replac\w*|"
                r"upgrad\w*|switch\w*|moved|migrat\w*)\b", re.I)),
)


def intent_match(question: str, text: str) -> bool:
    """The question asks why / how it was fixed, and the sentence gives a cause / a fix."""
    return any(q.search(question) and a.search(text) for q, a in _INTENTS)


def asks_quantity(question: str) -> bool:
    return bool(_QUANTITY.search(question))


_REFERENCE = re.compile(r"\[[^\]]*\]|\((?:Section|Sec\.|see)[^)]*\)|\bSection \d+(?:\.\d+)*|https?://\S+", re.I)


def has_figure(text: str) -> bool:
    """A number, amount, duration or frequency, not counting references ("Section 8.8.2", "[RFC9110]")."""
    return bool(_FIGURE.search(_REFERENCE.sub(" ", text)))


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
        if cfg.intent_boost and intent_match(question, u.text):
            total += cfg.intent_boost
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
    """Grow a picked sentence into the quote a reader needs, within MAX_QUOTE characters:

    - a unit that ends with ":" takes the list or table rows it introduces ("Fringe benefit amount
      (per month):" + "- Internet: $50" ...);
    - for a how-long/how-many question, a sentence without the asked figure takes the next sentence of
      its paragraph when that one has a figure ("... some fraction of the interval." + "A typical
      setting of this fraction might be 10%."), or the list that sentence introduces.
    Units swallowed by a grown quote are dropped from the selection, so nothing is quoted twice.
    """
    if not cfg.extend_next:
        return chosen
    quantity = asks_quantity(question)
    qterms = _terms(question)
    out: list[Scored] = []
    taken: list[tuple[int, int, int]] = []  # (hit, start, end) of the quotes so far
    for s in chosen:
        u = s.unit
        if any(h == s.hit_index and a <= u.start and u.end <= b for h, a, b in taken):
            continue
        text = hits[s.hit_index].chunk.text
        units = [n for n in split_units(text) if n.start >= u.end]
        last, fig, in_list = u, has_figure(u.text), u.text.endswith(":")
        for n in units:
            gap = text[last.end:n.start]
            if n.end - u.start > MAX_QUOTE or ("\n\n" in gap and not in_list) or gap.count("\n") > 2:
                break
            if in_list:  # the items of a list the quote introduces (parsers may drop bullets: short lines)
                if n.kind not in ("item", "row", "heading") and not last.text.endswith(":"):
                    break
                last, fig = n, fig or has_figure(n.text)
                continue
            figure_next = (quantity and n.kind == "sentence" and has_figure(n.text)
                           and (not fig or bool(qterms & _terms(n.text))))
            if not figure_next and not (quantity and not fig and n.text.endswith(":")):
                break
            last, fig, in_list = n, fig or has_figure(n.text), n.text.endswith(":")
            if not in_list:
                break
        if last is not u:
            u = Unit(text[u.start:last.end], u.start, last.end, "sentence", u.context)
        taken.append((s.hit_index, u.start, u.end))
        out.append(Scored(s.hit_index, u, s.score, s.semantic, s.lexical))
    out = [o for o in out if not any(h == o.hit_index and a <= o.unit.start and o.unit.end <= b
                                     and (a, b) != (o.unit.start, o.unit.end) for h, a, b in taken)]
    while len(out) > 1 and sum(len(o.unit.text.split()) for o in out) > MAX_WORDS:
        best = max(out, key=lambda o: o.score)
        out.remove(min((o for o in out if o is not best), key=lambda o: o.score))  # stay within the word budget
    return out


def _overlap(a: str, b: str) -> float:
    ta, tb = _terms(a), _terms(b)
    return len(ta & tb) / max(1, min(len(ta), len(tb)))


def confidence(scored: list[Scored], question: str = "", cfg: ExtractiveConfig | None = None) -> float:
    """The best sentence's score, less `figure_penalty` when the question asks how long/many/much and
    none of the three best sentences holds a figure (the passages talk about it but do not say)."""
    if not scored:
        return 0.0
    penalty = cfg.figure_penalty if cfg is not None else 0.0
    if penalty and asks_quantity(question) and not any(has_figure(s.unit.text) for s in scored[:3]):
        return _unit_interval(scored[0].score - penalty)
    return _unit_interval(scored[0].score)


def _unit_interval(score: float) -> float:
    """Scores add weighted parts and boosts, so a very good match can pass 1; a confidence stays in [0, 1]."""
    return min(1.0, max(0.0, score))


def quote_of(unit: Unit) -> str:
    return _quote(unit.text)

