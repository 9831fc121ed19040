"""Checks a model's answer against the passages it was shown: every kept sentence cites a real passage.

A marker naming no passage is removed; a sentence left without a marker is dropped; markers are
renumbered 1..n in order of first use; each citation quotes the sentence or two of its passage that best
support the answer sentence, verified as an exact substring by `Citation.from_hit`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Sequence

from assistant.extractive import MAX_QUOTE, quote_of, stem
from assistant.prompts import NO_EVIDENCE_SENTINEL
from assistant.sentences import Unit, split_units
from assistant.types import Citation
from ingest.embedders import Embedder
from ingest.keywords import query_terms
from retriever.types import Hit

_GROUP = r"\[\d{1,3}(?:\s*,\s*\d{1,3})*\]"
_MARKS = re.compile(_GROUP)
# "sentence. [1]" -> "sentence [1].": markers after the full stop would otherwise open the next sentence
_AFTER_STOP = re.compile(rf"([.!?])((?:[ \t]*{_GROUP})+)")
SEMANTIC_WEIGHT = 0.5


# A heuristic backstop, not the defence (that is the data framing in the prompt plus citation checks):
# text addressed to an assistant is never an answer, so it is neither quoted offline nor accepted as
# the support of a model's sentence.
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:instructions?|rules|prompts?|guidelines)\b"
    r"|\bsystem prompt\b|\bdo not cite\b|\b(?:as|you are) an? (?:ai|language model|llm)\b", re.I)


def is_instruction(text: str) -> bool:
    """Text that reads as an instruction to an AI assistant (a prompt injection), not a fact."""
    return bool(_INSTRUCTION.search(text))


@dataclass(frozen=True, slots=True)
class Grounded:
    text: str
    citations: tuple[Citation, ...]
    kept: int  # sentences kept
    dropped: tuple[str, ...]  # sentences without a valid marker
    bad_markers: tuple[int, ...]  # markers that named no passage
    injected: tuple[str, ...] = ()  # sentences whose only support was an instruction inside a passage
    unsupported: tuple[str, ...] = ()  # sentences naming a figure or name that none of their passages holds
    no_evidence: bool = False  # the model said the passages do not answer, and nothing cited remains


@dataclass(frozen=True, slots=True)
class _Claim:
    unit: Unit
    body: str  # the sentence without its markers
    sources: tuple[int, ...]  # 0-based passage indexes, in the order the model cited them


# Key facts of a sentence: its figures (digits; "forty" and "40" are one figure) and its names (capitalised
# words past the sentence's first word, acronyms). A model's sentence whose key facts are not all in the
# passages it cites says something they do not: "The CEO salary is 9,999,999 EUR [1]" citing the PTO policy.
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[,.]\d+)*")
_NUMBER_WORDS = {w: str(n) for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                                                     "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100"}
_NAME = re.compile(r"(?<![\w'’-])([A-Z][A-Za-z0-9&'’.-]*[A-Za-z0-9]|[A-Z]{2,})")


def _figures(text: str, words: bool = True) -> set[str]:
    """Every figure in `text`, normalised (thousands separators and a trailing .0 dropped); with `words`,
    number words too ("one" never counts in a claim: "no one", "one of the" are not figures)."""
    got = {re.sub(r"(?<=\d)[,](?=\d{3}\b)", "", n).removesuffix(".0").removesuffix(".00")
           for n in _NUMBER.findall(text)}
    said = re.findall(r"[a-z]+", text.lower())
    got |= {_NUMBER_WORDS[w] for w in said if w in _NUMBER_WORDS and (words or w not in ("zero", "one"))}
    return got


def _names(text: str) -> set[str]:
    """Capitalised words that are not merely the sentence's opening word."""
    words = _NAME.findall(text)
    opening = re.match(r"\W*([A-Za-z][\w'’.-]*)", text)
    first = opening.group(1) if opening else None
    return {w.lower() for w in words if w != first}


def missing_facts(claim: str, support: str) -> tuple[str, ...]:
    """The figures and names of `claim` that `support` (passage text, title, section) does not hold."""
    figures = sorted(_figures(claim, words=False) - _figures(support))
    low, terms = support.lower(), _terms(support)
    names = sorted(n for n in _names(claim) if n not in low and stem(n) not in terms)
    return tuple(figures + names)


def _support(hit: Hit) -> str:
    return "\n".join([hit.doc.title, *hit.chunk.section, hit.chunk.text])


def _terms(text: str) -> set[str]:
    return {stem(t) for t in query_terms(text)}


def _strip_markers(text: str) -> str:
    body = _MARKS.sub("", text)
    body = re.sub(r"[ \t]+([.!?,;:])", r"\1", body)
    return re.sub(r"[ \t]{2,}", " ", body).strip()


def _with_markers(body: str, markers: Sequence[int]) -> str:
    tags = "".join(f"[{m}]" for m in markers)
    if body and body[-1] in ".!?":
        return f"{body[:-1]} {tags}{body[-1]}"
    return f"{body} {tags}"


def _claims(text: str, n: int) -> tuple[list[Unit], list[_Claim | None], list[str], list[int]]:
    """The units of `text` and per unit its claim (None = remove it), plus dropped sentences, bad markers."""
    units = split_units(text)
    claims: list[_Claim | None] = []
    dropped: list[str] = []
    bad: list[int] = []
    for u in units:
        nums = [int(x) for g in _MARKS.findall(u.text) for x in re.findall(r"\d+", g)]
        valid = tuple(dict.fromkeys(x - 1 for x in nums if 1 <= x <= n))
        bad.extend(x for x in nums if not 1 <= x <= n)
        body = _strip_markers(u.text)
        words = bool(re.search(r"\w", body))
        claims.append(_Claim(u, body, valid) if valid and words else None)
        if words and not valid:
            dropped.append(body)
    return units, claims, dropped, bad


def ground(raw: str, hits: Sequence[Hit], embedder: Embedder) -> Grounded:
    """The model's `raw` text checked against `hits` (passage n is `hits[n - 1]`)."""
    sentinel = NO_EVIDENCE_SENTINEL in raw
    text = raw.replace(NO_EVIDENCE_SENTINEL, "").strip()
    text = _AFTER_STOP.sub(lambda m: " " + re.sub(r"\s+", "", m.group(2)) + m.group(1), text)
    units, claims, dropped, bad = _claims(text, len(hits))
    quotes = _quotes([c for c in claims if c is not None], hits, embedder)
    injected: list[str] = []
    unsupported: list[str] = []
    for i, c in enumerate(claims):
        if c is None:
            continue
        ok = tuple(s for s in c.sources if not is_instruction(quotes[c.unit.start, s]))
        if not ok:
            injected.append(c.body)
        elif missing_facts(c.body, "\n".join(_support(hits[s]) for s in ok)):
            unsupported.append(c.body)
            ok = ()
        claims[i] = replace(c, sources=ok) if ok else None
    kept = [c for c in claims if c is not None]
    if not kept:
        return Grounded("", (), 0, tuple(dropped), tuple(bad), tuple(injected), tuple(unsupported),
                        no_evidence=sentinel)
    renumber: dict[int, int] = {}
    for c in kept:
        for src in c.sources:
            renumber.setdefault(src, len(renumber) + 1)
    out, pos = [], 0
    cites: dict[tuple[int, str], Citation] = {}
    for c, u in zip(claims, units):
        out.append(text[pos:u.start])
        pos = u.end
        if c is None:
            continue
        out.append(_with_markers(c.body, [renumber[s] for s in c.sources]))
        for src in c.sources:  # one citation per (marker, quote): the passage text for this sentence
            q = quotes[c.unit.start, src]
            cites.setdefault((renumber[src], q), Citation.from_hit(renumber[src], hits[src], q))
    out.append(text[pos:])
    return Grounded(_tidy("".join(out)), tuple(cites.values()), len(kept), tuple(dropped), tuple(bad),
                    tuple(injected), tuple(unsupported))


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t]{2,}", " ", ln).rstrip() for ln in text.split("\n")]
    text = "\n".join(ln for ln in lines if not re.fullmatch(r"\s*(?:[-*•]|\d+[.)])?\s*", ln) or ln == "")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _candidates(hit: Hit) -> list[Unit]:
    units = [u for u in split_units(hit.chunk.text) if u.kind not in ("heading", "header") and len(u.text) >= 8]
    return units or [Unit(hit.chunk.text.strip(), 0, 0, "sentence")]


def _quotes(claims: list[_Claim], hits: Sequence[Hit], embedder: Embedder) -> dict[tuple[int, int], str]:
    """{(claim start, passage index): the passage text that best supports that claim}."""
    sources = sorted({s for c in claims for s in c.sources})
    if not sources:
        return {}
    cands = {src: _candidates(hits[src]) for src in sources}
    flat = [(src, i) for src in sources for i in range(len(cands[src]))]
    unit_vecs = embedder.embed_documents([cands[s][i].text for s, i in flat])
    row = {key: n for n, key in enumerate(flat)}
    claim_vecs = embedder.embed_documents([c.body for c in claims])
    out = {}
    for c, cv in zip(claims, claim_vecs):
        want = _terms(c.body)
        for src in c.sources:
            sims = [float(unit_vecs[row[src, i]] @ cv) for i in range(len(cands[src]))]
            out[c.unit.start, src] = _best_quote(hits[src].chunk.text, cands[src], sims, want)
    return out


def _coverage(want: set[str], units: Sequence[Unit]) -> float:
    got = set().union(*(_terms(u.text) for u in units))
    return len(want & got) / len(want) if want else 0.0


def _best_quote(chunk_text: str, units: list[Unit], sims: list[float], want: set[str]) -> str:
    """The best unit by meaning and shared words, joined with a neighbour when that covers more of
    the answer sentence's words and still fits in MAX_QUOTE characters."""
    scores = [SEMANTIC_WEIGHT * s + (1 - SEMANTIC_WEIGHT) * _coverage(want, [u]) for u, s in zip(units, sims)]
    i = max(range(len(units)), key=lambda j: scores[j])
    best = units[i]
    if best.end <= best.start:  # the whole passage stood in for units
        return quote_of(best)
    alone = _coverage(want, [best])
    pairs = [(units[j], units[j + 1]) for j in (i - 1, i) if 0 <= j and j + 1 < len(units)]
    pairs = [(a, b) for a, b in pairs if b.end - a.start <= MAX_QUOTE and b.start >= a.end]
    if pairs:
        a, b = max(pairs, key=lambda p: _coverage(want, p))
        if _coverage(want, (a, b)) > alone:
            return chunk_text[a.start:b.end]
    return quote_of(best)
