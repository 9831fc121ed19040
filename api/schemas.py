"""HTTP request and response bodies: pydantic at the edge, converted to the core's frozen dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from ingest.access import Filters

MAX_QUESTION = 2000


def _lone_surrogate(value: Any, where: str = "") -> tuple[str, int] | None:
    """Where in a JSON value (strings, list items, object keys and values) a lone surrogate sits, if anywhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return where, exc.start
    elif isinstance(value, list):
        return next((f for i, v in enumerate(value) if (f := _lone_surrogate(v, f"{where}[{i}]"))), None)
    elif isinstance(value, dict):
        for k, v in value.items():
            if (f := _lone_surrogate(k, f"{where} key {k!r}" if where else f"key {k!r}")) or \
                    (f := _lone_surrogate(v, f"{where}.{k}" if where else repr(k))):
                return f
    return None


def _valid_unicode(value: Any) -> Any:
    """JSON's \\ud800 escapes decode to lone surrogates, which no store, model or log can encode: a 422 here."""
    found = _lone_surrogate(value)
    if found is not None:
        where, at = found
        raise PydanticCustomError("unicode", "holds a lone surrogate (an unpaired \\ud800-\\udfff escape) {where}at "
                                  "character {at}; send valid Unicode text",
                                  {"where": f"in {where} " if where else "", "at": at})
    return value


# Apply to any input field that holds text, alone or inside lists, dicts and unions (checked before the type,
# so a union does not report one error per branch): `Annotated[str | list[Part], UNICODE]`.
UNICODE = BeforeValidator(_valid_unicode)
Text = Annotated[str, UNICODE]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FiltersIn(Strict):
    """Narrow what is searched. All given fields must hold; a list matches any of its values."""

    doc_types: list[Literal["policy", "spec", "incident", "other"]] = Field([], max_length=4)
    doc_ids: list[Text] = Field([], max_length=200)
    path_prefix: Text | None = Field(None, max_length=1000, description="source path starts with this")
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    metadata: Annotated[dict[str, str | int | float | bool], UNICODE] = Field(
        {}, description="front-matter key = value", max_length=20)

    def to_filters(self) -> Filters:
        return Filters(doc_types=tuple(self.doc_types), doc_ids=tuple(self.doc_ids), path_prefix=self.path_prefix,
                       updated_after=self.updated_after, updated_before=self.updated_before,
                       metadata=tuple(self.metadata.items()))


class Turn(Strict):
    role: Literal["user", "assistant"]
    content: Text = Field(..., max_length=8000)


def _question(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty or only spaces")
    return v


class AskIn(Strict):
    question: Text = Field(..., min_length=1, max_length=MAX_QUESTION, examples=["How many PTO hours carry over?"])
    filters: FiltersIn | None = None
    history: list[Turn] | None = Field(None, max_length=20, description="earlier turns, oldest first, "
                                       "so a follow-up ('and for contractors?') is understood")

    _q = field_validator("question")(_question)


class SearchIn(Strict):
    query: Text = Field(..., min_length=1, max_length=MAX_QUESTION, examples=["payments api rate limit"])
    top_k: int = Field(10, ge=1, le=100)
    filters: FiltersIn | None = None
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"

    _q = field_validator("query")(_question)


class CitationOut(BaseModel):
    marker: int = Field(..., description="the [n] in the answer text this quote backs; a number the text does not "
                        "use marks a further quote from the answer's first document, shown as context")
    chunk_id: str
    doc_id: str
    title: str
    uri: str
    doc_type: str
    section: list[str]
    page: int | None
    start: int = Field(..., description="the quote's character span in the document's normalized text")
    end: int
    version: str = Field(..., description="sha256 of the cited document version")
    quote: str = Field(..., description="a verified substring of the passage")


class StagesOut(BaseModel):
    dense_rank: int | None
    dense_score: float | None
    keyword_rank: int | None
    keyword_score: float | None
    rerank_score: float | None


class AlternativeOut(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    uri: str


class PassageFields(BaseModel):
    """A passage and its provenance: what a hit and an opened citation both show."""

    chunk_id: str
    doc_id: str
    title: str
    uri: str
    doc_type: str
    version: str = Field(..., description="sha256 of the document version the passage belongs to")
    updated_at: str
    section: list[str]
    page_start: int | None
    page_end: int | None
    start: int = Field(..., description="the passage's span in the document's normalized text")
    end: int
    text: str = Field(..., description="the passage")


class HitOut(PassageFields):
    rank: int
    score: float
    stages: StagesOut
    alternatives: list[AlternativeOut] = Field(..., description="the same text found in other places")


class Timings(BaseModel):
    retrieve_ms: float
    answer_ms: float
    total_ms: float


class AnswerOut(BaseModel):
    id: str | None = None
    question: str
    text: str = Field(..., description="the answer with inline markers [1], [2] ... ")
    status: Literal["answered", "extractive", "no_evidence"]
    confidence: float
    citations: list[CitationOut]
    hits: list[HitOut] = Field(..., description="the passages considered; with no_evidence, the closest sources")
    timings: Timings
    models: dict[str, str]
    trace_id: str
    notes: list[str]
    usage: dict[str, int]


class SearchOut(BaseModel):
    query: str
    hits: list[HitOut]
    timings_ms: dict[str, float]


class CallerOut(BaseModel):
    user: str | None
    groups: list[str]
    role: Literal["reader", "admin"]
    via: Literal["key", "proxy", "demo", "slack"]
    key_id: str | None


class ErrorBody(BaseModel):
    code: str = Field(..., examples=["not_found"])
    message: str = Field(..., description="what went wrong and what to do")
    trace_id: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


def errors(*codes: int) -> dict:
    """OpenAPI `responses=` for the error statuses a route can return."""
    text = {400: "Bad input", 401: "Missing or invalid API key", 403: "Needs an admin key", 404: "Not found",
            409: "Conflict", 413: "Request too large", 415: "Unsupported file type", 422: "Invalid request body",
            503: "A store or model is unavailable"}
    return {c: {"model": ErrorOut, "description": text[c]} for c in codes}
