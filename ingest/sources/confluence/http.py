"""HTTP for the Confluence source: authentication, rate-limit retries (Retry-After), paginated listings.

Credentials travel only in the Authorization header of each request: they are never stored in a message,
a log line or an exception, and the client's repr does not show them.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import math
import re
import time
from datetime import datetime, timezone
from typing import Callable, Iterator
from urllib.parse import urljoin

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 503)  # the server asks to come back later (Retry-After)
TRANSIENT_STATUSES = (500, 502, 504)  # retried with backoff, as a gateway hiccup
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class HttpFailed(Exception):
    """A request failed for good. `status` is the HTTP status (0: no response); the message holds no secret."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what, self.status, self.detail = what, status, detail


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class ConfluenceHttp:
    """GET with authentication and bounded retries against one Confluence base URL."""

    def __init__(self, base_url: str, authorization: str, *, client: httpx.Client | None, max_retries: int,
                 max_wait: float, backoff: float, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorization = authorization
        self._client = client
        self._own_client = client is None
        self.max_retries, self.max_wait, self.backoff, self.timeout = max_retries, max_wait, backoff, timeout
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ConfluenceHttp({self.base_url!r})"

    @property
    def client(self) -> httpx.Client:
        if self._client is None:  # created on first use: constructing a source opens nothing
            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None

    def url(self, path_or_url: str) -> str:
        """An absolute URL: a path is joined to the base URL (which may have a context path)."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + "/" + path_or_url.lstrip("/")

    def get(self, path_or_url: str, params: dict | None = None, *, what: str,
            accept: str = "application/json") -> httpx.Response:
        """One GET, retried on 429/503 (honouring Retry-After), 5xx gateway errors and connection errors,
        at most `max_retries` times and `max_wait` seconds of waiting in all; then HttpFailed."""
        url = self.url(path_or_url)
        waited, attempt = 0.0, 0
        headers = {"Authorization": self._authorization, "Accept": accept}
        while True:
            try:
                resp = self.client.get(url, params=params, headers=headers, follow_redirects=True)
            except httpx.HTTPError as exc:  # connection refused, reset, timeout: the message names no secret
                status, detail, wait = 0, f"{type(exc).__name__} ({_plain(exc)})", None
            else:
                if resp.status_code < 400:
                    return resp
                status, detail = resp.status_code, f"HTTP {resp.status_code}"
                if status not in RETRY_STATUSES + TRANSIENT_STATUSES:
                    raise HttpFailed(what, status, detail)
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
            if wait is None:
                wait = self.backoff * 2 ** attempt
            attempt += 1
            if attempt > self.max_retries:
                raise HttpFailed(what, status, f"{detail}, still failing after {self.max_retries} retries")
            if waited + wait > self.max_wait:
                raise HttpFailed(what, status, f"{detail}; the server asks to wait {wait:.0f} s, over the "
                                 f"{self.max_wait:.0f} s retry budget")
            log.info("%s: %s, retrying in %.2f s (%d/%d)", what, detail, wait, attempt, self.max_retries)
            self._sleep(wait)
            waited += wait

    def get_json(self, path_or_url: str, params: dict | None = None, *, what: str) -> tuple[object, httpx.Response]:
        resp = self.get(path_or_url, params, what=what)
        try:
            return resp.json(), resp
        except ValueError as exc:
            raise HttpFailed(what, resp.status_code, "the response is not valid JSON") from exc

    def cursor_pages(self, path: str, params: dict, *, what: str, next_base: str) -> Iterator[list[dict]]:
        """Results of a listing page by page, following `_links.next` (or the Link header): relative links
        are joined to `next_base` (Cloud: the site root, whose links start with /wiki; Data Center: the base
        URL with its context path, as `_links.base`)."""
        url: str | None = path
        query: dict | None = params
        seen: set[str] = set()
        while url:
            body, resp = self.get_json(url, query, what=what)
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise HttpFailed(what, resp.status_code, "the response has no 'results' list")
            results = body["results"]
            if not all(isinstance(r, dict) for r in results):
                raise HttpFailed(what, resp.status_code, "a listed result is not an object")
            yield results
            nxt = (body.get("_links") or {}).get("next") or _link_next(resp.headers.get("Link"))
            if not nxt or not results:  # an empty page ends a listing even if it links on (CONFSERVER-95396)
                return
            url = nxt if nxt.startswith(("http://", "https://")) else urljoin(next_base.rstrip("/") + "/", nxt.lstrip("/"))
            if url in seen:
                raise HttpFailed(what, resp.status_code, "the listing links back to a page already read")
            seen.add(url)
            query = None  # the next link carries the whole query


def _link_next(header: str | None) -> str | None:
    m = _LINK_NEXT.search(header or "")
    return m.group(1) if m else None


def _plain(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def basic_auth(email: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()


def bearer_auth(pat: str) -> str:
    return "Bearer " + pat


def iso(value: str | None) -> str:
    """An ISO 8601 timestamp with an offset (UTC when the source gives none); '' when absent or unreadable."""
    if not value:
        return ""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()
