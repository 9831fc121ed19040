"""Confluence Cloud: REST API v2 for spaces, pages, attachments and space permissions, and the v1 endpoints
v2 has no equivalent for (view restrictions, group names, a user's groups).

https://developer.atlassian.com/cloud/confluence/rest/v2/intro/ (cursor pagination: `_links.next`, Link)
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-page/
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-attachment/
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-space-permissions/
https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content-restrictions/
"""

from __future__ import annotations

import logging
from typing import Iterator

from ingest.sources.confluence.acl import group_token, user_token
from ingest.sources.confluence.http import HttpFailed, iso
from ingest.sources.confluence.records import Attachment, BaseApi, Page, Space, owners, read_restriction

V2 = "/wiki/api/v2"
V1 = "/wiki/rest/api"
log = logging.getLogger(__name__)


class CloudApi(BaseApi):
    def reset(self) -> None:
        super().reset()
        self._group_names: dict[str, str | None] = {}  # group id -> name

    def space(self, key: str) -> Space:
        what = f"space {key}"
        body, resp = self.http.get_json(f"{V2}/spaces", {"keys": key, "limit": 1}, what=what)
        found = [s for s in (body.get("results") or []) if s.get("key") == key] if isinstance(body, dict) else []
        if not found:
            raise HttpFailed(what, 404, "no such space, or the account may not view it")
        s = found[0]
        return Space(id=str(s["id"]), key=key, name=s.get("name") or key)

    def space_readers(self, space: Space) -> frozenset[str]:
        tokens = set()
        for p in self._list(f"{V2}/spaces/{space.id}/permissions", {}, f"permissions of space {space.key}"):
            op, who = p.get("operation") or {}, p.get("principal") or {}
            if op.get("key") != "read" or op.get("targetType") != "space":
                continue
            if who.get("type") == "user":
                tok = user_token(str(who.get("id") or ""))
                if tok:
                    self.users[tok] = str(who["id"])
            elif who.get("type") == "group":
                tok = group_token(self._group_name(str(who.get("id") or ""), space.key) or "")
            else:  # roles (RBAC beta) are not expanded: their holders get no access in Lore
                continue
            if tok:
                tokens.add(tok)
        return frozenset(tokens)

    def _group_name(self, group_id: str, space_key: str) -> str | None:
        if group_id not in self._group_names:
            what = f"group {group_id} (read permission of space {space_key})"
            try:
                body, _ = self.http.get_json(f"{V1}/group/by-id", {"id": group_id}, what=what)
            except HttpFailed as exc:
                if exc.status != 404:
                    raise
                log.warning("%s: no such group; its permission is left out", what)
                body = None
            self._group_names[group_id] = body.get("name") if isinstance(body, dict) else None
        return self._group_names[group_id]

    def pages(self, space: Space) -> Iterator[Page]:
        for p in self._list(f"{V2}/spaces/{space.id}/pages", {"status": "current"}, f"pages of space {space.key}"):
            if p.get("status") != "current":
                continue  # archived, trashed, drafts: not in the inventory, so a sync removes them
            v = p.get("version") or {}
            yield Page(id=str(p["id"]), title=p.get("title") or "", version=int(v.get("number") or 0),
                       updated_at=iso(v.get("createdAt") or p.get("createdAt")),
                       webui=(p.get("_links") or {}).get("webui") or "",
                       owners=owners(p.get("ownerId") or p.get("authorId"), v.get("authorId")),
                       parent_id=str(p["parentId"]) if p.get("parentId") else None)

    def ancestors(self, page_id: str) -> tuple[str, ...]:
        out = [str(a["id"]) for a in self._list(f"{V2}/pages/{page_id}/ancestors", {}, f"ancestors of page {page_id}")]
        return tuple(out)

    def restriction(self, content_id: str) -> frozenset[str] | None:
        return read_restriction(self.http, f"{V1}/content/{content_id}/restriction/byOperation/read", "accountId",
                                self.users, what=f"view restrictions of page {content_id}")

    def attachments(self, page: Page) -> Iterator[Attachment]:
        for a in self._list(f"{V2}/pages/{page.id}/attachments", {}, f"attachments of page {page.id}"):
            if a.get("status", "current") == "current":
                yield self._attachment(a, page.id)

    def attachment(self, attachment_id: str) -> Attachment:
        body, resp = self.http.get_json(f"{V2}/attachments/{attachment_id}", None, what=f"attachment {attachment_id}")
        if not isinstance(body, dict) or body.get("status", "current") != "current":
            raise HttpFailed(f"attachment {attachment_id}", 404, "the attachment is no longer current")
        return self._attachment(body, str(body.get("pageId") or ""))

    def _attachment(self, a: dict, page_id: str) -> Attachment:
        v = a.get("version") or {}
        links = a.get("_links") or {}
        return Attachment(id=str(a["id"]), page_id=page_id, title=a.get("title") or "",
                          version=int(v.get("number") or 0), updated_at=iso(v.get("createdAt") or a.get("createdAt")),
                          webui=a.get("webuiLink") or links.get("webui") or "",
                          download=a.get("downloadLink") or links.get("download") or "",
                          owners=owners(v.get("authorId")))

    def groups_of(self, user: str) -> frozenset[str]:
        account = self.users.get(user)
        if not account:
            return frozenset()
        # v1 next links are relative to the /wiki base
        return self._groups(f"{V1}/user/memberof", {"accountId": account}, f"groups of user {account}",
                            self.http.base_url + "/wiki")

    def page_body(self, page_id: str) -> tuple[str, str, int]:
        return self._page_body(f"{V2}/pages/{page_id}", {"body-format": "storage"}, page_id)

    def download_url(self, link: str) -> str:
        """Cloud download links are relative to the /wiki base."""
        if link.startswith(("http://", "https://")):
            return link
        return self.http.base_url + "/wiki/" + link.lstrip("/")

    def web_url(self, webui: str) -> str:
        return self.download_url(webui) if webui else ""

