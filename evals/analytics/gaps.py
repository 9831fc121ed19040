"""Knowledge gaps: questions the knowledge base did not answer well, clustered by topic and ranked by reach.

A gap question is one answered `no_evidence`, answered with low confidence, or whose latest rating is a
thumbs down. Questions are embedded with the configured model and clustered by average-linkage on cosine
distance (scipy), so 'parental leave?' and 'maternity leave weeks' land together. Each cluster lists how
many questions and people it covers, examples, reasons, the nearest existing documents, who asked (groups,
channels) and the trend; clusters are ranked by people, then questions. This tells documentation owners
what to write next.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np

from evals.analytics.owners import by_owner, owned_by, owner_keys
from evals.analytics.text import terms
from evals.audit import CHANNELS, AuditRecord, utc_iso
from ingest.errors import ConfigError

if TYPE_CHECKING:
    from evals.audit import AuditLog
    from ingest.chroma_store import ChromaChunkStore
    from ingest.embedders import Embedder
    from ingest.sqlite_store import SqliteStore

log = logging.getLogger(__name__)
REASONS = ("no_evidence", "low_confidence", "down_voted")


@dataclass(frozen=True, slots=True)
class GapConfig:
    """How gap questions are chosen and clustered."""

    low_margin: float = 0.05  # extractive answers scoring less than this above the answer threshold are weak
    llm_min_grounded: float = 0.75  # LLM answers: the share of sentences that kept a valid citation
    distance: float = 0.6  # average cosine distance under which questions share a topic (MiniLM: paraphrases ~0.3-0.5)
    min_size: int = 1
    examples: int = 5
    nearest: int = 3
    terms: int = 5
    max_points: int = 5000  # distinct questions clustered (the newest); pairwise distances grow with its square
    period: str = "week"  # trend buckets: ISO week (2026-W07) or day (2026-02-14)

    def __post_init__(self) -> None:
        if not 0.0 < self.distance <= 2.0:
            raise ConfigError(f"gap clustering distance must be in (0, 2], got {self.distance}")
        if self.min_size < 1 or self.examples < 1 or self.nearest < 0 or self.max_points < 2:
            raise ConfigError(f"min_size and examples must be >= 1, nearest >= 0 and max_points >= 2, got "
                              f"{self.min_size}, {self.examples}, {self.nearest}, {self.max_points}")
        if self.period not in ("week", "day"):
            raise ConfigError(f"trend period must be week or day, got {self.period!r}")


def reasons(record: AuditRecord, threshold: float, cfg: GapConfig) -> tuple[str, ...]:
    """Why a recorded answer is a gap (empty when it is not); `threshold` is LORE_ANSWER__THRESHOLD."""
    out = []
    if record.status == "no_evidence":
        out.append("no_evidence")
    elif record.status == "answered":  # written by the LLM: confidence is the grounded share of its sentences
        if record.confidence < cfg.llm_min_grounded:
            out.append("low_confidence")
    elif record.confidence < threshold + cfg.low_margin:
        out.append("low_confidence")
    if record.feedback is not None and record.feedback.rating == "down":
        out.append("down_voted")
    return tuple(out)


def asker(record: AuditRecord) -> str:
    """Who asked: the user id, else the API key, else the anonymous demo caller."""
    if record.user_id:
        return f"user:{record.user_id}"
    return f"key:{record.key_id}" if record.key_id else "anonymous"


def cluster(vectors: np.ndarray, distance: float) -> np.ndarray:
    """Cluster labels 0..k-1 (in order of first appearance) by average linkage on cosine distance."""
    n = len(vectors)
    if n <= 1:
        return np.zeros(n, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    # clipped: float error makes the distance of two equal vectors slightly negative, which linkage refuses
    d = np.clip(pdist(np.asarray(vectors, dtype=np.float64), "cosine"), 0.0, 2.0)
    raw = fcluster(linkage(d, method="average"), t=distance, criterion="distance")
    order: dict[int, int] = {}
    return np.array([order.setdefault(x, len(order)) for x in raw], dtype=int)


def period_of(t: datetime, period: str) -> str:
    if period == "day":
        return t.date().isoformat()
    y, w, _ = t.isocalendar()
    return f"{y}-W{w:02d}"


def trend(times: Sequence[datetime], period: str) -> list[dict]:
    """Questions per period from the first to the last, empty periods included (a chart needs them)."""
    counts = Counter(period_of(t, period) for t in times)
    step = timedelta(days=7 if period == "week" else 1)
    first, last = min(times).date(), max(times).date()
    if period == "week":
        first, last = first - timedelta(days=first.weekday()), last - timedelta(days=last.weekday())
    out, d = [], first
    while d <= last:
        key = period_of(datetime(d.year, d.month, d.day), period)
        out.append({"period": key, "count": counts.get(key, 0)})
        d += step
    return out


def _when(record: AuditRecord) -> datetime:
    t = datetime.fromisoformat(record.recorded_at)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _distinctive(texts: list[str], df: Counter, n_docs: int, k: int) -> list[str]:
    """The cluster's terms most frequent in it and rare in the other gap questions (tf-idf)."""
    tf = Counter(t for text in texts for t in set(terms(text)))
    score = {t: c * math.log(1 + n_docs / df[t]) for t, c in tf.items() if c > 1 or len(texts) == 1}
    return [t for t, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))[:k]]


def find_gaps(records: Iterable[AuditRecord], embed: Callable[[list[str]], np.ndarray], threshold: float,
              cfg: GapConfig = GapConfig(),
              nearest: Callable[[np.ndarray, int], list[dict]] | None = None) -> tuple[int, list[dict]]:
    """(gap questions considered, clusters ranked by people then questions) from audit records."""
    gap: list[tuple[AuditRecord, tuple[str, ...]]] = []
    for r in records:
        why = reasons(r, threshold, cfg)
        if why and r.question.strip():
            gap.append((r, why))
    if not gap:
        return 0, []
    # identical questions are one point: fewer distances, and a repeated question weighs by its askers
    points: dict[str, list[int]] = {}
    for i, (r, _) in enumerate(gap):
        points.setdefault(" ".join(r.question.lower().split()), []).append(i)
    keys = list(points)
    if len(keys) > cfg.max_points:
        log.warning("gaps: clustering the newest %d of %d distinct questions", cfg.max_points, len(keys))
        keys = sorted(keys, key=lambda k: points[k][-1])[-cfg.max_points:]
    texts = [gap[points[k][0]][0].question for k in keys]
    vecs = np.asarray(embed(texts), dtype=np.float32)
    vecs = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
    labels = cluster(vecs, cfg.distance)
    df = Counter(t for text in texts for t in set(terms(text)))
    clusters = []
    for label in range(int(labels.max()) + 1 if len(labels) else 0):
        members = np.flatnonzero(labels == label)
        rows = [gap[i] for m in members for i in points[keys[m]]]
        if len(rows) < cfg.min_size:
            continue
        centroid = np.average(vecs[members], axis=0, weights=[len(points[keys[m]]) for m in members])
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)  # a question asked often pulls harder
        central = members[np.argsort(-(vecs[members] @ centroid), kind="stable")]
        times = [_when(r) for r, _ in rows]
        counted = Counter(w for _, ws in rows for w in ws)
        channels = Counter(r.channel for r, _ in rows)
        clusters.append({
            "id": 0,
            "label": texts[central[0]],
            "terms": _distinctive([texts[m] for m in members], df, len(texts), cfg.terms),
            "size": len(rows),
            "people": len({asker(r) for r, _ in rows}),
            "questions": [texts[m] for m in central[:cfg.examples]],
            "reasons": {w: counted.get(w, 0) for w in REASONS},
            "nearest_documents": nearest(centroid, cfg.nearest) if nearest and cfg.nearest else [],
            "groups": dict(sorted(Counter(g for r, _ in rows for g in r.groups).items(), key=lambda x: (-x[1], x[0]))),
            "channels": {c: channels.get(c, 0) for c in CHANNELS},
            "trend": trend(times, cfg.period),
            "first_seen": utc_iso(min(times)),
            "last_seen": utc_iso(max(times)),
        })
    clusters.sort(key=lambda c: c["last_seen"], reverse=True)
    clusters.sort(key=lambda c: (-c["people"], -c["size"]))
    for i, c in enumerate(clusters, 1):
        c["id"] = i
    return len(gap), clusters


def nearest_documents(vectors, store, centroid: np.ndarray, k: int) -> list[dict]:
    """The documents whose passages lie closest to a cluster, best first (any ACL: admins only)."""
    found: dict[str, float] = {}
    if vectors.count() == 0:
        return []
    got = vectors.query(centroid, max(20, k * 8))
    chunks = store.get_chunks([c for c, _ in got])  # vectors of superseded versions have no row: skipped
    for chunk_id, score in got:
        c = chunks.get(chunk_id)
        if c is not None and c.doc_id not in found:
            found[c.doc_id] = score
    docs = store.get_documents(list(found)[:k])
    return [{"doc_id": d, "title": docs[d][0].title, "uri": docs[d][0].uri, "doc_type": docs[d][0].doc_type,
             "owners": list(docs[d][0].owners), "score": round(s, 4)} for d, s in list(found.items())[:k] if d in docs]


def gaps_report(audit: AuditLog, store: SqliteStore, vectors: ChromaChunkStore, embedder: Embedder, threshold: float,
                since: datetime | None = None, until: datetime | None = None, min_size: int | None = None,
                period: str | None = None, cfg: GapConfig | None = None, owner: str | None = None) -> dict:
    """The gaps report for an audit log and knowledge base (GET /v1/analytics/gaps, `lore gaps`); `threshold`
    is the answer threshold below which an answered question still counts as weak.

    A gap is a question without a good answer, so it has no document of its own: its owners are those of
    its `nearest_documents`, the documents that should have answered it (or be extended to). `owner` keeps
    the clusters one of whose nearest documents that owner keeps; `by_owner` counts every cluster (ids stay
    the ranks among all clusters)."""
    cfg = cfg or GapConfig()
    if min_size is not None:
        cfg = replace(cfg, min_size=min_size)
    if period is not None:
        cfg = replace(cfg, period=period)
    generated = utc_iso(datetime.now(timezone.utc))
    considered, clusters = find_gaps(audit.iter_records(since, until), embedder.embed_documents, threshold, cfg,
                                     lambda c, k: nearest_documents(vectors, store, c, k))
    keys = [owner_keys(d["owners"] for d in c["nearest_documents"]) for c in clusters]
    for c in clusters:
        c["owners"] = list(dict.fromkeys(o for d in c["nearest_documents"] for o in d["owners"]))
    return {"generated_at": generated, "since": utc_iso(since) if since else None,
            "until": utc_iso(until) if until else None, "questions_considered": considered, "owner": owner,
            "by_owner": by_owner(keys), "clusters": [c for c, k in zip(clusters, keys) if owned_by(k, owner)]}
