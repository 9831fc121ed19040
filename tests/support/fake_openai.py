"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat completions wire protocol, scripted per test.

    server = FakeOpenAI().start()
    server.script(Reply("Carry-over is capped at 40 hours [1]."), Reply(status=429, headers={"Retry-After": "0"}))
    OpenAI(base_url=server.base_url, api_key="k").chat.completions.create(model="m", messages=[...])
    server.requests[0].body["messages"]

Serves POST /v1/chat/completions (plain and `stream: true` as server-sent events, with a final usage
chunk when `stream_options.include_usage`), the Azure path
/openai/deployments/{deployment}/chat/completions?api-version=..., and GET /v1/models. Every request's
path, query, headers and JSON body is recorded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """One scripted response: assistant text (or a function of the request body giving it), or an HTTP
    error, a delay, or a raw (malformed) body."""

    text: str | Callable[[dict], str] = ""
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response starts (longer than the client timeout = timeout)
    raw: str | None = None  # sent as-is with status 200, e.g. broken JSON
    chunk_delay: float = 0.0  # seconds between streamed chunks
    break_after: int | None = None  # streamed: send this many content chunks, then a broken one, then stop
    finish_reason: str = "stop"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    body: dict | None

    def prompt(self) -> str:
        """All message contents of a chat request, joined: what the model was shown."""
        return "\n".join(m.get("content") or "" for m in (self.body or {}).get("messages", []))


def _usage(body: dict, text: str) -> dict:
    prompt = sum(len((m.get("content") or "").split()) for m in body.get("messages", []))
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class FakeOpenAI:
    """The scripted server; `default` answers requests once the script is used up."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply(status=500, raw=json.dumps({"error": {"message": "no scripted reply"}}))
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- scripting ---------------------------------------------------------------------------
    def script(self, *replies: Reply | str) -> "FakeOpenAI":
        with self._lock:
            self._queue.extend(Reply(r) if isinstance(r, str) else r for r in replies)
        return self

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the app -------------------------------------------------------------------------------
    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(Recorded(request.method, request.url.path, dict(request.query_params),
                                          {k.lower(): v for k, v in request.headers.items()}, body))
            reply = self._queue.popleft() if self._queue else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            err = reply.raw or json.dumps({"error": {"message": f"scripted {reply.status}", "type": "server_error",
                                                     "code": reply.status}})
            return Response(err, status_code=reply.status, headers=reply.headers, media_type="application/json")
        if reply.raw is not None:
            return Response(reply.raw, headers=reply.headers, media_type="application/json")
        body = body or {}
        model = body.get("model") or request.path_params.get("deployment", "fake")
        if callable(reply.text):
            reply = replace(reply, text=reply.text(body))
        if body.get("stream"):
            usage = (body.get("stream_options") or {}).get("include_usage")
            return StreamingResponse(self._events(reply, body, model, bool(usage)), media_type="text/event-stream",
                                     headers=reply.headers)
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": reply.finish_reason, "logprobs": None}],
            "usage": _usage(body, reply.text)}, headers=reply.headers)

    async def _events(self, reply: Reply, body: dict, model: str, include_usage: bool):
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

        def chunk(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> str:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish,
                                                 "logprobs": None}]
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": choices}
            if include_usage:
                obj["usage"] = usage
            return f"data: {json.dumps(obj)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for n, piece in enumerate(_pieces(reply.text)):
            if n == reply.break_after:
                yield 'data: {"id": "broken", "choices": [\n\n'
                return
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            yield chunk({"content": piece})
        yield chunk({}, reply.finish_reason)
        if include_usage:
            yield chunk(None, usage=_usage(body, reply.text))
        yield "data: [DONE]\n\n"

    async def _models(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(Recorded(request.method, request.url.path, dict(request.query_params),
                                          {k.lower(): v for k, v in request.headers.items()}, None))
        return JSONResponse({"object": "list", "data": [
            {"id": "fake-model", "object": "model", "created": 0, "owned_by": "lore-tests"}]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/openai/deployments/{deployment}/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ])

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"fake-openai-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
