"""Analytics for documentation owners (admins): knowledge gaps, stale sources and conflicting passages."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from evals.analytics import NO_OWNER, conflicts_report, gaps_report, stale_report
from ingest.keys import Caller
from api.deps import Lazy, admin, get_audit, get_embedder, get_settings, get_store, get_vectors
from api.settings import Settings
from evals.audit import AuditLog
from ingest.chroma_store import ChromaChunkStore
from ingest.embedders import Embedder
from ingest.sqlite_store import SqliteStore
from api.routes.admin import _instant
from api.schemas import errors

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])
_SINCE = Query(max_length=40, description="from this ISO date or date-time (UTC unless it names a zone), inclusive",
               examples=["2026-01-01"])
_UNTIL = Query(max_length=40, description="up to this date-time, exclusive; a bare date includes that whole day")
_OWNER = Query(min_length=1, max_length=200, description=f"only items one of whose documents this owner keeps (an "
               f"owner token as the documents carry it, e.g. group:people-ops; {NO_OWNER!r}: documents without "
               "owners)", examples=["group:people-ops"])


def _owners():
    return Field(..., description="owners of the item's documents: from the source (CODEOWNERS, page author), "
                 "`lore ingest --owner`, or front matter `owners:`/`owner:`")


def _by_owner():
    return Field(..., description=f"items per owner before the owner filter and limit, most first; an item counts "
                 f"for each owner of its documents, and under {NO_OWNER!r} for a document without owners",
                 examples=[{"group:people-ops": 3, NO_OWNER: 1}])


def _filter():
    return Field(..., description="the owner filter applied, if any")


class GapReasons(BaseModel):
    no_evidence: int = Field(..., description="questions answered 'not found'")
    low_confidence: int = Field(..., description="answers with weak evidence (near LORE_ANSWER__THRESHOLD) or, "
                                "from the LLM, with sentences dropped for lack of a valid citation")
    down_voted: int = Field(..., description="answers whose latest rating is a thumbs down")


class GapDocument(BaseModel):
    doc_id: str
    title: str
    uri: str
    doc_type: str
    owners: list[str] = _owners()
    score: float = Field(..., description="cosine similarity of the document's closest passage to the cluster")


class TrendPoint(BaseModel):
    period: str = Field(..., description="ISO week (2026-W07) or day (2026-02-14)", examples=["2026-W07"])
    count: int


class GapCluster(BaseModel):
    id: int = Field(..., description="rank among the period's clusters (before the owner filter), 1 = reaches "
                    "the most people")
    label: str = Field(..., description="the question closest to the cluster's centre")
    terms: list[str] = Field(..., description="stemmed terms frequent in this cluster and rare in the others")
    size: int = Field(..., description="questions in the cluster")
    people: int = Field(..., description="distinct askers (users, or API keys without a user)")
    questions: list[str] = Field(..., description="up to 5 distinct examples, most central first (redacted as "
                                 "recorded)")
    reasons: GapReasons
    nearest_documents: list[GapDocument] = Field(..., description="existing documents closest to the topic, whatever "
                                             "their ACL")
    groups: dict[str, int] = Field(..., description="questions per group of the askers")
    channels: dict[str, int] = Field(..., description="questions per channel: api, web, slack, openai, mcp")
    trend: list[TrendPoint] = Field(..., description="questions per ISO week (or day), first to last seen, empty "
                                "periods included")
    first_seen: str = Field(..., description="UTC, ISO 8601")
    last_seen: str
    owners: list[str] = Field(..., description="owners of its nearest documents: a gap has no document of its "
                              "own, the closest ones are where its answer belongs")


class GapsOut(BaseModel):
    generated_at: str
    since: str | None
    until: str | None
    questions_considered: int = Field(..., description="gap questions found in the period, before min_size")
    owner: str | None = _filter()
    by_owner: dict[str, int] = _by_owner()
    clusters: list[GapCluster]


class StaleDoc(BaseModel):
    doc_id: str
    title: str
    uri: str
    doc_type: str
    updated_at: str = Field(..., description="from the front matter (updated, last_updated, ...) or file time")
    age_days: float = Field(..., description="days since updated_at")
    citations: int = Field(..., description="answers that cited the document")
    last_cited_at: str
    cited_old_versions: int = Field(..., description="of those, answers that cited a version older than the "
                                    "current one")
    version: str
    owners: list[str] = _owners()
    owner: str | None = Field(..., description="the owners joined by ', ', or null: kept for older clients, "
                              "read `owners`")


class StaleOut(BaseModel):
    generated_at: str
    since: str | None
    until: str | None
    owner: str | None = _filter()
    by_owner: dict[str, int] = _by_owner()
    documents: list[StaleDoc]


class ConflictSide(BaseModel):
    chunk_id: str | None
    doc_id: str
    title: str
    uri: str
    doc_type: str
    version: str
    current: bool = Field(..., description="false: a superseded version that answers still cite")
    quote: str = Field(..., description="the sentence stating the value: an exact substring of the passage (or "
                       "of the cited quote, for a superseded version)")
    values: list[str] = Field(..., description="the differing quantities as written", examples=[["40 hours"]])
    owners: list[str] = _owners()


class Conflict(BaseModel):
    id: str = Field(..., description="stable for the same two sentences")
    subject: str = Field(..., description="the content words both sentences share")
    kind: Literal["number", "date", "limit"]
    scope: Literal["documents", "versions"] = Field(..., description="two documents, or a cited old version and "
                                                    "the current one")
    units: list[str]
    similarity: float = Field(..., description="cosine similarity of the two sentences")
    owners: list[str] = Field(..., description="owners of both documents, a's first")
    a: ConflictSide
    b: ConflictSide


class ConflictsOut(BaseModel):
    generated_at: str
    owner: str | None = _filter()
    by_owner: dict[str, int] = _by_owner()
    conflicts: list[Conflict]


@router.get("/gaps", response_model=GapsOut, responses=errors(401, 403, 422, 503),
            summary="Knowledge gaps: clusters of unanswered, weak or down-voted questions (admin)")
def gaps(_: Caller = Depends(admin), audit: Lazy[AuditLog] = Depends(get_audit), store: SqliteStore = Depends(get_store),
         vectors: ChromaChunkStore = Depends(get_vectors), embedder: Embedder = Depends(get_embedder),
         settings: Settings = Depends(get_settings),
         since: Annotated[str | None, _SINCE] = None, until: Annotated[str | None, _UNTIL] = None,
         min_size: Annotated[int, Query(ge=1, le=10_000, description="leave out smaller clusters")] = 1,
         period: Annotated[Literal["week", "day"], Query(description="trend buckets: ISO weeks or days")] = "week",
         owner: Annotated[str | None, _OWNER] = None) -> dict:
    """Questions answered 'not found', with low confidence, or rated down, clustered by meaning with the
    embedding model. Each cluster has its size, distinct askers, example questions, the nearest existing
    documents, the askers' groups and channels, and a weekly (or daily) trend; ranked by people, then
    questions. A cluster's owners are those of its nearest documents (`owner` filters on them, `by_owner`
    counts clusters per owner). Reads every recorded question and document whatever its ACL: admins only."""
    return gaps_report(audit(), store, vectors, embedder, settings.answer.threshold, _instant(since, "since", False), _instant(until, "until", True), min_size, period,
                       owner=owner)


@router.get("/stale", response_model=StaleOut, responses=errors(401, 403, 422, 503),
            summary="Stale sources: the most-cited documents, oldest update first (admin)")
def stale(_: Caller = Depends(admin), audit: Lazy[AuditLog] = Depends(get_audit), store: SqliteStore = Depends(get_store),
          limit: Annotated[int, Query(ge=1, le=500, description="how many of the most-cited documents")] = 20,
          since: Annotated[str | None, _SINCE] = None, until: Annotated[str | None, _UNTIL] = None,
          owner: Annotated[str | None, _OWNER] = None) -> dict:
    """Takes the `limit` documents cited by the most answers (in the audit log, within since/until) and
    orders them by age since their last update, with citation counts, when last cited, and how many
    answers cited an older version than the current one. With `owner`, the most-cited documents of that
    owner."""
    return stale_report(audit(), store, limit, _instant(since, "since", False), _instant(until, "until", True), owner)


@router.get("/conflicts", response_model=ConflictsOut, responses=errors(401, 403, 422, 503),
            summary="Conflicts: passages giving different numbers, dates or limits for the same thing (admin)")
def conflicts(_: Caller = Depends(admin), audit: Lazy[AuditLog] = Depends(get_audit),
              store: SqliteStore = Depends(get_store), vectors: ChromaChunkStore = Depends(get_vectors),
              embedder: Embedder = Depends(get_embedder),
              limit: Annotated[int, Query(ge=1, le=500)] = 50, owner: Annotated[str | None, _OWNER] = None) -> dict:
    """Pairs of sentences from different documents (policies, specs, other; not incident reports), or from
    a superseded version still cited and the current one, that state the same subject with different
    values in the same unit (e.g. 40 vs 80 hours of PTO carry-over). Both quotes, their passages and
    versions, the differing values and the sentences' similarity; most similar first. `owner` keeps the
    conflicts that involve a document of that owner."""
    return conflicts_report(audit(), store, vectors, embedder, limit, owner=owner)
