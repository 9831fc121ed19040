"""OpenAI-compatible chat: /v1/chat/completions and /v1/models, so OpenAI clients and chat front-ends use Lore.

Send the Lore API key as the OpenAI API key (`Authorization: Bearer <key>`); the key's permissions apply,
never the request's `user` field. Citations travel in the message text (markers and a Sources block) and
in extra fields: `citations` (as in /v1/ask) and `lore` {status, trace_id, citations, confidence}.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from typing import Annotated, Iterator, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from api import errors
from ingest.keys import Caller
from api.deps import Lazy, caller, get_assistant, get_audit, get_metrics, get_settings
from api.metrics import Metrics
from api.settings import Settings
from assistant.service import Assistant
from evals.audit import AuditLog
from api.routes.ask import finish
from api.schemas import MAX_QUESTION, UNICODE, CitationOut, ErrorOut, Text
from assistant.types import Answer
from ingest.errors import LoreError

log = logging.getLogger(__name__)
MODEL_ID = "lore"
CREATED = int(time.time())  # the "model" is this process's knowledge base: it exists since start-up
MAX_TURNS = 20  # earlier turns passed on as history; a chat front-end resends the whole conversation
MAX_TURN_CHARS = 8000
KEEPALIVE = 5.0  # seconds between SSE comments while a model writes the answer that is streamed once checked
SOURCES = "Sources:"
CLOSEST = "Closest sources (they do not answer the question):"
_OUR_BLOCK = re.compile(rf"\n\n(?:{re.escape(SOURCES)}|{re.escape(CLOSEST)})\n[\s\S]*\Z")
_PIECES = re.compile(r"\S+\s*|\s+")
_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class BadChatRequest(LoreError):
    """A chat request Lore cannot answer as sent; `param` names the offending field, as OpenAI's errors do."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelNotFound(errors.NotFound):
    """A model id that /v1/models does not list."""

    param = "model"


def _error(status: int, code: str, message: str, param: str | None = None, **extra) -> JSONResponse:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(errors.body(code, message, type=kind, param=param, **extra), status_code=status,
                        headers=headers)


def _lore_error(exc: LoreError) -> JSONResponse:
    status, code = errors.status_of(exc)
    if isinstance(exc, ModelNotFound):
        code = "model_not_found"
    if status >= 500:
        log.warning("openai-compatible request failed with %d: %s", status, exc)
    return _error(status, code, str(exc), getattr(exc, "param", None))


def _invalid(exc: RequestValidationError) -> JSONResponse:
    problems = errors.problems_of(exc)
    text = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    param = problems[0]["field"] if problems else None
    return _error(422, "invalid_request", f"invalid request: {text}", param, problems=problems)


class OpenAIRoute(APIRoute):
    """Errors in Lore's shape plus OpenAI's `type` and `param` keys, which OpenAI clients read."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:  # credentials are judged before the body
                denied = errors.unauthenticated(request)
                return _invalid(exc) if denied is None else _lore_error(denied)
            except LoreError as exc:
                return _lore_error(exc)

        return route


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


# -- request and response bodies -----------------------------------------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI keeps adding fields; unknown ones are not an error


class ContentPart(_Open):
    type: Text = Field(..., max_length=64, description="only `text` parts are read")
    text: Text | None = None


class MessageIn(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[str | list[ContentPart] | None, UNICODE] = None
    name: Text | None = Field(None, max_length=256)


class StreamOptions(_Open):
    include_usage: bool = False


class ChatIn(_Open):
    """OpenAI's chat request. Sampling fields are accepted and ignored: Lore's answers are grounded, not sampled."""

    model: Text = Field(..., max_length=256, examples=[MODEL_ID])
    messages: list[MessageIn] = Field(..., min_length=1, max_length=500)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, description="ignored")
    top_p: float | None = Field(None, description="ignored")
    max_tokens: int | None = Field(None, description="ignored")
    max_completion_tokens: int | None = Field(None, description="ignored")
    n: int | None = Field(None, ge=1, le=128, description="ignored: one choice is returned")
    user: Text | None = Field(None, max_length=256, description="ignored: the API key decides permissions")


class ModelOut(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelOut]


class MessageOut(BaseModel):
    role: Literal["assistant"]
    content: str = Field(..., description="the answer with markers [n], then a Sources block")
    refusal: None = None


class ChoiceOut(BaseModel):
    index: int
    message: MessageOut
    logprobs: None = None
    finish_reason: Literal["stop"]


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LoreOut(BaseModel):
    status: Literal["answered", "extractive", "no_evidence"]
    trace_id: str
    citations: list[CitationOut]
    confidence: float


class ChatCompletionOut(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut
    citations: list[CitationOut] = Field(..., description="extra field: the same citations as /v1/ask")
    lore: LoreOut = Field(..., description="extra field: the answer's status, trace id and citations")


def _errors(*codes: int) -> dict:
    return {c: {"model": ErrorOut, "description": d} for c, d in
            {400: "Bad input", 401: "Missing or invalid API key", 404: "Unknown model", 413: "Request too large",
             422: "Invalid request body", 503: "A store or model is unavailable"}.items() if c in codes}


# -- models ----------------------------------------------------------------------------------------
def _model() -> dict:
    return {"id": MODEL_ID, "object": "model", "created": CREATED, "owned_by": "lore"}


def _known(model: str) -> None:
    if model != MODEL_ID:
        raise ModelNotFound(f"the model {model!r} does not exist; Lore answers as model {MODEL_ID!r} "
                            "(GET /v1/models lists it)")


@router.get("/models", response_model=ModelList, dependencies=[Depends(caller)], responses=_errors(401),
            summary="List models (OpenAI-compatible): just `lore`")
def list_models() -> dict:
    return {"object": "list", "data": [_model()]}


@router.get("/models/{model}", response_model=ModelOut, dependencies=[Depends(caller)],
            responses=_errors(401, 404), summary="Describe a model (OpenAI-compatible)")
def get_model(model: str) -> dict:
    _known(model)
    return _model()


# -- the conversation ------------------------------------------------------------------------------
def _text(msg: MessageIn, i: int) -> str:
    """A message's text; parts other than text are refused in user turns, skipped in the assistant's."""
    if msg.content is None or isinstance(msg.content, str):
        return msg.content or ""
    texts = []
    for j, part in enumerate(msg.content):
        if part.type == "text":
            texts.append(part.text or "")
        elif msg.role == "user":
            raise BadChatRequest(f"messages[{i}].content[{j}] is a {part.type!r} part; Lore reads text only: "
                                 "send the question as text", f"messages[{i}].content[{j}].type")
    return "\n".join(texts)


def conversation(messages: list[MessageIn]) -> tuple[str, list[dict]]:
    """The question (the last user message) and the user/assistant turns before it, oldest first."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise BadChatRequest("messages holds no user message; the last user message is the question", "messages")
    question = _text(messages[last], last).strip()
    if not question:
        raise BadChatRequest(f"messages[{last}] (the question) is empty; ask something the knowledge base "
                             "might answer", f"messages[{last}].content")
    if len(question) > MAX_QUESTION:
        raise BadChatRequest(f"the question is {len(question)} characters; Lore takes at most {MAX_QUESTION}: "
                             "ask a shorter question", f"messages[{last}].content")
    history = []
    for i, m in enumerate(messages[:last]):
        if m.role not in ("user", "assistant"):
            continue
        text = _text(m, i)
        if m.role == "assistant":  # a front-end sends our own Sources block back; it is not part of the turn
            text = _OUR_BLOCK.sub("", text)
        if text.strip():
            history.append({"role": m.role, "content": text.strip()[:MAX_TURN_CHARS]})
    return question, history[-MAX_TURNS:]


# -- the reply -------------------------------------------------------------------------------------
def _where(title: str, section: list[str], page: int | None) -> str:
    if section and section[0] == title:  # the document's own heading repeats its title
        section = section[1:]
    s = title + (f" — {' > '.join(section)}" if section else "")
    return s + (f" (p. {page})" if page is not None else "")


def _link(base: str | None, chunk_id: str, span: tuple[int, int] | None = None) -> str:
    if not base:
        return ""
    url = f"{base.rstrip('/')}/?passage={quote(chunk_id, safe='')}"
    return f" ({url}&start={span[0]}&end={span[1]})" if span else f" ({url})"


def sources_block(d: dict, base_url: str | None) -> str:
    """The text after the answer: each citation with its quote, or the closest sources of an abstention."""
    if d["citations"]:
        lines = [f"[{c['marker']}] {_where(c['title'], c['section'], c['page'])}: \"{' '.join(c['quote'].split())}\""
                 f"{_link(base_url, c['chunk_id'], (c['start'], c['end']))}" for c in d["citations"]]
        return f"\n\n{SOURCES}\n" + "\n".join(lines)
    if d["status"] == "no_evidence" and d["hits"]:
        lines = [f"- {_where(h['title'], h['section'], h['page_start'])}{_link(base_url, h['chunk_id'])}"
                 for h in d["hits"]]
        return f"\n\n{CLOSEST}\n" + "\n".join(lines)
    return ""


def approx_tokens(text: str) -> int:
    """About four characters per token: the usage Lore reports when no LLM wrote the answer."""
    return -(-len(text) // 4)


def usage(d: dict, question: str, history: list[dict], content: str) -> dict:
    u = d.get("usage") or {}
    if all(k in u for k in ("prompt_tokens", "completion_tokens")):
        p, c = u["prompt_tokens"], u["completion_tokens"]
    else:
        p = approx_tokens(question) + sum(approx_tokens(t["content"]) for t in history)
        c = approx_tokens(content)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _extras(d: dict) -> dict:
    return {"citations": d["citations"], "lore": {"status": d["status"], "trace_id": d["trace_id"],
                                                  "citations": d["citations"], "confidence": d["confidence"]}}


@router.post("/chat/completions", response_model=ChatCompletionOut,
             responses={200: {"description": "a `chat.completion`; with `stream: true`, Server-Sent Events of "
                              "`chat.completion.chunk` objects ending with `data: [DONE]`",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        **_errors(400, 401, 404, 413, 422, 503)},
             summary="Chat completions (OpenAI-compatible), answered with verified citations")
def chat_completions(body: ChatIn, who: Caller = Depends(caller), assistant: Assistant = Depends(get_assistant),
                     audit: Lazy[AuditLog] = Depends(get_audit), metrics: Metrics = Depends(get_metrics),
                     settings: Settings = Depends(get_settings)):
    """The last user message is the question and earlier user/assistant turns its history. System and
    developer messages are ignored: they cannot change Lore's grounding rules or what the key may read.

    `usage` is the LLM's token count when a model wrote the answer, else an estimate (four characters a
    token) of the conversation and the reply. Streamed content is the validated answer: a model's raw
    text can carry markers that validation renumbers or drops, and an OpenAI client cannot take back
    text it has shown, so the deltas start once the answer has been checked.
    """
    t0 = time.perf_counter()
    _known(body.model)
    question, history = conversation(body.messages)
    base_url = settings.server.public_url
    if not body.stream:
        answer = assistant.answer(question, who.principal, None, history or None)
        d = finish(audit, metrics, who, "openai", answer, t0)
        content = d["text"] + sources_block(d, base_url)
        message = {"role": "assistant", "content": content, "refusal": None}
        return {"id": f"chatcmpl-{d['trace_id']}", "object": "chat.completion", "created": int(time.time()),
                "model": body.model, "choices": [{"index": 0, "message": message, "logprobs": None,
                                                  "finish_reason": "stop"}],
                "usage": usage(d, question, history, content), **_extras(d)}
    items = assistant.stream(question, who.principal, None, history or None)
    first = next(items)  # retrieval runs here, so bad input or a down store is a 4xx/5xx, not a broken stream
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def events() -> Iterator[str]:
        try:
            answer, beat = None, time.monotonic()
            for x in itertools.chain([first], items):
                if isinstance(x, Answer):
                    answer = x
                elif time.monotonic() - beat >= KEEPALIVE:  # an SSE comment: proxies see bytes, clients skip it
                    beat = time.monotonic()
                    yield ": checking the answer\n\n"
            assert answer is not None  # noqa: S101 - the assistant's stream ends with its Answer
            d = finish(audit, metrics, who, "openai", answer, t0)
        except LoreError as exc:  # pragma: no cover - the assistant falls back rather than raise
            log.warning("chat completion stream failed: %s", exc)
            yield _sse(errors.body("failed", str(exc), type="server_error", param=None))
            return
        head = {"id": f"chatcmpl-{d['trace_id']}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.model, **({"usage": None} if include_usage else {})}

        def chunk(delta: dict, finish_reason: str | None = None, **extra) -> str:
            return _sse({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish_reason}], **extra})

        yield chunk({"role": "assistant", "content": ""})
        for piece in _PIECES.findall(d["text"]):
            yield chunk({"content": piece})
        block = sources_block(d, base_url)
        if block:
            yield chunk({"content": block})
        yield chunk({}, "stop", **_extras(d))
        if include_usage:
            yield _sse({**head, "choices": [], "usage": usage(d, question, history, d["text"] + block)})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"
