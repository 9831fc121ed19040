"""Feedback on answers (POST /v1/feedback, any caller), the audit log (GET /v1/audit, admins) and the record of
admin actions (GET /v1/audit/actions; `audited` and `admin_for` write it for the routes that change things)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Callable, Iterator, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AliasPath, BaseModel, Field

from ingest.keys import Caller, Forbidden
from api.deps import Lazy, admin, caller, get_audit
from api.errors import status_of
from api.schemas import CoreView, Strict, Text, errors
from evals.audit import AdminAction, AuditLog, AuditRecord, Feedback
from ingest.errors import LoreError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["audit"])
Action = Literal["document.upload", "document.delete", "ingest.start", "key.create", "key.revoke"]
Outcome = Literal["succeeded", "failed", "denied"]
Status = Literal["answered", "extractive", "no_evidence"]
Channel = Literal["api", "web", "slack", "openai", "mcp"]
Rating = Literal["up", "down"]


class FeedbackIn(Strict):
    """A thumbs up or down on one answer, identified by its trace id."""

    trace_id: Text = Field(..., min_length=1, max_length=64, description="the trace_id returned with the answer")
    rating: Rating
    comment: Text | None = Field(None, max_length=2000, description="what was wrong or right; redacted like "
                                "questions when LORE_AUDIT__REDACT is on")
    channel: Literal["api", "web"] = Field("api", description="where the rating was given")


class FeedbackOut(BaseModel):
    trace_id: str
    rating: Rating
    recorded_at: str = Field(..., description="UTC, ISO 8601")


class AuditCitation(BaseModel):
    marker: int | None
    doc_id: str | None
    chunk_id: str | None
    title: str | None
    uri: str | None
    version: str | None
    quote: str = Field(..., description="the cited passage text, redacted like the question")


class AuditSource(BaseModel):
    doc_id: str | None
    chunk_id: str | None
    title: str | None
    uri: str | None
    score: float | None


class AuditFeedback(CoreView):
    core = Feedback
    hidden = {"trace_id": "the record's own trace_id"}

    rating: Rating
    comment: str | None
    recorded_at: str
    user: str | None = Field(..., validation_alias=AliasPath("user_id"))
    key_id: str | None
    channel: str


class AuditRecordOut(CoreView):
    core = AuditRecord

    seq: int = Field(..., description="position in the log; increases with every record, never reused")
    trace_id: str
    recorded_at: str = Field(..., description="UTC, ISO 8601")
    user: str | None = Field(..., validation_alias=AliasPath("user_id"))
    groups: list[str]
    role: str
    via: str = Field(..., description="how the caller authenticated: key, proxy, demo or slack (a Slack user; "
                     "key_id is then slack:<team>:<channel>, the conversation the answer was posted in)")
    key_id: str | None
    channel: str
    context: dict | None = Field(..., description="where in the channel, e.g. the Slack channel and thread")
    question: str = Field(..., description="as asked; e-mail addresses, phone and card numbers and secrets "
                          "masked when LORE_AUDIT__REDACT is on")
    status: Status
    confidence: float
    answer: str = Field(..., description="the answer text, redacted like the question")
    citations: list[AuditCitation]
    sources: list[AuditSource] = Field(..., description="the closest documents, best first")
    latency_ms: float
    retrieve_ms: float | None
    answer_ms: float | None
    models: dict[str, Any]
    usage: dict[str, Any] = Field(..., description="token counts reported by the model")
    redactions: dict[str, int] = Field(..., description="how many of each kind were masked in the question")
    feedback: AuditFeedback | None = Field(..., description="the latest rating of this answer, if any")


class AuditPage(BaseModel):
    records: list[AuditRecordOut]
    total: int = Field(..., description="records matching the filters")
    limit: int
    offset: int


@router.post("/feedback", response_model=FeedbackOut, responses=errors(400, 401, 404, 413, 422, 503),
             summary="Rate an answer up or down")
def feedback(body: FeedbackIn, who: Caller = Depends(caller), audit: Lazy[AuditLog] = Depends(get_audit)) -> dict:
    """Record a thumbs up or down, with an optional comment, for an answer you were given (identified by its
    `trace_id`). Rating again is allowed; the latest rating counts. Admins may rate any answer. An unknown
    trace id and someone else's answer both get 404."""
    return audit().feedback(caller=who, trace_id=body.trace_id, rating=body.rating, comment=body.comment,
                            channel=body.channel)


def _instant(value: str | None, name: str, end: bool) -> datetime | None:
    """An ISO date or date-time as a UTC instant; a bare `until` date means the end of that day."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end and day == date.max:
                return None
            return datetime.combine(day + timedelta(days=1) if end else day, time(), timezone.utc)
        t = datetime.fromisoformat(value)
        t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: year 1 in a zone east of UTC
        raise RequestValidationError([{"loc": ("query", name), "type": "value_error",
                                       "msg": f"{value!r} is not an ISO date (2025-03-14) or date-time "
                                              "(2025-03-14T09:30:00Z)"}]) from None
    return t


@router.get("/audit", response_model=AuditPage, responses=errors(401, 403, 422, 503),
            summary="Read the audit log of questions and answers (admin)")
def audit(
    audit: Lazy[AuditLog] = Depends(get_audit), _: Caller = Depends(admin),
    since: Annotated[str | None, Query(max_length=40, description="from this ISO date or date-time (UTC unless "
                                       "it names a zone), inclusive", examples=["2025-03-01"])] = None,
    until: Annotated[str | None, Query(max_length=40, description="up to this date-time, exclusive; a bare "
                                       "date includes that whole day", examples=["2025-03-31"])] = None,
    user: Annotated[str | None, Query(max_length=128, description="the asking user's id")] = None,
    status: Status | None = None,
    channel: Channel | None = None,
    trace_id: Annotated[str | None, Query(max_length=64)] = None,
    rating: Annotated[Rating | None, Query(description="the answer's latest feedback")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict:
    """Every question asked and how it was answered, newest first: when, who (user, groups, role, key), from
    which channel, the question (redacted when LORE_AUDIT__REDACT is on), status, confidence, citations,
    closest sources, latency, models, token usage, trace id and the latest feedback. Needs an admin key."""
    records, total = audit().query(since=_instant(since, "since", False), until=_instant(until, "until", True),
                                     user=user, status=status, channel=channel, trace_id=trace_id, rating=rating,
                                     limit=limit, offset=offset)
    return {"records": [AuditRecordOut.of(r) for r in records], "total": total, "limit": limit, "offset": offset}


# ---- admin actions ------------------------------------------------------------------------------

class AdminActionOut(CoreView):
    core = AdminAction

    seq: int = Field(..., description="position in the record; increases with every action, never reused")
    recorded_at: str = Field(..., description="UTC, ISO 8601")
    user: str | None = Field(..., validation_alias=AliasPath("user_id"), description="the acting admin's user id")
    key_id: str | None = Field(..., description="the API key it used (never the key itself)")
    role: str
    via: str = Field(..., description="how the caller authenticated: key, proxy or demo")
    action: Action
    target: str | None = Field(..., description="the document id or file name, the ingested paths, the key id")
    outcome: Outcome = Field(..., description="denied: the caller is not an admin")
    detail: str | None = Field(..., description="what it did (a title, a key's user and role) or why it failed")


class AdminActionPage(BaseModel):
    actions: list[AdminActionOut]
    total: int = Field(..., description="actions matching the filters")
    limit: int
    offset: int


class Acting:
    """What an admin action touched, for its audit record: a route sets `target` and `detail` as it learns them."""

    def __init__(self, target: str | None) -> None:
        self.target = target
        self.detail: str | None = None


def _record(audit: Lazy[AuditLog], who: Caller, action: str, target: str | None, outcome: str, detail: str | None) -> None:
    try:
        audit().record_action(caller=who, action=action, target=target, outcome=outcome, detail=detail)
    except LoreError as exc:  # the action itself is done (or refused): say so loudly, but do not undo the answer
        log.error("could not record admin action %s on %s by key %s (%s) in the audit log: %s", action, target,
                  who.key_id, outcome, exc)


@contextmanager
def audited(audit: Lazy[AuditLog], who: Caller, action: str, target: str | None = None) -> Iterator[Acting]:
    """`with audited(audit, who, "document.delete", doc_id) as act: ...`: one record, succeeded or failed (why)."""
    act = Acting(target)
    try:
        yield act
    except LoreError as exc:
        _record(audit, who, action, act.target, "failed", f"{status_of(exc)[1]}: {exc}")
        raise
    except Exception:
        _record(audit, who, action, act.target, "failed", "internal error")
        raise
    _record(audit, who, action, act.target, "succeeded", act.detail)


def admin_for(action: str) -> Callable[..., Caller]:
    """`Depends(admin_for("document.delete"))`: the admin check itself (deps.admin), and a refusal is recorded."""

    def check(request: Request, who: Caller = Depends(caller), audit: Lazy[AuditLog] = Depends(get_audit)) -> Caller:
        try:
            return admin(who)
        except Forbidden as exc:
            _record(audit, who, action, next(iter(request.path_params.values()), None), "denied", str(exc))
            raise

    return check


@router.get("/audit/actions", response_model=AdminActionPage, responses=errors(401, 403, 422, 503),
            summary="Read the record of admin actions (admin)")
def admin_actions(
    audit: Lazy[AuditLog] = Depends(get_audit), _: Caller = Depends(admin),
    since: Annotated[str | None, Query(max_length=40, description="from this ISO date or date-time, inclusive",
                                       examples=["2025-03-01"])] = None,
    until: Annotated[str | None, Query(max_length=40, description="up to this date-time, exclusive; a bare "
                                       "date includes that whole day")] = None,
    action: Action | None = None,
    user: Annotated[str | None, Query(max_length=128, description="the acting admin's user id")] = None,
    outcome: Outcome | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict:
    """Uploads, deletions, ingest starts, key creations and revocations, newest first: when, who (user, key id,
    role), what, on which target, and whether it succeeded, failed (and why) or was denied (not an admin).
    A created key's secret is never recorded."""
    records, total = audit().actions(since=_instant(since, "since", False), until=_instant(until, "until", True),
                                       action=action, user=user, outcome=outcome, limit=limit, offset=offset)
    return {"actions": [AdminActionOut.of(r) for r in records], "total": total, "limit": limit, "offset": offset}
