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
from pathlib import Path
from typing import Sequence

import numpy as np

from assistant.reader import FEATURES, WEIGHTS, bigrams, load as load_reader
from assistant.sentences import Unit, split_units
from ingest.embedders import Embedder
from ingest.keywords import query_terms
from retriever.types import Hit

_WORDS = re.compile(r"[^\W_]+")
_SUFFIX = re.compile(r"(?:ations?|ingly|ings?|edly|ies|ied|ment|ness|able|ible|ers?|est|ed|es|ly|s)$")
MAX_QUOTE = 400
MAX_WORDS = 90


def stem(word: str) -> str:
    w = word.lower()
    return _SUFFIX.sub("", w) if len(w) > 4 else w


def _terms(text: str) -> set[str]:
    return {stem(t) for t in query_terms(text)}


# Words a question uses to ask, not to say what about ("do I need to ...", "what happens if ..."): they
# would make any sentence with "need" look relevant.
_GENERIC = frozenset(stem(w) for w in """need needs needed want wants get gets got getting make makes know tell say
use using used go going goes take takes give gives happen happens happened mean means able like also way thing
things something anything someone anyone actually really still ever supposed allowed okay ok please thanks hi hey
guys folks lol anybody somebody question ask asks asking""".split())


def question_terms(question: str) -> set[str]:
    """A question's content terms, without the words it asks with (all of them if nothing else is left)."""
    t = _terms(question)
    return (t - _GENERIC) or t


@dataclass(frozen=True, slots=True)
class Scored:
    hit_index: int
    unit: Unit
    score: float
    semantic: float
    lexical: float
    doc: str = ""  # the document of its passage


@dataclass(frozen=True, slots=True)
class ExtractiveConfig:
    passages: int = 4  # top hits whose sentences are candidates
    max_sentences: int = 3  # and at most MAX_WORDS words in all
    semantic_weight: float = 0.55
    lexical_weight: float = 0.30
    prior_weight: float = 0.25
    keep_ratio: float = 0.2  # further sentences must score within this share of the best
    multi_keep_ratio: float = 0.15  # ... for a question that asks two or more things
    part_floor: float = 0.05  # a multi-part question's further part gets its best sentence above this score
    threshold: float = 0.47  # calibrated on the dev sets: `lore eval calibrate` (docs/benchmarks.md)
    idf_lexical: bool = True  # weigh question terms by their rarity among the candidate sentences
    number_boost: float = 0.08  # added when the question asks how long/many/much... and the unit has a figure
    intent_boost: float = 0.1  # added when the question asks why/how it was fixed and the unit gives a cause/fix
    coverage_weight: float = 0.1  # selection: reward for question terms the answer does not cover yet
    figure_penalty: float = 0.1  # confidence lost when a how-many question's best evidence has no figure
    extend_next: bool = True  # quote the next sentence too when it holds the figure the question asks for
    support_quotes: int = 2  # further passages of the answer's own document quoted as sources, no answer text
    support_window: int = 12  # ... when their best sentence is among this many best-scored candidates
    reader: Path | None = WEIGHTS  # learned sentence scorer (assistant/reader.py); None: the hand weights above


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


def unit_features(question: str, hits: Sequence[Hit], embedder: Embedder, cfg: ExtractiveConfig,
                  vecs: np.ndarray | None = None) -> tuple[list[tuple[int, Unit]], np.ndarray, np.ndarray]:
    """The candidate units of the top passages and their features (`reader.FEATURES`, in that order).

    `vecs`: the units' (and headings') vectors from an earlier call on the same hits, to score another
    part of the same question without embedding the units again."""
    qterms = question_terms(question)
    qseq = [stem(t) for t in _WORDS.findall(question.lower())]
    qbi = bigrams(qseq)
    cands: list[tuple[int, Unit]] = []
    for i, h in enumerate(hits[:cfg.passages]):
        cands += [(i, u) for u in candidates(h.chunk.text)]
    if not cands:
        return [], np.zeros((0, len(FEATURES))), np.zeros((0, 0))
    heads = [" > ".join(hits[i].chunk.section[-1:]) for i, _ in cands]
    distinct = sorted(set(heads))
    if vecs is None:
        embed = getattr(embedder, "embed_transient", embedder.embed_documents)  # batched where it can
        vecs = embed([_unit_text(hd, u) for hd, (_, u) in zip(heads, cands)] + distinct)
    q = embedder.embed_query(question)
    sims = vecs @ q
    sem, head_sim = sims[:len(cands)], dict(zip(distinct, sims[len(cands):]))
    body = [_terms(u.text) for _, u in cands]
    ctx = [_terms(hd) | _terms(u.context) for hd, (_, u) in zip(heads, cands)]
    w = term_weights(qterms, [b | c for b, c in zip(body, ctx)], cfg.idf_lexical)
    total_w = sum(w.values()) or 1.0
    doc_terms = {i: _terms(f"{h.doc.title} {Path(h.doc.uri).stem}") for i, h in enumerate(hits)}
    quantity = asks_quantity(question)
    rows, first_seen = [], set()
    for (i, u), s, b, c, hd in zip(cands, sem, body, ctx, heads):
        # terms the document's title or path already holds ("at sourcegraph") say which document, not
        # which sentence: the sentence's overlap counts the rest
        rest = qterms - doc_terms[i] or qterms
        rest_w = sum(w[t] for t in rest) or 1.0
        lex = sum(w[t] for t in rest & b) / rest_w
        lex_ctx = sum(w[t] for t in rest & (b | c)) / rest_w
        lex_doc = sum(w[t] for t in qterms & doc_terms[i]) / total_w
        useq = [stem(t) for t in _WORDS.findall(u.text.lower())]
        fig = has_figure(u.text)
        rows.append([float(s), 0.0, float(head_sim[hd]), lex, 0.0, lex_ctx, lex_doc,
                     len(qbi & bigrams(useq)) / max(1, len(qbi)), 1.0 / math.sqrt(i + 1), float(i == 0),
                     float(quantity and fig), float(quantity and not fig), float(intent_match(question, u.text)),
                     math.log(1 + len(useq)), float(u.kind in ("item", "row")), float(i not in first_seen),
                     float(u.text.endswith(":")), float(bool(_NEGATION.search(u.text)))])
        first_seen.add(i)
    x = np.asarray(rows, dtype=float)
    x[:, 1] = x[:, 0] - x[:, 0].max()
    x[:, 4] = x[:, 3] - x[:, 3].max()
    return cands, x, vecs


def score_question(question: str, hits: Sequence[Hit], embedder: Embedder,
                   cfg: ExtractiveConfig) -> tuple[list[Scored], list[Scored]]:
    """Every candidate unit with its score (the reader's probability that it answers, or `hand_scores`
    with `cfg.reader` None), best first; and for a multi-part question ("how fast must I report
    a breach, and should I turn my laptop off?") the best unit for each part after the first, scored
    against that part alone (the units are embedded once)."""
    cands, x, vecs = unit_features(question, hits, embedder, cfg)
    if not cands:
        return [], []
    scored = _scored(cands, x, hits, cfg)
    tops = []
    for part in question_parts(question)[1:]:
        pc, px, _ = unit_features(part, hits, embedder, cfg, vecs)
        tops += _scored(pc, px, hits, cfg)[:1]
    return scored, tops


def _scored(cands: list[tuple[int, Unit]], x: np.ndarray, hits: Sequence[Hit], cfg: ExtractiveConfig) -> list[Scored]:
    col = {f: x[:, k] for k, f in enumerate(FEATURES)}
    scores = load_reader(cfg.reader).sentence.predict(x) if cfg.reader else hand_scores(x, cfg)
    out = [Scored(i, u, float(sc), float(se), float(lx), hits[i].doc.id)
           for (i, u), sc, se, lx in zip(cands, scores, col["sem"], col["lex_ctx"])]
    out.sort(key=lambda x: -x.score)
    return out


def hand_scores(x: np.ndarray, cfg: ExtractiveConfig) -> np.ndarray:
    """The hand-weighted score the reader replaced (`reader=None`): similarity, overlap, rank prior, boosts."""
    col = {f: x[:, k] for k, f in enumerate(FEATURES)}
    return (cfg.semantic_weight * col["sem"] + cfg.lexical_weight * col["lex_ctx"] + cfg.prior_weight * col["prior"]
            + cfg.number_boost * col["qty_fig"] + cfg.intent_boost * col["intent"])


_SPLIT = re.compile(r"(?<=\?)\s+(?=[^\s(])|[,;]?\s+(?:and|also|plus)\s+(?=(?:what|how|why|which|who|when|where|is|are|"
                    r"does|do|did|can|should|will)\b)|\s+-\s+(?=(?:what|how|why|which|who|when|where)\b)", re.I)


def question_parts(question: str) -> list[str]:
    """A multi-part question cut into its parts: at a question mark followed by more, or at ", and
    what/how/should ...". A one-part question is one part. Parts under three words stay joined."""
    parts: list[str] = []
    for p in (p.strip() for p in _SPLIT.split(question) if p and p.strip()):
        if parts and (len(p.split()) < 3 or len(parts[-1].split()) < 3):
            parts[-1] = f"{parts[-1]} {p}"
        else:
            parts.append(p)
    return parts if len(parts) > 1 else [question]


_LABEL = re.compile(r"^(?:A|Answer)\s*:\s+")


def candidates(text: str) -> list[Unit]:
    """The units of a passage that can answer: not headings, table headers, code, or questions ("Q: ...?"),
    and a FAQ answer without its "A:" label."""
    out = []
    for u in split_units(text):
        if u.kind in ("heading", "header", "code") or len(u.text) < 8 or u.text.rstrip(" *_\"'").endswith("?"):
            continue
        m = _LABEL.match(u.text)
        if m:
            u = Unit(u.text[m.end():], u.start + m.end(), u.end, u.kind, u.context)
        out.append(u)
    return out


def _unit_text(heading: str, u: Unit) -> str:
    """What the embedder sees for a unit: its section heading, and a table row's header."""
    body = f"{u.context}\n{u.text}" if u.context else u.text
    return f"{heading}: {body}" if heading else body


_COMPARE = re.compile(r"\b(compare\w*|comparison|differ\w*|versus|vs\.?|both|each of|between)\b", re.I)
_TWO_NAMES = re.compile(r"\b[A-Z][\w.&-]*[A-Z0-9][\w.&-]*\b.{0,40}\b(?:and|or|vs\.?)\s+[A-Z][\w.&-]+|"
                        r"\b[A-Z][a-z]\w+\s+(?:and|or|vs\.?)\s+[A-Z][\w.&-]+")


def asks_several(question: str) -> bool:
    """The question needs more than one source: it compares, or names two organisations or things
    ("18F and Sourcegraph")."""
    return bool(_COMPARE.search(question) or _TWO_NAMES.search(question))


_PARTS = re.compile(r"\?\s*\S.*\?|\b(and|or|also|plus)\s+(what|how|why|which|who|when|where|is|are|does|do|did|"
                    r"can|should)\b|,\s*\w+(?:\s+\w+)?,?\s+(and|or)\s+\w+", re.I)


def asks_several_things(question: str) -> bool:
    """A multi-part question: two question marks, "... and how long ...", or a list of things asked about."""
    return bool(_PARTS.search(question))


def select(scored: list[Scored], cfg: ExtractiveConfig, question: str = "",
           part_tops: Sequence[Scored] = ()) -> list[Scored]:
    """The sentence that answers, then a further one only when it covers a part of the question the
    answer does not cover yet (a two-part question gets both parts), scores close to the best, does
    not repeat or contradict what is chosen, and comes from the same document unless the question
    needs several (it compares, or names two organisations). No word budget to fill.
    `part_tops`: the best sentence for each further part of a multi-part question, taken when it is
    not weak (`part_floor`), new, and consistent with the rest.
    """
    if not scored:
        return []
    best = scored[0]
    chosen = [best]
    words = len(best.unit.text.split())
    qterms = question_terms(question)
    covered = _covered(best, qterms)
    several = asks_several(question)
    ratio = cfg.multi_keep_ratio if asks_several_things(question) else cfg.keep_ratio
    multi = asks_several_things(question)
    for top in part_tops:
        if (top.score >= cfg.part_floor and top.unit not in [c.unit for c in chosen]
                and (top.hit_index == best.hit_index or several or _same_doc(top, best))
                and not any(_overlap(top.unit.text, c.unit.text) > 0.6 or contradicts(top.unit.text, c.unit.text)
                            for c in chosen)):
            chosen.append(top)
            covered |= _covered(top, qterms)
            words += len(top.unit.text.split())
    # a line that introduces a list ("... for the city:") would pull in the whole list: only as the answer
    pool = [s for s in scored[1:] if s.score >= ratio * best.score and s.unit not in [c.unit for c in chosen]
            and not s.unit.text.endswith(":")]
    while pool and len(chosen) < cfg.max_sentences and (qterms - covered or (multi and len(chosen) == 1)):
        gain = {id(s): len(_covered(s, qterms) - covered) for s in pool}
        # a two-part question may take a second sentence that words its part the way the question
        # already did ("how long ... and how long ..."): new figures count as coverage
        pool = [s for s in pool if gain[id(s)] > 0 or (multi and len(chosen) == 1 and _new_figure(s, chosen))]
        if not pool:
            break
        pick = max(pool, key=lambda s: s.score + cfg.coverage_weight * gain[id(s)] / len(qterms))
        pool.remove(pick)
        w = len(pick.unit.text.split())
        if (words + w > MAX_WORDS or (pick.hit_index != best.hit_index and not several
                                      and not _same_doc(pick, best))
                or any(_overlap(pick.unit.text, c.unit.text) > 0.6 or contradicts(pick.unit.text, c.unit.text)
                       for c in chosen)):
            continue
        chosen.append(pick)
        covered |= _covered(pick, qterms)
        words += w
    # reading order within a passage, passages in rank order: the answer reads naturally
    return sorted(chosen, key=lambda s: (s.hit_index, s.unit.start))


def _new_figure(s: Scored, chosen: list[Scored]) -> bool:
    have = {n for c in chosen for n in _NUMBER.findall(c.unit.text)}
    return bool(set(_NUMBER.findall(_REFERENCE.sub(" ", s.unit.text))) - have)


def _covered(s: Scored, qterms: set[str]) -> set[str]:
    return (_terms(s.unit.text) | _terms(s.unit.context)) & qterms


def _same_doc(a: Scored, b: Scored) -> bool:
    return a.doc == b.doc


_NEGATION = re.compile(r"\b(not|never|no|none|cannot|without|neither|nor)\b|n't\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def contradicts(a: str, b: str) -> bool:
    """Two sentences about the same thing that disagree: one negates what the other states, or they give
    different figures. "Same thing": most content words of the shorter one recur in the other."""
    ta, tb = _terms(_NEGATION.sub(" ", a)) - _NEG_TERMS, _terms(_NEGATION.sub(" ", b)) - _NEG_TERMS
    if not ta or not tb or len(ta & tb) / min(len(ta), len(tb)) < 0.4:
        return False
    if bool(_NEGATION.search(a)) != bool(_NEGATION.search(b)):
        return True
    na, nb = set(_NUMBER.findall(_REFERENCE.sub(" ", a))), set(_NUMBER.findall(_REFERENCE.sub(" ", b)))
    return bool(na and nb and not na & nb)


_NEG_TERMS = {"not", "never", "none", "cannot", "without", "neither", "nor"}


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
    qterms = question_terms(question)
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
        out.append(Scored(s.hit_index, u, s.score, s.semantic, s.lexical, s.doc))
    out = [o for o in out if not any(h == o.hit_index and a <= o.unit.start and o.unit.end <= b
                                     and (a, b) != (o.unit.start, o.unit.end) for h, a, b in taken)]
    while len(out) > 1 and sum(len(o.unit.text.split()) for o in out) > MAX_WORDS:
        best = max(out, key=lambda o: o.score)
        out.remove(min((o for o in out if o is not best), key=lambda o: o.score))  # stay within the word budget
    return out


def _overlap(a: str, b: str) -> float:
    ta, tb = _terms(a), _terms(b)
    return len(ta & tb) / max(1, min(len(ta), len(tb)))


def confidence(scored: list[Scored], question: str = "", cfg: ExtractiveConfig | None = None,
               hits: Sequence[Hit] = ()) -> float:
    """How sure Lore is that the evidence answers the question; below `cfg.threshold` it abstains.

    With the reader: its answerability model over the best sentences and whether the question's
    specific names, numbers and identifiers appear in the passages at all (a near-miss question asks
    for something the passages do not hold). Without: the best sentence's score, less `figure_penalty`
    when the question asks how long/many/much and none of the three best sentences holds a figure.
    """
    if not scored:
        return 0.0
    if cfg is not None and cfg.reader:
        if _topic_absent(question, hits):
            return 0.0
        return _unit_interval(float(load_reader(cfg.reader).answerable.predict(answer_features(question, hits,
                                                                                              scored))))
    penalty = cfg.figure_penalty if cfg is not None else 0.0
    if penalty and asks_quantity(question) and not any(has_figure(s.unit.text) for s in scored[:3]):
        return _unit_interval(scored[0].score - penalty)
    return _unit_interval(scored[0].score)


_SPECIFIC = re.compile(r"`[^`]+`|\"[^\"]{2,40}\"|\b(?:\w*\d[\w.]*|[A-Z]{2,}\w*|[a-z]+[A-Z]\w*|\w+_\w+|"
                       r"(?<![.?!]\s)(?<!^)[A-Z][a-z]\w+)\b")
_COMMON_CAPS = frozenset("i i'm im what how when where who why which can does do is are my our the a an".split())


def specific_terms(question: str) -> list[str]:
    """What the question names precisely: identifiers, numbers, acronyms, quoted text, proper names."""
    out = []
    for m in _SPECIFIC.finditer(question.strip()):
        t = m.group(0).strip("`\"").lower()
        if t and t not in _COMMON_CAPS and t not in out:
            out.append(t)
    return out


def answer_features(question: str, hits: Sequence[Hit], scored: list[Scored]) -> np.ndarray:
    """`reader.ANSWERABLE` for a question, its passages and its scored candidates (best first)."""
    top = scored[0]
    hay = " ".join(f"{h.chunk.text} {h.doc.title} {h.doc.uri} {' '.join(h.chunk.section)}"
                   for h in hits[:4]).lower()
    hay_terms = _terms(hay)
    spec = specific_terms(question)
    missing = [t for t in spec if t not in hay and not (_terms(t) and _terms(t) <= hay_terms)]
    best = hits[top.hit_index] if hits else None
    qterms = question_terms(question)
    cover = (len(qterms & _terms(f"{best.chunk.text} {best.doc.title} {' '.join(best.chunk.section)}"))
             / len(qterms)) if best is not None and qterms else 0.0
    window = " ".join(s.unit.text for s in scored[:3])
    best_hay = f"{best.chunk.text} {best.doc.title} {best.doc.uri}".lower() if best is not None else ""
    in_best = [t for t in spec if t not in best_hay and not (_terms(t) and _terms(t) <= _terms(best_hay))]
    kinds = asked_types(question)
    lead = " ".join(s.unit.text for s in scored[:2])
    missing_type = [k for k in kinds if not _TYPES[k][1].search(_REFERENCE.sub(" ", lead))]
    return np.array([top.score, scored[1].score if len(scored) > 1 else 0.0, top.semantic, top.lexical,
                     _lex_doc(question, best), float(len(missing)), float(bool(missing)), cover,
                     float(asks_quantity(question) and not has_figure(window)), float(len(spec)),
                     float(len(in_best)), float(bool(missing_type)), float(bool(kinds))])


def _topic_absent(question: str, hits: Sequence[Hit]) -> bool:
    """A short question (three content words or fewer) one of whose words no retrieved passage holds:
    "what is our parental leave policy?" over passages about leave and policies but never "parental".
    On the dev sets this flags 1 of 329 answerable questions (docs/benchmarks.md)."""
    q = question_terms(question)
    return 0 < len(q) <= 3 and _absent_share(question, hits) > 0


def _absent_share(question: str, hits: Sequence[Hit]) -> float:
    """Share of the question's content words that no retrieved passage holds. Keyword search ranks a
    passage with a rare word high, so a word absent from every hit is most likely absent from every
    passage the asker may read: the knowledge base does not talk about it (only readable hits count)."""
    q = question_terms(question)
    seen: set[str] = set()
    for h in hits:
        seen |= _terms(f"{h.chunk.text} {h.doc.title} {' '.join(h.chunk.section)}")
    return len(q - seen) / max(1, len(q))


# What kind of answer a question asks for, and what a sentence giving that kind of answer contains.
_TYPES = {
    "version": (re.compile(r"\b(which|what)\s+(\w+\s+)?(version|release|patch|tag)\b", re.I),
                re.compile(r"\bv?\d+\.\d+(\.\d+)?|\b\d{8}\b")),
    "person": (re.compile(r"^\s*who\b|\bwho (is|are|was|approves|decides|owns|signs|has to)\b", re.I),
               re.compile(r"\b(manager|director|lead|owner|team|officer|supervisor|coordinator|chief|"
                          r"[A-Z][a-z]+ [A-Z][a-z]+|approv\w+|responsib\w+|commander|engineer|admin\w*)\b")),
    "date": (re.compile(r"^\s*when\b|\b(what|which) (date|day|year|month)\b", re.I),
             re.compile(r"\b(19|20)\d\d\b|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*\b|"
                        r"\b(monday|tuesday|wednesday|thursday|friday|daily|weekly|annually|before|after|within)\b", re.I)),
    "number": (re.compile(r"\bhow (many|much|long|often|soon)\b|\b(what|which) (percentage|amount|size|limit|number|"
                          r"rate|quota|budget|deadline)\b|\b(max\w*|min\w*|default)\b.{0,30}\b(number|size|value|"
                          r"length|count)\b", re.I),
               re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve|half|quarter|once|twice|"
                          r"daily|weekly|monthly|annually|yearly|unlimited|no limit|no set limit)\b", re.I)),
}


def asked_types(question: str) -> list[str]:
    """The kinds of answer the question asks for: a version, a person or role, a date, a number."""
    return [k for k, (q, _) in _TYPES.items() if q.search(question)]


def _lex_doc(question: str, hit: Hit | None) -> float:
    qterms = question_terms(question)
    if hit is None or not qterms:
        return 0.0
    return len(qterms & _terms(f"{hit.doc.title} {hit.doc.uri} {' '.join(hit.chunk.section)}")) / len(qterms)


def _unit_interval(score: float) -> float:
    """Scores add weighted parts and boosts, so a very good match can pass 1; a confidence stays in [0, 1]."""
    return min(1.0, max(0.0, score))


def supporting(scored: Sequence[Scored], hits: Sequence[Hit], lead: int, quoted: Sequence[Sequence[int]],
               config: ExtractiveConfig) -> list[Scored]:
    """Further quotes from the document the answer opens with: per passage, its best sentence outside
    what is already quoted, if that is among the `support_window` best-scored candidates. They are shown
    as sources (an exception, the table row or the step the answer sentence refers to), never added to
    the answer text: a policy often says a thing in one section and its limits in the next. `quoted`:
    the [hit index, start, end] spans quoted so far."""
    if not scored or config.support_quotes <= 0:
        return []
    doc = hits[lead].doc.id
    out: list[Scored] = []
    for s in scored[:config.support_window]:  # best first
        if len(out) >= config.support_quotes:
            break
        if (hits[s.hit_index].doc.id == doc and all(o.hit_index != s.hit_index for o in out)
                and not overlaps(quoted, s.hit_index, s.unit.start, s.unit.end)):
            out.append(s)
    return out


def overlaps(quoted: Sequence[Sequence[int]], hit_index: int, lo: int, hi: int) -> bool:
    """[lo, hi) of passage `hit_index` shares text with one of the `quoted` [hit index, start, end] spans."""
    return any(i == hit_index and a < hi and lo < b for i, a, b in quoted)


def quote_of(unit: Unit) -> str:
    return _quote(unit.text)


def display(text: str) -> str:
    """An answer sentence as a person reads it: one line, a list or table rows joined with "; "."""
    lines = [" ".join(ln.split()) for ln in text.split("\n") if ln.strip()]
    lines = [_BULLET.sub("", ln) for ln in lines]
    out = lines[0] if lines else ""
    for ln in lines[1:]:
        out += (" " if out.endswith(":") else "; ") + ln
    return out


_BULLET = re.compile(r"^(?:[-*•]|\d+[.)])\s+")


def context_span(text: str, unit: Unit, limit: int = MAX_QUOTE, near: Sequence[Unit] = ()) -> tuple[int, int]:
    """The span a citation quotes for an answer unit: the unit, then the `near` units (the passage's next
    best sentences, best first) when the span still fits, then its neighbours in the same paragraph (or
    list, with the line that introduces it), the next one first, within `limit` characters.

    The answer says what was asked in a sentence; the quote shows the reader the context it came from.
    """
    if unit.end - unit.start >= limit:
        return unit.start, unit.start + len(_quote(unit.text))
    units = [u for u in split_units(text) if u.kind != "code"]
    lo, hi = unit.start, unit.end
    for n in near:
        a, b = min(lo, n.start), max(hi, n.end)
        if b - a <= limit and "```" not in text[a:b]:
            lo, hi = a, b
    after = [u for u in units if u.start >= hi]
    before = [u for u in units if u.end <= lo][::-1]
    grow = True
    while grow:
        grow = False
        for side in (after, before):
            if not side:
                continue
            n = side[0]
            gap = text[hi:n.start] if side is after else text[n.end:lo]
            if "\n\n" in gap and not (side is before and n.text.endswith(":")):
                side.clear()
                continue
            a, b = min(lo, n.start), max(hi, n.end)
            if b - a > limit:
                side.clear()
                continue
            lo, hi = a, b
            side.pop(0)
            grow = True
    return lo, hi

