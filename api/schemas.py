"""HTTP request and response bodies: pydantic at the edge; requests become core dataclasses, responses are read
from them (`CoreView`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, AliasPath, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from assistant.types import Answer, Citation
from ingest.access import Filters
from ingest.keys import Caller, KeyInfo
from ingest.types import Chunk, SourceDoc
from retriever.types import Alternative, Hit, SearchResult

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


class _With:
    """A core object seen with further attributes: the edge fields it does not have, or parts of a view."""

    def __init__(self, obj: Any, extra: dict[str, Any]) -> None:
        self._obj, self._extra = obj, extra

    def __getattr__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        return getattr(self._obj, name)


class CoreView(BaseModel):
    """A response body read from a core dataclass (`HitOut.of(hit)`), never copied from it field by field.

    A field is the core attribute of its name, or the one its `validation_alias` names (an AliasPath into
    nested dataclasses); `itself` lists fields that nest the object's own attributes (`stages`). Every core
    field is shown or named in `hidden` with why; `computed` names the edge's own fields, given to `of`.
    tests/test_edge_schemas.py checks all of this and that the types agree, so a field added to a core type
    cannot go missing here unnoticed. Dicts with the edge's field names validate too (stored reports).
    """

    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)
    core: ClassVar[type | dict[str, type]]  # a dict: the view reads these attributes, each a core type
    hidden: ClassVar[dict[str, str]] = {}  # core field ("chunk.ordinal" in a part) -> why the edge leaves it out
    computed: ClassVar[dict[str, str]] = {}  # edge field the core object lacks (or it replaces) -> what it is
    itself: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:  # a dict is the view's own JSON again (FastAPI validates what routes return)
        if cls.itself and not isinstance(data, dict):
            return _With(data, {name: data for name in cls.itself})
        return data

    @classmethod
    def of(cls, obj: Any = None, /, **given: Any) -> Self:
        """The view of one core object (or of its parts, by name), with the `computed` fields given here."""
        return cls.model_validate(_With(obj, given) if given else obj)


def _round(digits: int) -> AfterValidator:
    return AfterValidator(lambda x: round(x, digits))


Score = Annotated[float, _round(6)]  # fused and per-stage scores, as shown


class CitationOut(CoreView):
    core = Citation

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


class StagesOut(BaseModel):  # a hit's rank and score in each stage: the Hit's own fields, nested on the wire
    model_config = ConfigDict(from_attributes=True)

    dense_rank: int | None
    dense_score: Score | None
    keyword_rank: int | None
    keyword_score: Score | None
    rerank_score: Score | None


class AlternativeOut(CoreView):
    core = Alternative

    chunk_id: str
    doc_id: str
    title: str
    uri: str


def _chunk(name: str) -> AliasPath:
    return AliasPath("chunk", name)


def _doc(name: str) -> AliasPath:
    return AliasPath("doc", name)


class PassageFields(CoreView):
    """A passage and its provenance: what a hit and an opened citation both show."""

    core: ClassVar[type | dict[str, type]] = {"chunk": Chunk, "doc": SourceDoc}
    hidden = {"chunk.doc_id": "shown as doc_id", "chunk.version": "shown as the document's version",
              "chunk.ordinal": "internal order; GET /v1/documents/{id} lists passages in order",
              "chunk.content_hash": "internal (dedup)", "chunk.token_count": "internal (embedding budget)",
              "doc.ingested_at": "document detail only", "doc.acl": "never shown with passages",
              "doc.size": "document detail only", "doc.chunk_count": "document detail only",
              "doc.owners": "document detail only", "doc.source": "document detail only",
              "doc.external_id": "internal (the item's id inside its source)"}

    chunk_id: str = Field(..., validation_alias=_chunk("id"))
    doc_id: str = Field(..., validation_alias=_doc("id"))
    title: str = Field(..., validation_alias=_doc("title"))
    uri: str = Field(..., validation_alias=_doc("uri"))
    doc_type: str = Field(..., validation_alias=_doc("doc_type"))
    version: str = Field(..., validation_alias=_doc("version"),
                         description="sha256 of the document version the passage belongs to")
    updated_at: str = Field(..., validation_alias=_doc("updated_at"))
    section: list[str] = Field(..., validation_alias=_chunk("section"))
    page_start: int | None = Field(..., validation_alias=_chunk("page_start"))
    page_end: int | None = Field(..., validation_alias=_chunk("page_end"))
    start: int = Field(..., validation_alias=_chunk("start"),
                       description="the passage's span in the document's normalized text")
    end: int = Field(..., validation_alias=_chunk("end"))
    text: str = Field(..., validation_alias=_chunk("text"), description="the passage")


class HitOut(PassageFields):
    core = Hit
    itself = ("stages",)

    rank: int
    score: Score
    stages: StagesOut
    alternatives: list[AlternativeOut] = Field(..., description="the same text found in other places")


class Timings(BaseModel):
    retrieve_ms: float
    answer_ms: float
    total_ms: float


class AnswerOut(CoreView):
    core = Answer
    computed = {"id": "the caller's id for the question (lore ask --jsonl), else null"}

    id: str | None = None
    question: str
    text: str = Field(..., description="the answer with inline markers [1], [2] ... ")
    status: Literal["answered", "extractive", "no_evidence"]
    confidence: Annotated[float, _round(4)]
    citations: list[CitationOut]
    hits: list[HitOut] = Field(..., description="the passages considered; with no_evidence, the closest sources")
    timings: Timings = Field(..., validation_alias=AliasPath("timings_ms"))
    models: dict[str, str]
    trace_id: str
    notes: list[str]
    usage: dict[str, int]


class SearchOut(CoreView):
    core = SearchResult

    query: str
    hits: list[HitOut]
    timings_ms: dict[str, float]


class CallerOut(CoreView):
    core = Caller

    user: str | None = Field(..., validation_alias=AliasPath("principal", "user_id"))
    groups: list[str] = Field(..., validation_alias=AliasPath("principal", "groups"))
    role: Literal["reader", "admin"]
    via: Literal["key", "proxy", "demo", "slack"]
    key_id: str | None


class KeyInfoOut(CoreView):
    """A key's record, as `lore keys list --json` prints it too."""

    core = KeyInfo

    key_id: str = Field(..., description="names the key in lists, the audit log and revocation; not a credential")
    user: str | None = Field(..., validation_alias=AliasPath("user_id"),
                             description="the user id whose permissions apply (none: a service key)")
    groups: list[str]
    role: Literal["reader", "admin"]
    created_at: str
    revoked_at: str | None = Field(..., description="set once revoked: the key then gets 401")
    last_used_at: str | None = Field(..., description="recorded at most once a minute")
    note: str | None


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
