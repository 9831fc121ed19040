"""Fusing the dense and keyword rankings (docs/decisions/0003-fusion.md).

- `zscore` (recommended): dense cosine kept as it is, BM25 standardized within the query's keyword
  list. Cosine is already on one scale for every query, so its absolute level says how sure the dense
  side is; BM25 is not (it grows with query length and term rarity), so only it is normalized.
- `weighted`: convex sum of min-max normalized scores (both sides normalized per query).
- `rrf`: reciprocal rank fusion; ranks only.
"""

from __future__ import annotations

from math import sqrt
from typing import Sequence

Ranking = Sequence[tuple[str, float]]
KEYWORD_UNIT = 0.1  # zscore: one standard deviation of BM25 counts as this much cosine similarity


def rrf(dense: Ranking, keyword: Ranking, k: int = 60, dense_weight: float = 0.5) -> list[tuple[str, float]]:
    """Σ w / (k + rank): uses ranks only, so the two score scales never need to agree."""
    out: dict[str, float] = {}
    for ranking, w in ((dense, dense_weight), (keyword, 1.0 - dense_weight)):
        for i, (cid, _) in enumerate(ranking):
            out[cid] = out.get(cid, 0.0) + w / (k + i + 1)
    return _sorted(out)


def _normalized(ranking: Ranking) -> dict[str, float]:
    """Min-max within this query's list; a passage absent from a list scores 0 there."""
    if not ranking:
        return {}
    scores = [s for _, s in ranking]
    lo, hi = min(scores), max(scores)
    span = hi - lo
    return {cid: (s - lo) / span if span > 0 else 1.0 for cid, s in ranking}


def weighted(dense: Ranking, keyword: Ranking, dense_weight: float = 0.5) -> list[tuple[str, float]]:
    """w · dense + (1 - w) · keyword over min-max normalized scores (a convex combination)."""
    d, kw = _normalized(dense), _normalized(keyword)
    ids = dict.fromkeys([*d, *kw])
    out = {cid: dense_weight * d.get(cid, 0.0) + (1.0 - dense_weight) * kw.get(cid, 0.0) for cid in ids}
    return _sorted(out)


def standardized(ranking: Ranking) -> tuple[dict[str, float], float]:
    """Z-scores within this list, and the score a passage missing from it gets: the list's lowest.

    The list holds the best `depth` candidates, so anything absent scored at most the lowest one.
    """
    if not ranking:
        return {}, 0.0
    scores = [s for _, s in ranking]
    mean = sum(scores) / len(scores)
    std = sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if std <= 0.0:
        return {cid: 0.0 for cid, _ in ranking}, 0.0
    z = {cid: (s - mean) / std for cid, s in ranking}
    return z, (min(scores) - mean) / std


def zscore(dense: Ranking, keyword: Ranking, dense_weight: float = 0.7,
           keyword_unit: float = KEYWORD_UNIT) -> list[tuple[str, float]]:
    """w · cosine + (1 - w) · unit · z(BM25): raw dense similarity plus the standardized keyword score.

    A passage missing from one list gets that list's lowest value (its lowest cosine, its lowest
    z-score): it ranked below every listed candidate there. With w = 0.7 the keyword side weighs
    0.043 cosine per standard deviation.
    """
    d = dict(dense)
    d_missing = min(d.values()) if d else 0.0
    z, z_missing = standardized(keyword)
    kw_w = (1.0 - dense_weight) * keyword_unit
    out = {cid: dense_weight * d.get(cid, d_missing) + kw_w * z.get(cid, z_missing) for cid in dict.fromkeys([*d, *z])}
    return _sorted(out)


def fuse(dense: Ranking, keyword: Ranking, method: str = "weighted", dense_weight: float = 0.5,
         rrf_k: int = 60) -> list[tuple[str, float]]:
    if not keyword:
        return list(dense)
    if not dense:
        return list(keyword)
    if method == "rrf":
        return rrf(dense, keyword, rrf_k, dense_weight)
    if method == "zscore":
        return zscore(dense, keyword, dense_weight)
    return weighted(dense, keyword, dense_weight)


def _sorted(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda p: (-p[1], p[0]))
