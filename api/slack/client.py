"""The Slack Web API client: rate limits (429 + Retry-After), 5xx, dropped connections and Slack's transient
`{"ok": false}` errors are retried with backoff, and every retry is logged."""

from __future__ import annotations

import logging
import random
import time

from slack_sdk import WebClient
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from api.settings import SlackSettings

log = logging.getLogger(__name__)
MAX_RETRIES = 3
MAX_WAIT_S = 30.0  # a longer Retry-After is cut short: a reply that late is worth less than an apology
TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"})
_BACKOFF = BackoffRetryIntervalCalculator(backoff_factor=0.5)


def _method(request) -> str:
    return request.url.rsplit("/", 1)[-1]


class RateLimited(RetryHandler):
    """HTTP 429: wait as long as Retry-After says (capped), then try again."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return response is not None and response.status_code == 429

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        raw = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        try:
            wait = min(float(raw[0] if isinstance(raw, list) else raw), MAX_WAIT_S)
        except ValueError:
            wait = 1.0
        wait += random.random() * 0.25
        log.warning("slack %s rate limited (429): retry %d of %d in %.1fs", _method(request),
                    state.current_attempt + 1, self.max_retry_count, wait)
        state.next_attempt_requested = True
        time.sleep(wait)
        state.increment_current_attempt()


class Transient(RetryHandler):
    """HTTP 500/502/503/504, or 200 with a transient Slack error: exponential backoff."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if response is None:
            return False
        if response.status_code in (500, 502, 503, 504):
            return True
        body = response.body or {}
        return response.status_code == 200 and body.get("ok") is False and body.get("error") in TRANSIENT

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        why = (response.body or {}).get("error") or f"HTTP {response.status_code}"
        log.warning("slack %s failed (%s): retry %d of %d", _method(request), why, state.current_attempt + 1,
                    self.max_retry_count)
        super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)


class Dropped(ConnectionErrorRetryHandler):
    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        log.warning("slack %s connection failed (%s): retry %d of %d", _method(request), type(error).__name__,
                    state.current_attempt + 1, self.max_retry_count)
        super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)


def web_client(settings: SlackSettings, *, timeout: int = 15) -> WebClient:
    """`web_client(settings.slack).chat_postMessage(...)`, against LORE_SLACK__API_URL."""
    base = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    return WebClient(token=settings.bot_token.get_secret_value() or None, base_url=base, timeout=timeout,
                     retry_handlers=[RateLimited(MAX_RETRIES), Transient(MAX_RETRIES, _BACKOFF),
                                     Dropped(MAX_RETRIES, _BACKOFF)], logger=logging.getLogger("slack_sdk.web"))
