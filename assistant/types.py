"""Answer and Citation: a citation can only be built from a retrieved hit and a verified quote."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from retriever.types import Hit

Status = Literal["answered", "extractive", "no_evidence"]


class QuoteNotInPassage(ValueError):
    """A quote that is not an exact substring of its passage: never shown to a reader."""


@dataclass(frozen=True, slots=True)
class Citation:
    marker: int
    chunk_id: str
    doc_id: str
    title: str
    uri: str
    doc_type: str
    section: tuple[str, ...]
    page: int | None
    start: int  # the quote's span in the document's normalized text
    end: int
    version: str
    quote: str

    @classmethod
    def from_hit(cls, marker: int, hit: Hit, quote: str) -> "Citation":
        at = hit.chunk.text.find(quote)
        if not quote or at < 0:
            raise QuoteNotInPassage(f"quote is not a substring of {hit.chunk.id}")
        c, d = hit.chunk, hit.doc
        return cls(marker, c.id, d.id, d.title, d.uri, d.doc_type, c.section, c.page_start,
                   c.start + at, c.start + at + len(quote), d.version, quote)

    def to_dict(self) -> dict:
        return {"marker": self.marker, "chunk_id": self.chunk_id, "doc_id": self.doc_id, "title": self.title,
                "uri": self.uri, "doc_type": self.doc_type, "section": list(self.section), "page": self.page,
                "start": self.start, "end": self.end, "version": self.version, "quote": self.quote}


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    text: str
    status: Status
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    timings_ms: dict
    models: dict
    trace_id: str
    confidence: float = 0.0
    notes: tuple[str, ...] = ()
    usage: dict = field(default_factory=dict)

    def to_dict(self, id: str | None = None) -> dict:
        out = {"id": id, "question": self.question, "text": self.text, "status": self.status,
               "confidence": round(self.confidence, 4),
               "citations": [c.to_dict() for c in self.citations], "hits": [h.to_dict() for h in self.hits],
               "timings": self.timings_ms, "models": self.models, "trace_id": self.trace_id,
               "notes": list(self.notes), "usage": self.usage}
        return out
