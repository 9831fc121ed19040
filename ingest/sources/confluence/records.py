"""What the two Confluence APIs (Cloud, Data Center) are read into, and the parts of their JSON they share."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Protocol

from ingest.sources.confluence.acl import group_token, user_token
from ingest.sources.confluence.http import ConfluenceHttp, HttpFailed

log = logging.getLogger(__name__)

RESTRICTION_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Space:
    id: str
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Page:
    id: str
    title: str
    version: int
    updated_at: str
    webui: str
    owners: tuple[str, ...]
    parent_id: str | None = None  # Cloud: the parent; the chain is walked over the listing
    ancestors: tuple[str, ...] | None = None  # Data Center: the whole chain, root first
    restriction: frozenset[str] | None = None  # the read restriction when the listing carries it
    has_restriction: bool = False  # whether `restriction` was read with the listing


@dataclass(frozen=True, slots=True)
class Attachment:
    id: str
    page_id: str
    title: str
    version: int
    updated_at: str
    webui: str
    download: str
    owners: tuple[str, ...]


class Api(Protocol):
    """One flavor's calls; every method raises HttpFailed when Confluence does not answer as documented."""

    def reset(self) -> None: ...
    def space(self, key: str) -> Space: ...
    def space_readers(self, space: Space) -> frozenset[str]: ...
    def pages(self, space: Space) -> Iterator[Page]: ...
    def ancestors(self, page_id: str) -> tuple[str, ...]: ...
    def restriction(self, content_id: str) -> frozenset[str] | None: ...
    def attachments(self, page: Page) -> Iterator[Attachment]: ...
    def groups_of(self, user: str) -> frozenset[str]: ...
    def page_body(self, page_id: str) -> tuple[str, str, int]: ...
    def attachment(self, attachment_id: str) -> Attachment: ...


class BaseApi:
    """What both flavors share: a paged listing, a page's storage body, the users one inventory met."""

    first_page: dict = {}  # query parameters a listing starts with besides `limit`

    def __init__(self, http: ConfluenceHttp, page_size: int) -> None:
        self.http, self.page_size = http, page_size
        self.reset()

    def reset(self) -> None:
        """Forget what one inventory learnt: the next one reads it afresh."""
        self.users: dict[str, str] = {}  # Lore user token -> account id or username, for membership lookups

    def _list(self, path: str, params: dict, what: str) -> Iterator[dict]:
        # Cloud's next links start with /wiki, Data Center's with /rest: both join the configured base URL
        query = {**params, **self.first_page, "limit": self.page_size}
        for results in self.http.cursor_pages(path, query, what=what, next_base=self.http.base_url):
            yield from results

    def _groups(self, path: str, params: dict, what: str, next_base: str) -> frozenset[str]:
        """A user's group tokens; none for a user Confluence no longer knows (404): they pass no group level."""
        out: set[str] = set()
        try:
            for results in self.http.cursor_pages(path, {**params, **self.first_page, "limit": self.page_size},
                                                  what=what, next_base=next_base):
                out.update(t for t in (group_token(g.get("name") or "") for g in results) if t)
        except HttpFailed as exc:
            if exc.status != 404:
                raise
            log.warning("%s: not found; that user passes no group permission", what)
            return frozenset()
        return frozenset(out)

    def _page_body(self, path: str, params: dict, page_id: str) -> tuple[str, str, int]:
        """(storage XHTML, title, version number) of a current page."""
        body, resp = self.http.get_json(path, params, what=f"page {page_id}")
        if not isinstance(body, dict) or body.get("status") != "current":
            raise HttpFailed(f"page {page_id}", 404, "the page is no longer current (archived or trashed)")
        storage = ((body.get("body") or {}).get("storage") or {}).get("value")
        if not isinstance(storage, str):
            raise HttpFailed(f"page {page_id}", resp.status_code, "the response has no storage body")
        return storage, body.get("title") or "", int((body.get("version") or {}).get("number") or 0)


def owners(*idents: str | None) -> tuple[str, ...]:
    out: list[str] = []
    for ident in idents:
        tok = user_token(ident) if ident else None
        if tok and tok not in out:
            out.append(tok)
    return tuple(out)


def read_restriction(http: ConfluenceHttp, path: str, user_key: str, users: dict[str, str],
                     *, what: str) -> frozenset[str] | None:
    """The read restriction at `path` (.../restriction/byOperation/read, the same JSON on Cloud and Data
    Center): None when the content has none, else its user and group tokens (an empty set when none of them
    is a valid Lore token: readable by nobody Lore can name)."""
    start, tokens, named = 0, set(), False
    for _ in range(1000):
        body, resp = http.get_json(path, {"start": start, "limit": RESTRICTION_LIMIT,
                                          "expand": "restrictions.user,restrictions.group"}, what=what)
        r = body.get("restrictions") if isinstance(body, dict) else None
        if not isinstance(r, dict):
            raise HttpFailed(what, resp.status_code, "the response has no 'restrictions' object")
        more, step = False, RESTRICTION_LIMIT
        for kind in ("user", "group"):
            part = r.get(kind) or {}
            results = part.get("results")
            if results is None and part:
                raise HttpFailed(what, resp.status_code, f"the {kind} restrictions were not expanded")
            for entry in results or []:
                named = True
                if kind == "user":
                    ident = entry.get(user_key) or ""
                    tok = user_token(ident)
                    if tok:
                        users[tok] = ident
                else:
                    tok = group_token(entry.get("name") or "")
                if tok:
                    tokens.add(tok)
            total, size, limit = part.get("totalSize"), part.get("size", len(results or [])), part.get("limit")
            more |= (isinstance(total, int) and total > start + size) or (isinstance(limit, int) and size >= limit > 0)
            step = min(step, limit) if isinstance(limit, int) and limit > 0 else step
        if not more:
            return frozenset(tokens) if named else None
        start += step
    raise HttpFailed(what, 200, "the restriction listing does not end")
