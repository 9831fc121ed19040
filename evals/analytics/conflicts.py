"""Conflicts: passages of different documents (or versions) giving different numbers, dates or limits for
the same thing, e.g. two PTO carry-over limits, listed for their owners to reconcile.

Precision comes first, so a pair is reported only when every gate holds: the two passages are near
neighbours in the vector store; two sentences of them state a quantity in the same unit (hours, days, USD,
percent, dates next to a word like 'effective' or 'deadline') with no value in common, counting every
value each document gives for that subject (so a schedule is not at odds with itself); the sentences
share at least `min_shared_terms` content terms and an idf-weighted `min_overlap` of all their terms; and
the two sentences embed close together. Incident reports are left out by default: each describes its own
event, so their numbers differ by nature. Sentences of superseded versions that answers still cite (from
the audit log) are compared with the current version of their document the same way.

Tuned on the enterprise corpus (144 documents): what remains there are two leave policies written from one
template, identical sentences but for the number of weeks; worth a look, and easy to dismiss.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from evals.analytics.owners import by_owner, owned_by, owner_keys
from evals.analytics.quantities import Quantity, quantities
from evals.analytics.text import words
from evals.audit import utc_iso
from assistant.sentences import split_units
from ingest.errors import ConfigError

if TYPE_CHECKING:
    from evals.audit import AuditLog
    from ingest.chroma_store import ChunkStore
    from ingest.embedders import Embedder
    from ingest.sqlite_store import SqliteStore

log = logging.getLogger(__name__)
SUBJECT_TERMS = 6
LIMIT_CUES = ("up to", "maximum", "at most", "no more than", "not exceed", "limit", "capped", "cap of",
              "minimum", "at least", "carry over", "carried over", "carry-over", "no later than", "within")

DATE_CUES = re.compile(r"\b(?:effective|deadline|due|until|no later than|expir\w*|starts?|starting|begins?|ends|"
                       r"end date|cut-?off|closes|takes effect|sunset|deprecat\w*|retire\w*|freeze|renew\w*|"
                       r"submitted|submit)\b", re.I)


@dataclass(frozen=True, slots=True)
class ConflictConfig:
    """Which passages are compared and how alike their sentences must be."""

    doc_types: tuple[str, ...] = ("policy", "spec", "other")
    neighbours: int = 8  # most similar passages of other documents examined per passage
    min_passage_similarity: float = 0.35
    min_similarity: float = 0.6  # cosine of the two sentences
    min_shared_terms: int = 3
    min_overlap: float = 0.5  # idf-weighted share of the two sentences' terms that both use (Jaccard)
    max_passages: int = 20_000  # passages holding a quantity that are compared (pairwise, in blocks)

    def __post_init__(self) -> None:
        if self.neighbours < 1 or self.min_shared_terms < 1 or self.max_passages < 2:
            raise ConfigError(f"neighbours and min_shared_terms must be >= 1 and max_passages >= 2, got "
                              f"{self.neighbours}, {self.min_shared_terms}, {self.max_passages}")
        if not (-1.0 <= self.min_passage_similarity <= 1.0 and -1.0 <= self.min_similarity <= 1.0
                and 0.0 < self.min_overlap <= 1.0):
            raise ConfigError("similarities must be in [-1, 1] and min_overlap in (0, 1]")


@dataclass(frozen=True, slots=True)
class Statement:
    """A sentence (or list item, table row) that states at least one quantity."""

    doc_id: str
    chunk_id: str
    version: str
    text: str  # an exact substring of the passage (or cited quote) it came from
    quantities: tuple[Quantity, ...]
    terms: dict  # stemmed term -> the word as written, in order


def statements(doc_id: str, chunk_id: str, version: str, text: str) -> list[Statement]:
    """The units of `text` that state a quantity. A date counts only next to a word that makes it a rule
    (effective, deadline, until ...): version tables and release logs carry dates that differ by nature."""
    out = []
    for u in split_units(text):
        dated = DATE_CUES.search(u.text) is not None
        qs = tuple(q for q in quantities(u.text) if dated or q.unit != "date")
        if not qs:
            continue
        rest, pos = [], 0
        for q in qs:  # the quantities themselves are not subject terms
            rest.append(u.text[pos:q.start])
            pos = q.end
        rest.append(u.text[pos:])
        found = dict(words(" ".join(rest) + " " + u.context))
        out.append(Statement(doc_id, chunk_id, version, u.text, qs, found))
    return out


def _same(unit: str, a: str, b: str) -> bool:
    if unit == "date" and (a.startswith("--") or b.startswith("--")):
        return a[-5:] == b[-5:]  # a date without a year matches any year
    return a == b


def _shared(a: Statement, b: Statement, cfg: ConflictConfig, idf: dict[str, float]) -> list[str] | None:
    """The subject terms two statements share, or None when they are not about the same thing: too few
    shared terms, or too little of the rarer terms (idf-weighted) shared. Weighting keeps templated lines
    ('k8s.io/kubernetes/pkg/controller/statefulset: 86%' vs '.../cronjob: 52%') apart: their common
    words are everywhere, the one that differs is rare."""
    shared = [t for t in a.terms if t in b.terms]
    if len(shared) < cfg.min_shared_terms:
        return None
    top = idf.get("", 1.0)

    def w(ts) -> float:
        return sum(idf.get(t, top) for t in ts)

    union = w(set(a.terms) | set(b.terms))
    if w(shared) / max(1e-9, union) < cfg.min_overlap:
        return None
    return shared


def _values(s: Statement, unit: str, same_doc: Sequence[Statement], cfg: ConflictConfig,
            idf: dict[str, float]) -> set[str]:
    """What a document says for the subject of `s` in `unit`: s's values and those of its sentences on the
    same subject. A schedule (week 1-4: 100%, week 5-8: 60%) thus counts as one set of values."""
    out = {q.value for q in s.quantities if q.unit == unit}
    for o in same_doc:
        if o is not s and o.text != s.text and _shared(s, o, cfg, idf):
            out.update(q.value for q in o.quantities if q.unit == unit)
    return out


def compare(a: Statement, b: Statement, cfg: ConflictConfig, doc_a: Sequence[Statement] = (),
            doc_b: Sequence[Statement] = (), idf: dict[str, float] | None = None) -> dict | None:
    """The differing quantities and shared subject of two statements, or None when they differ in subject
    or their documents share a value for it (`doc_a`, `doc_b`: the other statements of each document)."""
    idf = idf or {}
    shared = _shared(a, b, cfg, idf)
    if shared is None:
        return None
    units = [u for u in dict.fromkeys(q.unit for q in a.quantities) if any(q.unit == u for q in b.quantities)]
    differing = []
    for u in units:
        va, vb = _values(a, u, doc_a, cfg, idf), _values(b, u, doc_b, cfg, idf)
        if not any(_same(u, x, y) for x in va for y in vb):
            differing.append(u)
    if not differing:
        return None
    both = (a.text + " " + b.text).lower()
    kind = "date" if "date" in differing else "limit" if any(c in both for c in LIMIT_CUES) else "number"
    at = [q.start for q in a.quantities if q.unit in differing]

    def distance(t: str) -> int:  # a number's subject is mostly next to it: "carry over 40 hours of unused PTO"
        pos = a.text.find(a.terms[t])
        return min(abs(pos - x) for x in at) if pos >= 0 else len(a.text)

    key = set(sorted(shared, key=distance)[:SUBJECT_TERMS])
    return {"subject": " ".join(a.terms[t] for t in shared if t in key), "kind": kind, "units": differing,
            "a": [q.text for q in a.quantities if q.unit in differing],
            "b": [q.text for q in b.quantities if q.unit in differing]}


def _idf(said: Sequence[Statement]) -> dict[str, float]:
    """Inverse statement frequency of each term; "" holds the weight of a term seen nowhere."""
    df = Counter(t for st in said for t in st.terms)
    n = len(said)
    return {"": math.log(1 + n), **{t: math.log(1 + n / c) for t, c in df.items()}}


def _pairs(vecs: np.ndarray, owners: list[str], cfg: ConflictConfig) -> set[tuple[int, int]]:
    """Index pairs of passages of different documents that are among each other's near neighbours."""
    out: set[tuple[int, int]] = set()
    owner = np.unique(np.array(owners), return_inverse=True)[1]  # ints compare faster than strings
    k = min(cfg.neighbours, len(vecs) - 1)
    for s in range(0, len(vecs), 512):
        sims = vecs[s:s + 512] @ vecs.T
        sims[owner[s:s + 512, None] == owner[None, :]] = -np.inf  # same document (and the passage itself)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k > 0 else np.zeros((len(sims), 0), dtype=int)
        for r, cols in enumerate(top):
            for c in cols:
                if sims[r, c] >= cfg.min_passage_similarity:
                    i = s + r
                    out.add((min(i, int(c)), max(i, int(c))))
    return out


def find_conflicts(passages: list[tuple[str, str, str, str]], vecs: np.ndarray, embed, cfg: ConflictConfig,
                   cited_old: Iterable[tuple[str, str, str, str]] = ()) -> list[dict]:
    """Conflicts among `passages` ((doc_id, chunk_id, version, text), one unit vector each) and between the
    sentences old versions were cited for ((doc_id, chunk_id, version, quote)) and their current passages."""
    said = [statements(*p) for p in passages]
    by_doc: dict[str, list[Statement]] = {}
    for p, ss in zip(passages, said):
        by_doc.setdefault(p[0], []).extend(ss)
    old: dict[tuple[str, str], list[Statement]] = {}
    for doc_id, chunk_id, version, quote in cited_old:
        old.setdefault((doc_id, version), []).extend(statements(doc_id, chunk_id, version, quote))
    idf = _idf([st for ss in (*said, *old.values()) for st in ss])
    candidates: list[tuple[Statement, Statement, dict, str]] = []
    for i, j in sorted(_pairs(vecs, [p[0] for p in passages], cfg)):
        for a in said[i]:
            for b in said[j]:
                got = compare(a, b, cfg, by_doc[a.doc_id], by_doc[b.doc_id], idf)
                if got:
                    candidates.append((a, b, got, "documents"))
    for (doc_id, _), then in old.items():
        for b in then:
            for a in by_doc.get(doc_id, ()):
                got = compare(a, b, cfg, by_doc[doc_id], then, idf)
                if got:
                    candidates.append((a, b, got, "versions"))
    if not candidates:
        return []
    texts = list(dict.fromkeys(t for a, b, _, _ in candidates for t in (a.text, b.text)))
    emb = np.asarray(embed(texts), dtype=np.float32)
    emb /= np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)
    at = {t: i for i, t in enumerate(texts)}
    out, seen = [], set()
    for a, b, got, scope in candidates:
        sim = float(emb[at[a.text]] @ emb[at[b.text]])
        key = tuple(sorted([(a.doc_id, a.version, a.text), (b.doc_id, b.version, b.text)]))
        if sim < cfg.min_similarity or key in seen:
            continue
        seen.add(key)
        cid = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
        out.append({"id": cid, "subject": got["subject"], "kind": got["kind"], "scope": scope,
                    "units": got["units"], "similarity": round(sim, 4),
                    "a": {"chunk_id": a.chunk_id, "doc_id": a.doc_id, "version": a.version, "quote": a.text,
                          "values": got["a"]},
                    "b": {"chunk_id": b.chunk_id, "doc_id": b.doc_id, "version": b.version, "quote": b.text,
                          "values": got["b"]}})
    out.sort(key=lambda c: (-c["similarity"], c["id"]))
    return out


def conflicts_report(audit: AuditLog, store: SqliteStore, vectors: ChunkStore, embedder: Embedder,
                     limit: int = 50, cfg: ConflictConfig | None = None, owner: str | None = None) -> dict:
    """The conflicts report over the whole knowledge base (GET /v1/analytics/conflicts, `lore conflicts`).
    A conflict's owners are those of both its documents; `owner` keeps the conflicts of one owner's
    documents (before `limit`), `by_owner` counts all of them."""
    cfg = cfg or ConflictConfig()
    generated = utc_iso(datetime.now(timezone.utc))
    docs = {d.id: d for d in store.documents() if d.doc_type in cfg.doc_types}
    passages: list[tuple[str, str, str, str]] = []
    for doc_id in docs:
        for chunk in store.chunks(doc_id):
            if quantities(chunk.text):
                passages.append((doc_id, chunk.id, chunk.version, chunk.text))
    if len(passages) > cfg.max_passages:
        log.warning("conflicts: comparing the first %d of %d passages that state a quantity", cfg.max_passages,
                    len(passages))
        passages = passages[:cfg.max_passages]
    got: dict[str, np.ndarray] = {}
    for s in range(0, len(passages), 500):
        got.update((i, v) for i, (v, _) in vectors.get([p[1] for p in passages[s:s + 500]]).items())
    passages = [p for p in passages if p[1] in got]  # a passage without a vector cannot be compared
    vecs = np.stack([got[p[1]] for p in passages]).astype(np.float32) if passages else np.zeros((0, 1), np.float32)
    vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
    cited_old: dict[tuple, None] = {}  # an ordered set of (doc id, chunk id, version, quote); records are JSON
    for r in audit.iter_records():
        for c in r.citations:
            d = docs.get(c.get("doc_id") or "")
            if d is not None and c.get("version") and c["version"] != d.version and c.get("quote"):
                cited_old.setdefault((d.id, c.get("chunk_id"), c["version"], c["quote"]), None)
    found = find_conflicts(passages, vecs, embedder.embed_documents, cfg, list(cited_old))
    keys = []
    for c in found:
        for side in ("a", "b"):
            d = docs[c[side]["doc_id"]]
            c[side].update(title=d.title, uri=d.uri, doc_type=d.doc_type, current=c[side]["version"] == d.version,
                           owners=list(d.owners))
        c["owners"] = list(dict.fromkeys([*c["a"]["owners"], *c["b"]["owners"]]))
        keys.append(owner_keys([c["a"]["owners"], c["b"]["owners"]]))
    mine = [c for c, k in zip(found, keys) if owned_by(k, owner)]
    return {"generated_at": generated, "owner": owner, "by_owner": by_owner(keys), "conflicts": mine[:limit]}
