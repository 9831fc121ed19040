"""Confluence Data Center / Server: REST API /rest/api (offset pagination with `_links.next`, expansions).

https://developer.atlassian.com/server/confluence/confluence-rest-api-examples/
https://developer.atlassian.com/server/confluence/pagination-in-the-rest-api/
https://developer.atlassian.com/server/confluence/rest/v1000/api-group-space-permissions/ (GET
/rest/api/space/{key}/permissions, Confluence 8.x and later)
https://developer.atlassian.com/server/confluence/rest/v1000/api-group-attachments/
"""

from __future__ import annotations

from typing import Iterator

from ingest.sources.confluence.acl import group_token, user_token
from ingest.sources.confluence.http import HttpFailed, iso
from ingest.sources.confluence.records import Attachment, BaseApi, Page, Space, owners, read_restriction

API = "/rest/api"
PAGE_EXPAND = ("version,history,ancestors,restrictions.read.restrictions.user,"
               "restrictions.read.restrictions.group")
PUBLIC = "public"


class DataCenterApi(BaseApi):
    first_page = {"start": 0}

    def space(self, key: str) -> Space:
        body, _ = self.http.get_json(f"{API}/space/{key}", None, what=f"space {key}")
        if not isinstance(body, dict) or body.get("key") != key:
            raise HttpFailed(f"space {key}", 404, "no such space, or the account may not view it")
        return Space(id=str(body.get("id") or key), key=key, name=body.get("name") or key)

    def space_readers(self, space: Space) -> frozenset[str]:
        what = f"permissions of space {space.key}"
        body, resp = self.http.get_json(f"{API}/space/{space.key}/permissions", None, what=what)
        if not isinstance(body, list):
            raise HttpFailed(what, resp.status_code, "the response is not a list of permissions")
        tokens = set()
        for p in body:
            op, who = (p or {}).get("operation") or {}, (p or {}).get("subject") or {}
            if op.get("operationKey") != "read" or op.get("targetType") != "space":
                continue
            kind = who.get("type")
            if kind == "user":
                name = who.get("username") or who.get("name") or ""
                tok = user_token(name)
                if tok:
                    self.users[tok] = name
            elif kind == "group":
                tok = group_token(who.get("name") or who.get("groupName") or "")
            elif kind == "anonymous":
                tok = PUBLIC
            else:
                continue
            if tok:
                tokens.add(tok)
        return frozenset(tokens)

    def pages(self, space: Space) -> Iterator[Page]:
        params = {"spaceKey": space.key, "type": "page", "status": "current", "expand": PAGE_EXPAND}
        for p in self._list(f"{API}/content", params, f"pages of space {space.key}"):
            if p.get("status") != "current" or p.get("type", "page") != "page":
                continue
            v, h = p.get("version") or {}, p.get("history") or {}
            read = _complete((p.get("restrictions") or {}).get("read"))
            yield Page(id=str(p["id"]), title=p.get("title") or "", version=int(v.get("number") or 0),
                       updated_at=iso(v.get("when")), webui=(p.get("_links") or {}).get("webui") or "",
                       owners=owners(_username(h.get("createdBy")), _username(v.get("by"))),
                       ancestors=tuple(str(a["id"]) for a in p.get("ancestors") or []),
                       restriction=self._inline_restriction(read) if read else None, has_restriction=read is not None)

    def _inline_restriction(self, read: dict) -> frozenset[str] | None:
        r = read.get("restrictions") or {}
        users = (r.get("user") or {}).get("results") or []
        groups = (r.get("group") or {}).get("results") or []
        if not users and not groups:
            return None
        tokens = set()
        for u in users:
            tok = user_token(_username(u) or "")
            if tok:
                self.users[tok] = _username(u) or ""
                tokens.add(tok)
        tokens.update(t for t in (group_token(g.get("name") or "") for g in groups) if t)
        return frozenset(tokens)

    def ancestors(self, page_id: str) -> tuple[str, ...]:
        body, _ = self.http.get_json(f"{API}/content/{page_id}", {"expand": "ancestors"}, what=f"ancestors of page {page_id}")
        return tuple(str(a["id"]) for a in (body.get("ancestors") or [])) if isinstance(body, dict) else ()

    def restriction(self, content_id: str) -> frozenset[str] | None:
        return read_restriction(self.http, f"{API}/content/{content_id}/restriction/byOperation/read", "username",
                                self.users, what=f"view restrictions of page {content_id}")

    def attachments(self, page: Page) -> Iterator[Attachment]:
        for a in self._list(f"{API}/content/{page.id}/child/attachment", {"expand": "version"},
                            f"attachments of page {page.id}"):
            if a.get("status", "current") == "current":
                yield self._attachment(a, page.id)

    def attachment(self, attachment_id: str) -> Attachment:
        body, _ = self.http.get_json(f"{API}/content/{attachment_id}", {"expand": "version,container"},
                                     what=f"attachment {attachment_id}")
        if not isinstance(body, dict) or body.get("status", "current") != "current":
            raise HttpFailed(f"attachment {attachment_id}", 404, "the attachment is no longer current")
        return self._attachment(body, str((body.get("container") or {}).get("id") or ""))

    def _attachment(self, a: dict, page_id: str) -> Attachment:
        v, links = a.get("version") or {}, a.get("_links") or {}
        return Attachment(id=str(a["id"]), page_id=page_id, title=a.get("title") or "",
                          version=int(v.get("number") or 0), updated_at=iso(v.get("when")),
                          webui=links.get("webui") or "", download=links.get("download") or "",
                          owners=owners(_username(v.get("by"))))

    def groups_of(self, user: str) -> frozenset[str]:
        name = self.users.get(user)
        if not name:
            return frozenset()
        return self._groups(f"{API}/user/memberof", {"username": name}, f"groups of user {name}", self.http.base_url)

    def page_body(self, page_id: str) -> tuple[str, str, int]:
        return self._page_body(f"{API}/content/{page_id}", {"expand": "body.storage,version"}, page_id)

    def download_url(self, link: str) -> str:
        return self.http.url(link) if link else ""

    def web_url(self, webui: str) -> str:
        return self.http.url(webui) if webui else ""


def _complete(read: dict | None) -> dict | None:
    """The read restriction a listing carries if it is whole (both lists expanded, none cut short), else None:
    then the restriction endpoint is asked, so a list the listing left out never reads as "no restriction"."""
    parts = (read or {}).get("restrictions") or {}
    for kind in ("user", "group"):
        part = parts.get(kind)
        if not isinstance(part, dict) or not isinstance(part.get("results"), list):
            return None
        size, limit, total = part.get("size", len(part["results"])), part.get("limit"), part.get("totalSize")
        if (part.get("_links") or {}).get("next") or (isinstance(total, int) and total > size) or \
                (isinstance(limit, int) and 0 < limit <= size):
            return None
    return read


def _username(user: dict | None) -> str | None:
    return (user or {}).get("username") or (user or {}).get("name") or None
