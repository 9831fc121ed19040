"""What a search gives back: hits with their provenance (Hit, Alternative) and the result (SearchResult)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from ingest.types import Chunk, SourceDoc

@dataclass(frozen=True, slots=True)
class Alternative:
    """A near-duplicate passage collapsed under a hit: the same text in another place."""

    chunk_id: str
    doc_id: str
    title: str
    uri: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved passage with its provenance, fused score and the rank it had in each stage."""

    chunk: Chunk
    doc: SourceDoc
    score: float
    rank: int
    dense_rank: int | None = None
    dense_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None
    rerank_score: float | None = None
    alternatives: tuple[Alternative, ...] = ()

    def to_dict(self) -> dict:
        c, d = self.chunk, self.doc
        return {
            "rank": self.rank, "score": round(self.score, 6), "chunk_id": c.id, "doc_id": d.id,
            "title": d.title, "uri": d.uri, "doc_type": d.doc_type, "version": d.version,
            "updated_at": d.updated_at, "section": list(c.section), "page_start": c.page_start,
            "page_end": c.page_end, "start": c.start, "end": c.end, "text": c.text,
            "stages": {"dense_rank": self.dense_rank, "dense_score": _r(self.dense_score),
                       "keyword_rank": self.keyword_rank, "keyword_score": _r(self.keyword_score),
                       "rerank_score": _r(self.rerank_score)},
            "alternatives": [asdict(a) for a in self.alternatives],
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    hits: tuple[Hit, ...]
    timings_ms: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"query": self.query, "hits": [h.to_dict() for h in self.hits], "timings_ms": self.timings_ms}
