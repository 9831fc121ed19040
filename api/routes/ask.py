"""Questions and searches: /v1/ask, /v1/ask/stream (Server-Sent Events) and /v1/search."""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import Iterator, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from ingest.keys import Caller
from api.deps import Lazy, caller, get_assistant, get_audit, get_metrics, get_retriever
from api.metrics import Metrics
from api.schemas import AnswerOut, AskIn, CallerOut, SearchIn, SearchOut, errors
from assistant.service import Assistant
from assistant.types import Answer
from evals.audit import AuditLog
from ingest.errors import LoreError
from retriever.search import Retriever

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["ask"])
Channel = Literal["api", "web"]
_CHANNEL = Header("api", alias="X-Lore-Channel", description="where the question came from, for the audit "
                  "log and analytics: api (default) or web")


def finish(audit: Lazy[AuditLog], metrics: Metrics, who: Caller, channel: str, answer: Answer, started: float) -> dict:
    """Record a finished answer (audit log, metrics) and return its JSON (AnswerOut's, as /v1/ask gives it)."""
    d = AnswerOut.of(answer).model_dump(mode="json")
    latency = round((time.perf_counter() - started) * 1000, 2)
    audit().record(caller=who, channel=channel, question=answer.question, answer=d, latency_ms=latency)
    metrics.observe_answer(d, channel)
    return d


@router.post("/ask", response_model=AnswerOut, responses=errors(400, 401, 413, 422, 503),
             summary="Answer a question with verified citations")
def ask(body: AskIn, request: Request, who: Caller = Depends(caller), assistant: Assistant = Depends(get_assistant),
        audit: Lazy[AuditLog] = Depends(get_audit), metrics: Metrics = Depends(get_metrics),
        channel: Channel = _CHANNEL) -> dict:
    """The answer's every sentence carries a marker [n] that resolves to a citation whose quote is an exact
    substring of a passage the caller may read. When the knowledge base does not support an answer the
    status is `no_evidence` and `hits` lists the closest sources."""
    t0 = time.perf_counter()
    history = [t.model_dump() for t in body.history] if body.history else None
    filters = body.filters.to_filters() if body.filters else None
    answer = assistant.answer(body.question, who.principal, filters, history)
    return finish(audit, metrics, who, channel, answer, t0)


SSE_EVENT = {  # one event of the stream, as OpenAPI 3.2 describes Server-Sent Events
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"type": "string", "enum": ["delta", "answer", "error"]},
                   "data": {"type": "string", "description": "JSON: {\"text\"} for delta, the Answer (as "
                            "/v1/ask returns it) for answer, {\"error\": {\"code\", \"message\"}} for error"}}}


def _event(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


@router.post("/ask/stream", responses={200: {"description": "Server-Sent Events: `delta` events "
             "(`{\"text\": ...}`) as the answer is written, then one `answer` event with the validated Answer "
             "(the same JSON as /v1/ask); an `error` event if it fails mid-way.",
             "content": {"text/event-stream": {"schema": SSE_EVENT}}}, **errors(400, 401, 413, 422, 503)},
             response_class=StreamingResponse, summary="Stream an answer as Server-Sent Events")
def ask_stream(body: AskIn, who: Caller = Depends(caller), assistant: Assistant = Depends(get_assistant),
               audit: Lazy[AuditLog] = Depends(get_audit), metrics: Metrics = Depends(get_metrics),
               channel: Channel = _CHANNEL) -> StreamingResponse:
    """Deltas are the text as it is written; the final `answer` event is authoritative (markers that fail
    validation are removed there, and a failed model call is replaced by the extractive answer)."""
    t0 = time.perf_counter()
    history = [t.model_dump() for t in body.history] if body.history else None
    filters = body.filters.to_filters() if body.filters else None
    items = assistant.stream(body.question, who.principal, filters, history)
    first = next(items)  # retrieval runs here, so bad input or a down store is a 4xx/5xx, not a broken stream

    def events() -> Iterator[str]:
        try:
            for x in itertools.chain([first], items):
                if isinstance(x, Answer):
                    yield _event("answer", finish(audit, metrics, who, channel, x, t0))
                else:
                    yield _event("delta", {"text": x})
        except LoreError as exc:  # pragma: no cover - the assistant falls back rather than raise
            log.warning("stream failed: %s", exc)
            yield _event("error", {"error": {"code": "failed", "message": str(exc)}})

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/search", response_model=SearchOut, responses=errors(400, 401, 413, 422, 503),
             summary="Search passages (hybrid, dense or keyword)")
def search(body: SearchIn, who: Caller = Depends(caller), retriever: Retriever = Depends(get_retriever),
           metrics: Metrics = Depends(get_metrics)) -> SearchOut:
    """Ranked passages the caller may read, each with full provenance and its rank in each stage."""
    t0 = time.perf_counter()
    filters = body.filters.to_filters() if body.filters else None
    result = retriever.search(body.query, who.principal, filters, body.top_k, mode=body.mode)
    metrics.observe_search(time.perf_counter() - t0)
    return SearchOut.of(result)


@router.get("/me", response_model=CallerOut, summary="Who the credentials stand for", responses=errors(401))
def me(who: Caller = Depends(caller)) -> CallerOut:
    """The user, groups and role the API key (or SSO proxy headers, or demo mode) maps to."""
    return CallerOut.of(who)
