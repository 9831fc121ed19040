"""The LLM seam: chat completions from any OpenAI-compatible server, or a scripted offline model.

One client covers OpenAI, Azure OpenAI (`api_version` set), vLLM, Ollama and the llama.cpp server.
Every failure surfaces as one `LLMError` whose `reason` the Assistant records when it falls back.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, Sequence, TypeVar

from ingest.errors import ConfigError, LoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
Messages = Sequence[dict]
NO_KEY = "not-needed"  # local servers take any key; the client refuses an empty one
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class LLMError(LoreError):
    """The model gave no usable reply: `reason` is timeout, rate_limited, server_error, connection,
    refused (a 4xx other than 429: key, model name or request), malformed or unexpected."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"LLM {reason}{': ' + detail if detail else ''}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    model: str
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    finish_reason: str | None = None


class LLM(Protocol):
    """`llm.complete([{"role": "user", "content": "Say hi"}]).text`; `stream` yields str deltas, then
    the whole `Completion` as its last item."""

    model_id: str

    def complete(self, messages: Messages) -> Completion: ...

    def stream(self, messages: Messages) -> Iterator[str | Completion]: ...


class ScriptedLLM:
    """Deterministic offline model: replies (text or an LLMError to raise) in order, the last one repeating."""

    def __init__(self, replies: Sequence[str | LLMError], model_id: str = "scripted") -> None:
        if not replies:
            raise ConfigError("ScriptedLLM needs at least one reply")
        self.replies, self.model_id = list(replies), model_id
        self.calls: list[list[dict]] = []

    def _next(self, messages: Messages) -> Completion:
        self.calls.append(list(messages))
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        if isinstance(reply, LLMError):
            raise reply
        prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
        n = len(reply.split())
        return Completion(reply, self.model_id, {"prompt_tokens": prompt, "completion_tokens": n,
                                                 "total_tokens": prompt + n}, "stop")

    def complete(self, messages: Messages) -> Completion:
        return self._next(messages)

    def stream(self, messages: Messages) -> Iterator[str | Completion]:
        done = self._next(messages)
        yield from re.findall(r"\S+\s*|\s+", done.text)
        yield done


class OpenAIChatLLM:
    """`OpenAIChatLLM("http://localhost:11434/v1", "llama3.1")`; Azure: pass `api_version`, the resource
    endpoint as `base_url` and the deployment name as `model`."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "", api_version: str | None = None,
                 timeout: float = 30.0, max_retries: int = 2, temperature: float = 0.0, max_tokens: int = 512,
                 max_backoff: float = 2.0) -> None:
        if not base_url or not re.match(r"^https?://", base_url):
            raise ConfigError(f"LLM base_url {base_url!r} is not an http(s) URL, e.g. http://localhost:8000/v1")
        if not model:
            raise ConfigError("LLM model is empty; name the model (or the Azure deployment) to call")
        if timeout <= 0:
            raise ConfigError(f"LLM timeout must be greater than 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ConfigError(f"LLM max_retries must be 0 or more, got {max_retries}")
        if max_tokens < 1:
            raise ConfigError(f"LLM max_tokens must be at least 1, got {max_tokens}")
        self.base_url, self.model_id, self.api_version = base_url.rstrip("/"), model, api_version
        self._key = api_key or NO_KEY
        self.timeout, self.max_retries, self.max_backoff = timeout, max_retries, max_backoff
        self.temperature, self.max_tokens = temperature, max_tokens
        self._client = None

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChatLLM({self.base_url!r}, {self.model_id!r}, azure={self.api_version is not None})"

    @property
    def client(self):
        """The openai client, built once on first use; retries are ours (`_retrying`), not the SDK's."""
        if self._client is None:
            import openai

            common = {"api_key": self._key, "timeout": openai.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                      "max_retries": 0}
            if self.api_version:
                self._client = openai.AzureOpenAI(azure_endpoint=self.base_url, api_version=self.api_version,
                                                  **common)
            else:
                self._client = openai.OpenAI(base_url=self.base_url, **common)
        return self._client

    def _request(self, messages: Messages, **extra):
        return self.client.chat.completions.create(model=self.model_id, messages=list(messages),
                                                   temperature=self.temperature, max_tokens=self.max_tokens,
                                                   **extra)

    def complete(self, messages: Messages) -> Completion:
        resp = self._retrying(lambda: self._request(messages))
        try:
            choice = resp.choices[0]
            text = choice.message.content
            if not isinstance(text, str):
                raise TypeError("no message content")
            return Completion(text, getattr(resp, "model", None) or self.model_id, _usage(resp.usage),
                              choice.finish_reason)
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMError("malformed", f"unexpected response shape ({exc})") from None

    def stream(self, messages: Messages) -> Iterator[str | Completion]:
        events = self._retrying(lambda: self._request(messages, stream=True,
                                                      stream_options={"include_usage": True}))
        parts: list[str] = []
        usage, finish, model = {}, None, self.model_id
        try:
            for ev in _translated(events):
                model = getattr(ev, "model", None) or model
                if getattr(ev, "usage", None):
                    usage = _usage(ev.usage)
                for choice in ev.choices or ():
                    finish = choice.finish_reason or finish
                    delta = choice.delta.content if choice.delta is not None else None
                    if delta:
                        parts.append(delta)
                        yield delta
        except (AttributeError, TypeError) as exc:
            raise LLMError("malformed", f"unexpected stream chunk ({exc})") from None
        finally:
            close = getattr(events, "close", None)
            if close is not None:  # frees the connection after a failure or an abandoned stream
                close()
        yield Completion("".join(parts), model, usage, finish)

    def _retrying(self, call: Callable[[], T]) -> T:
        """The call, retried up to `max_retries` times on timeouts, 429, 5xx and dropped connections,
        with a small backoff; a Retry-After longer than `max_backoff` ends the retries at once."""
        for attempt in range(self.max_retries + 1):
            try:
                with _translating():
                    return call()
            except LLMError as exc:
                wait = _retry_after(exc.__cause__)
                if wait is None:
                    wait = min(self.max_backoff, 0.25 * 2 ** attempt)
                if exc.reason not in _RETRYABLE or attempt == self.max_retries or wait > self.max_backoff:
                    raise
                log.info("llm %s attempt %d failed (%s); retrying in %.2fs", self.model_id, attempt + 1,
                         exc.reason, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")


_RETRYABLE = {"timeout", "rate_limited", "server_error", "connection"}


@contextmanager
def _translating() -> Iterator[None]:
    """Any exception of the openai client becomes an LLMError, the original kept as `__cause__`."""
    try:
        yield
    except LLMError:
        raise
    except Exception as exc:
        raise _as_llm_error(exc) from exc


def _as_llm_error(exc: Exception) -> LLMError:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        reason = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        reason = "connection"
    elif isinstance(exc, openai.RateLimitError):
        reason = "rate_limited"
    elif isinstance(exc, openai.APIStatusError):
        reason = "server_error" if exc.status_code >= 500 or exc.status_code in (408, 409) else "refused"
    elif isinstance(exc, (ValueError, openai.APIResponseValidationError)):  # JSONDecodeError is one
        reason = "malformed"
    else:  # e.g. a transport error the SDK did not wrap: still no answer, so still a fallback
        log.warning("llm call failed with an unexpected %s", type(exc).__name__)
        reason = "unexpected"
    status = getattr(exc, "status_code", None)
    return LLMError(reason, f"HTTP {status}" if status else type(exc).__name__)


def _translated(events) -> Iterator:
    it = iter(events)
    while True:
        with _translating():
            try:
                ev = next(it)
            except StopIteration:
                return
        yield ev


def _retry_after(exc: BaseException | None) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    try:
        return max(0.0, float(headers.get("retry-after-ms")) / 1000 if headers.get("retry-after-ms")
                   else float(headers.get("retry-after")))
    except (TypeError, ValueError):
        return None


def _usage(u) -> dict:
    if u is None:
        return {}
    got = {k: getattr(u, k, None) for k in USAGE_KEYS}
    return {k: v for k, v in got.items() if isinstance(v, int)}
