"""Lore's errors become HTTP statuses here, and only here: one JSON shape, never a stack trace."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.keys import Forbidden, Unauthorized
from ingest.errors import (ConfigError, DocumentNotFound, FileTooLarge, IngestError, InvalidInput, LoreError,
                           NotFound, StoreError, StoreLocked, UnsupportedFormat)

log = logging.getLogger(__name__)


class TooLarge(LoreError):
    """The request body is over the configured limit."""


class WrongHost(LoreError):
    """Demo mode: the request is addressed (Host header) to a name other than the loopback address served."""


class Conflict(LoreError):
    """The request contradicts the state it acts on (an admin revoking the key they are signed in with)."""


class ForeignOrigin(Forbidden):
    """Demo mode: a browser sent the request from a page of another origin."""


# most specific first: the first matching class decides
_STATUS: list[tuple[type[LoreError], int, str]] = [
    (Unauthorized, 401, "unauthorized"), (Forbidden, 403, "forbidden"), (WrongHost, 421, "misdirected_request"),
    (NotFound, 404, "not_found"), (DocumentNotFound, 404, "not_found"),
    (TooLarge, 413, "too_large"), (FileTooLarge, 413, "too_large"),
    (UnsupportedFormat, 415, "unsupported_type"), (IngestError, 422, "unprocessable_document"),
    (StoreLocked, 409, "busy"), (Conflict, 409, "conflict"), (StoreError, 503, "store_unavailable"),
    (InvalidInput, 400, "bad_request"), (ConfigError, 400, "bad_request"), (LoreError, 400, "bad_request"),
]
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "too_large", 415: "unsupported_type",
               409: "conflict", 421: "misdirected_request", 422: "invalid_request"}


def status_of(exc: LoreError) -> tuple[int, str]:
    return next((s, c) for cls, s, c in _STATUS if isinstance(exc, cls))


def body(code: str, message: str, trace_id: str | None = None, **extra) -> dict:
    return {"error": {"code": code, "message": printable(message), "trace_id": trace_id, **extra}}


def printable(text: str) -> str:
    """Text that can be sent as UTF-8: a lone surrogate echoed from the input becomes a visible \\udXXX."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def problems_of(exc: RequestValidationError | ValidationError) -> list[dict]:
    """Each validation problem as {field, message}, the body's own path (`filters.doc_ids.0`) as the field."""
    out = []
    for e in exc.errors():
        loc = tuple(e.get("loc", ()))
        if e.get("type") == "json_invalid":  # loc is ("body", <character offset>)
            at = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            why = (e.get("ctx") or {}).get("error") or "malformed"
            out.append({"field": "body", "message": f"not valid JSON ({why}{at}); send one JSON object with "
                                                    "Content-Type: application/json"})
            continue
        where = ".".join(printable(str(p)) for p in loc if p != "body") or "body"
        out.append({"field": where, "message": printable(str(e.get("msg", "invalid")))})
    return out


def unauthenticated(request: Request) -> LoreError | None:
    """The authentication error a request with a bad body would have had: credentials are judged first."""
    from api.deps import authenticate_first

    try:
        authenticate_first(request)
    except LoreError as exc:
        return exc
    return None


async def send_error(send: Send, exc: LoreError) -> None:
    """An error response sent from ASGI middleware, outside the exception handlers."""
    import json

    status, code = status_of(exc)
    payload = json.dumps(body(code, str(exc))).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def install(app: FastAPI) -> None:
    @app.exception_handler(LoreError)
    async def lore_error(request: Request, exc: LoreError) -> JSONResponse:
        status, code = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
        return JSONResponse(body(code, str(exc)), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        denied = unauthenticated(request)
        if denied is not None:
            return await lore_error(request, denied)
        problems = problems_of(exc)
        text = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return JSONResponse(jsonable_encoder(body("invalid_request", f"invalid request: {text}", problems=problems)),
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (undecodable bytes): credentials first
            denied = unauthenticated(request)
            if denied is not None:
                return await lore_error(request, denied)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:  # a bug: logged with an id to quote
        trace = uuid.uuid4().hex
        log.exception("unhandled error %s on %s %s", trace, request.method, request.url.path)
        return JSONResponse(body("internal", f"Lore hit an internal error; report trace id {trace}", trace),
                            status_code=500)


class BodyLimit:
    """413 for bodies over the limit, counted as they arrive (a missing or false Content-Length is no way round)."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int, upload_paths: tuple[str, ...]) -> None:
        self.app, self.max_bytes, self.upload_bytes, self.upload_paths = app, max_bytes, upload_bytes, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_bytes if scope["path"] in self.upload_paths else self.max_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._reject(send, limit)
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _Over(limit)  # an HTTPException: the route's handler turns it into the 413
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, limited, tracking_send)
        except _Over:
            if not started:
                await self._reject(send, limit)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        await send_error(send, TooLarge(_over_message(limit)))


def _over_message(limit: int) -> str:
    return (f"the request body is over {limit // 1024} KiB; send less (LORE_SERVER__MAX_REQUEST_KB and "
            "LORE_SERVER__MAX_UPLOAD_MB set the limits)")


class _Over(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, _over_message(limit))
