"""Fusing the dense and keyword rankings: reciprocal rank fusion or a weighted sum of normalized scores."""

from __future__ import annotations

from typing import Sequence

Ranking = Sequence[tuple[str, float]]


def rrf(dense: Ranking, keyword: Ranking, k: int = 60, dense_weight: float = 0.5) -> list[tuple[str, float]]:
    """Σ w / (k + rank): uses ranks only, so the two score scales never need to agree."""
    out: dict[str, float] = {}
    for ranking, w in ((dense, dense_weight), (keyword, 1.0 - dense_weight)):
        for i, (cid, _) in enumerate(ranking):
            out[cid] = out.get(cid, 0.0) + w / (k + i + 1)
    return sorted(out.items(), key=lambda p: (-p[1], p[0]))


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
    return sorted(out.items(), key=lambda p: (-p[1], p[0]))


def fuse(dense: Ranking, keyword: Ranking, method: str = "weighted", dense_weight: float = 0.5,
         rrf_k: int = 60) -> list[tuple[str, float]]:
    if not keyword:
        return list(dense)
    if not dense:
        return list(keyword)
    if method == "rrf":
        return rrf(dense, keyword, rrf_k, dense_weight)
    return weighted(dense, keyword, dense_weight)
