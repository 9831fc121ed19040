"""The LLM seam over a local GGUF model file, run in-process by llama.cpp (xllamacpp): no server, no network.

For air-gapped sites that bring their own model: `GgufLLM("/models/qwen2.5-7b-instruct-q4_k_m.gguf")`.
The model loads on first use, once; its chat template comes from the file. llama.cpp's own HTTP listener,
which xllamacpp always opens on loopback, is locked with a random key and serves no UI or slot dumps, so
nothing but this process can use the model or read the prompts it holds.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import Iterator

from assistant.llm import Completion, LLMError, Messages, USAGE_KEYS
from ingest.errors import ConfigError

log = logging.getLogger(__name__)
GGUF_MAGIC = b"GGUF"
_DONE = object()


class GgufLLM:
    """`GgufLLM(path).complete([{"role": "user", "content": "Say hi"}]).text`; `stream` yields str deltas
    then the whole `Completion`, like every LLM."""

    def __init__(self, path: str | Path, *, n_ctx: int = 4096, threads: int | None = None, max_tokens: int = 512,
                 temperature: float = 0.0, timeout: float = 120.0) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ConfigError(f"LORE_LLM__GGUF={str(path)!r} is not a file; give the path of a .gguf model file")
        with self.path.open("rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise ConfigError(f"LORE_LLM__GGUF={str(path)!r} is not a GGUF model file (it does not start with "
                                  "'GGUF'); convert the model with llama.cpp's convert_hf_to_gguf.py")
        if n_ctx < 512:
            raise ConfigError(f"LORE_LLM__CONTEXT must be at least 512 tokens, got {n_ctx}")
        if threads is not None and threads < 1:
            raise ConfigError(f"LORE_LLM__THREADS must be at least 1, got {threads}")
        if timeout <= 0:
            raise ConfigError(f"LLM timeout must be greater than 0 seconds, got {timeout}")
        self.model_id = self.path.stem
        self.n_ctx, self.threads, self.max_tokens, self.temperature = n_ctx, threads, max_tokens, temperature
        self.timeout = timeout
        self._server = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GgufLLM({str(self.path)!r}, n_ctx={self.n_ctx})"

    @property
    def server(self):
        """llama.cpp with the model loaded: built once, on first use."""
        with self._lock:
            if self._server is None:
                self._server = self._load()
            return self._server

    def _load(self):
        import os

        try:
            import xllamacpp
        except ImportError:
            raise ConfigError("LORE_LLM__GGUF needs llama.cpp's Python binding: pip install 'lore[gguf]' "
                              "(xllamacpp, a prebuilt wheel)") from None

        p = xllamacpp.CommonParams()
        p.model.path = str(self.path)
        p.n_ctx = self.n_ctx
        p.n_parallel = 1
        threads = self.threads or max(1, os.cpu_count() or 1)
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        p.verbosity = -1  # llama.cpp's own log lines would flood every CLI call
        p.offline = True
        p.ui, p.endpoint_slots, p.endpoint_props, p.endpoint_metrics = False, False, False, False
        p.api_keys = [secrets.token_urlsafe(32)]
        t0 = time.perf_counter()
        try:
            server = xllamacpp.Server(p)
        except Exception as exc:  # noqa: BLE001 - llama.cpp reports a bad file many ways
            raise ConfigError(f"LORE_LLM__GGUF={str(self.path)!r} could not be loaded by llama.cpp ({exc}); check "
                              "that it is a complete GGUF chat model") from exc
        log.info("loaded %s in %.1f s (%d threads, context %d)", self.path.name, time.perf_counter() - t0, threads,
                 self.n_ctx)
        return server

    def _request(self, messages: Messages, stream: bool) -> dict:
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                "max_tokens": self.max_tokens, "temperature": self.temperature, "stream": stream,
                **({"stream_options": {"include_usage": True}} if stream else {})}

    def complete(self, messages: Messages) -> Completion:
        server = self.server
        try:
            out = server.handle_chat_completions(self._request(messages, stream=False))
        except ValueError as exc:
            raise LLMError("refused", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - llama.cpp's other failures: no answer, so a fallback
            raise LLMError("unexpected", f"{type(exc).__name__}: {exc}") from None
        return _completion(out, self.model_id)

    def stream(self, messages: Messages) -> Iterator[str | Completion]:
        """llama.cpp calls back per chunk on this thread's call; a worker thread turns that into a generator."""
        server = self.server
        chunks: queue.Queue = queue.Queue()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                server.handle_chat_completions(self._request(messages, stream=True), chunks.put)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                failure.append(exc)
            finally:
                chunks.put(_DONE)

        worker = threading.Thread(target=run, name="gguf-stream", daemon=True)
        worker.start()
        try:
            yield from self._read(chunks, failure)
        finally:  # a reader that stops early still waits for llama.cpp to finish (it cannot be interrupted)
            worker.join(timeout=self.timeout)

    def _read(self, chunks: queue.Queue, failure: list[BaseException]) -> Iterator[str | Completion]:
        parts: list[str] = []
        usage: dict = {}
        finish = None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                item = chunks.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise LLMError("timeout", f"no token from {self.path.name} in {self.timeout:g} s") from None
            if item is _DONE:
                break
            if isinstance(item, dict) and "error" in item:
                raise _refused(item)
            if not isinstance(item, dict):
                raise LLMError("malformed", f"unexpected stream chunk from llama.cpp: {str(item)[:200]}")
            usage = _usage(item.get("usage")) or usage
            for choice in item.get("choices") or ():
                finish = choice.get("finish_reason") or finish
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    parts.append(delta)
                    yield delta
        if failure:
            raise LLMError("refused", str(failure[0]))
        yield Completion("".join(parts), self.model_id, usage, finish)


def _usage(u) -> dict:
    return {k: v for k, v in (u or {}).items() if k in USAGE_KEYS and isinstance(v, int)}


def _refused(out: dict) -> LLMError:
    """llama.cpp answers a request it cannot serve (a prompt longer than the context, ...) with an error
    object, as the OpenAI API does with a 4xx: a refused request, with llama.cpp's own advice in full."""
    err = out["error"]
    message = err.get("message") if isinstance(err, dict) else err
    return LLMError("refused", f"llama.cpp refused the request: {message}")


def _completion(out: dict, model_id: str) -> Completion:
    if isinstance(out, dict) and "error" in out:
        raise _refused(out)
    try:
        choice = out["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("no message content")
        return Completion(text, model_id, _usage(out.get("usage")), choice.get("finish_reason"))
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError("malformed", f"unexpected response from llama.cpp ({exc}): {str(out)[:200]}") from None
