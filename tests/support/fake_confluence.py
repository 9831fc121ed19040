"""A local Confluence for tests: a real HTTP server on loopback speaking Confluence Cloud's REST API v2 (with
the v1 endpoints for view restrictions, groups and memberships) or Data Center's /rest/api, as Atlassian
documents them: cursor pagination with `_links.next` and the Link header (Cloud), start/limit with
`_links.next` (Data Center), expansions, page status current/archived/trashed, attachments downloaded by
their link (Cloud redirects to a media URL), space permissions, view restrictions, 401 without credentials.

State is plain Python the tests change between inventories; a generated space of thousands of pages costs
a small object per page (bodies are made when read). Faults: a storm of 429s with Retry-After, a failure
(status, malformed JSON or a dropped connection) at the Nth request from now, a delay on every response,
403 on paths containing a string. Every request is recorded as (path with query, status).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit
from typing import Sequence

CLOUD_EMAIL = "lore-bot@acme.test"
CLOUD_TOKEN = "ATATT3xFfGF0-cloud-api-token-s3cret"
DC_PAT = "NjM0OTY3-dc-personal-access-token-s3cret"
CONTEXT = "/confluence"  # Data Center's context path
EPOCH = 1_767_600_000  # 2026-01-05T08:00:00Z


def stamp(n: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(EPOCH + 60 * n))


def small_pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_y(60)  # clear of the top margin, where a line reads as a running header and is dropped
    pdf.set_font("helvetica", style="B", size=14)
    pdf.cell(0, 10, "Attachment", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def small_docx(heading: str, text: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(heading, level=1)
    d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@dataclass(slots=True)
class FPage:
    id: str
    space: str
    title: str
    parent: str | None
    author: str
    editor: str
    body: str | None = None  # None: a generated page, whose body is made when read
    status: str = "current"
    version: int = 1
    created: int = 0
    updated: int = 0
    read_users: list[str] | None = None  # a view restriction: these users and groups (None: none)
    read_groups: list[str] | None = None


@dataclass(slots=True)
class FAttachment:
    id: str
    page: str
    title: str
    media_type: str
    data: bytes
    author: str
    version: int = 1
    updated: int = 0
    status: str = "current"


@dataclass
class FSpace:
    id: str
    key: str
    name: str
    users: list[str] = field(default_factory=list)  # "View space" granted to these users, groups, anonymous
    groups: list[str] = field(default_factory=list)
    anonymous: bool = False
    roles: list[str] = field(default_factory=list)  # Cloud RBAC role principals (never expanded by Lore)
    pages: list[str] = field(default_factory=list)


class FakeConfluence:
    """`with FakeConfluence("cloud") as wiki: ConfluenceSource("w", wiki.url, spaces=[...], **wiki.credentials)`."""

    def __init__(self, flavor: str = "cloud") -> None:
        assert flavor in ("cloud", "datacenter")
        self.flavor = flavor
        self.spaces: dict[str, FSpace] = {}
        self.pages: dict[str, FPage] = {}
        self.attachments: dict[str, FAttachment] = {}
        self.memberships: dict[str, list[str]] = {}  # user -> group names
        self.group_ids: dict[str, str] = {}  # Cloud group name -> id
        self.requests: list[tuple[str, int]] = []
        self.delay = 0.0
        self.forbidden: set[str] = set()  # 403 for any path containing one of these
        self._lock = threading.Lock()
        self._ids = 100_000
        self._clock = 0
        self._served = 0
        self._storm: int | None = 0  # requests left in a 429/503 storm; None = endless
        self._storm_status, self._retry_after = 429, "0"
        self._fail: tuple[int, int, int, str] | None = None  # (from, to, status, kind)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a 5,000-page inventory reuses one connection
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)

            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.root = root
        self.url = root if flavor == "cloud" else root + CONTEXT

    def __enter__(self) -> "FakeConfluence":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def credentials(self) -> dict:
        return {"email": CLOUD_EMAIL, "token": CLOUD_TOKEN} if self.flavor == "cloud" else {"pat": DC_PAT}

    # -- state ----------------------------------------------------------------------------------------
    def _id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def add_user(self, user: str, groups: Sequence[str] = ()) -> None:
        self.memberships[user] = list(groups)
        for g in groups:
            self.group_ids.setdefault(g, f"gid-{len(self.group_ids) + 1:04d}-{g}")

    def add_space(self, key: str, *, users: Sequence[str] = (), groups: Sequence[str] = (), anonymous: bool = False,
                  roles: Sequence[str] = ()) -> FSpace:
        for g in groups:
            self.group_ids.setdefault(g, f"gid-{len(self.group_ids) + 1:04d}-{g}")
        s = FSpace(id=self._id(), key=key, name=f"{key} space", users=list(users), groups=list(groups),
                   anonymous=anonymous, roles=list(roles))
        self.spaces[key] = s
        return s

    def add_page(self, space: str, title: str, body: str | None = None, *, parent: str | None = None,
                 author: str = "", status: str = "current") -> str:
        author = author or next(iter(self.memberships), "admin")
        t = self._tick()
        p = FPage(id=self._id(), space=space, title=title, parent=parent, author=author, editor=author, body=body,
                  status=status, created=t, updated=t)
        self.pages[p.id] = p
        self.spaces[space].pages.append(p.id)
        return p.id

    def edit_page(self, page_id: str, body: str | None = None, *, title: str | None = None, editor: str = "") -> None:
        p = self.pages[page_id]
        p.body = body if body is not None else p.body
        p.title = title or p.title
        p.editor = editor or p.editor
        p.version += 1
        p.updated = self._tick()

    def restrict(self, page_id: str, users: Sequence[str] = (), groups: Sequence[str] = ()) -> None:
        """A view restriction on the page (users and groups); both empty removes it."""
        p = self.pages[page_id]
        p.read_users, p.read_groups = (list(users), list(groups)) if (users or groups) else (None, None)
        for g in groups:
            self.group_ids.setdefault(g, f"gid-{len(self.group_ids) + 1:04d}-{g}")

    def set_status(self, page_id: str, status: str) -> None:
        """'archived' or 'trashed' (the page stays readable by id with that status)."""
        self.pages[page_id].status = status

    def delete_page(self, page_id: str) -> None:
        """Purged: gone from every listing, 404 by id."""
        p = self.pages.pop(page_id)
        self.spaces[p.space].pages.remove(page_id)
        for a in [a for a in self.attachments.values() if a.page == page_id]:
            del self.attachments[a.id]

    def add_attachment(self, page_id: str, title: str, data: bytes, media_type: str, *, author: str = "") -> str:
        a = FAttachment(id="att" + self._id(), page=page_id, title=title, media_type=media_type, data=data,
                        author=author or self.pages[page_id].author, updated=self._tick())
        self.attachments[a.id] = a
        return a.id

    def update_attachment(self, att_id: str, data: bytes) -> None:
        a = self.attachments[att_id]
        a.data, a.version, a.updated = data, a.version + 1, self._tick()

    def generate_space(self, key: str, count: int, *, fanout: int = 10, groups: Sequence[str] = ("staff",),
                       author: str = "") -> list[str]:
        """A space of `count` pages in a tree (`fanout` children each), generated bodies: cheap to hold."""
        self.add_space(key, groups=list(groups))
        ids: list[str] = []
        for i in range(count):
            parent = ids[(i - 1) // fanout] if i else None
            ids.append(self.add_page(key, f"{key} page {i}", parent=parent, author=author))
        return ids

    # -- faults ---------------------------------------------------------------------------------------
    def storm(self, times: int | None, *, retry_after: str = "0", status: int = 429) -> None:
        """The next `times` requests (None: all of them, until `storm(0)`) answer `status` with Retry-After."""
        with self._lock:
            self._storm, self._storm_status, self._retry_after = times, status, retry_after

    def fail_at(self, n: int, *, status: int = 500, times: int = 1_000_000, kind: str = "status") -> None:
        """The Nth request from now (1 = the next) and the `times - 1` after it fail: `kind` 'status' answers
        `status`, 'json' a 200 whose body is not JSON, 'drop' closes the connection without an answer."""
        with self._lock:
            self._fail = (self._served + n, self._served + n + times, status, kind)

    def clear_faults(self) -> None:
        with self._lock:
            self._storm, self._fail, self.delay = 0, None, 0.0
            self.forbidden.clear()

    @property
    def served(self) -> int:
        return self._served

    # -- the wire -------------------------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        q = {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self._served += 1
            n = self._served
            storm = self._storm is None or self._storm > 0
            if storm and self._storm:
                self._storm -= 1
            fail = self._fail if self._fail and self._fail[0] <= n < self._fail[1] else None
        if self.delay:
            time.sleep(self.delay)
        status, payload, ctype, headers = self._answer(h, parts.path, q, storm, fail)
        with self._lock:
            self.requests.append((h.path, status))
        if status == -1:  # dropped: no answer at all
            h.close_connection = True
            h.wfile.flush()
            h.connection.shutdown(2)
            return
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(payload)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first (its timeout): as a real server,
            h.close_connection = True  # drop the connection quietly rather than print a traceback

    def _answer(self, h, path: str, q: dict, storm: bool, fail) -> tuple[int, bytes, str, dict]:
        if storm:
            return (self._storm_status, b'{"message": "Rate limit exceeded"}', "application/json",
                    {"Retry-After": self._retry_after})
        if fail:
            _, _, status, kind = fail
            if kind == "drop":
                return -1, b"", "", {}
            if kind == "json":
                return 200, b'{"results": [{"id": "1", "title": "trunc', "application/json", {}
            return status, json.dumps({"statusCode": status, "message": "Internal server error"}).encode(), \
                "application/json", {}
        if path.startswith(("/wiki/media/", CONTEXT + "/media/")):  # the redirect target of a Cloud download
            return self._media(path)
        expected = (f"Basic {base64.b64encode(f'{CLOUD_EMAIL}:{CLOUD_TOKEN}'.encode()).decode()}"
                    if self.flavor == "cloud" else f"Bearer {DC_PAT}")
        if h.headers.get("Authorization") != expected:
            return 401, b'{"statusCode": 401, "message": "Client must be authenticated to access this resource."}', \
                "application/json", {"WWW-Authenticate": 'Basic realm="Protected"'}
        if any(f in path for f in self.forbidden):
            return 403, b'{"statusCode": 403, "message": "Forbidden"}', "application/json", {}
        with self._lock:
            try:
                got = (self._cloud if self.flavor == "cloud" else self._dc)(path, q)
            except KeyError:
                got = None
        if got is None:
            return 404, b'{"statusCode": 404, "message": "Not found"}', "application/json", {}
        if isinstance(got, tuple):  # (status, bytes, content type, headers)
            return got
        return 200, json.dumps(got).encode(), "application/json", {}

    # -- shared JSON ------------------------------------------------------------------------------------
    def _one(self, q: dict, name: str, default: str = "") -> str:
        return (q.get(name) or [default])[0]

    def _user(self, user: str) -> dict:
        if self.flavor == "cloud":
            return {"type": "known", "accountId": user, "accountType": "atlassian", "displayName": user.title(),
                    "publicName": user}
        return {"type": "known", "username": user, "userKey": f"key-{user}", "displayName": user.title()}

    def _group(self, name: str) -> dict:
        return {"type": "group", "name": name, "id": self.group_ids.get(name, name)} if self.flavor == "cloud" \
            else {"type": "group", "name": name}

    def _restriction(self, content_id: str, q: dict, base: str) -> dict | None:
        p = self.pages.get(content_id)
        if p is None:
            return None
        start, limit = int(self._one(q, "start", "0")), min(int(self._one(q, "limit", "100")), 100)
        users, groups = p.read_users or [], p.read_groups or []
        u, g = users[start:start + limit], groups[start:start + limit]
        return {"operation": "read",
                "restrictions": {"user": {"results": [self._user(x) for x in u], "start": start, "limit": limit,
                                          "size": len(u), "totalSize": len(users)},
                                 "group": {"results": [self._group(x) for x in g], "start": start, "limit": limit,
                                           "size": len(g)}},
                "_expandable": {"content": f"/rest/api/content/{content_id}"},
                "_links": {"base": base, "context": base[len(self.root):], "self": f"{base}/rest/api/content/{content_id}"
                           f"/restriction/byOperation/read"}}

    def _offset_page(self, items: list, q: dict, path: str, base: str, default_limit: int = 25, render=None) -> dict:
        start, limit = int(self._one(q, "start", "0")), int(self._one(q, "limit", str(default_limit)))
        chunk = [render(x) for x in items[start:start + limit]] if render else items[start:start + limit]
        links = {"base": base, "context": base[len(self.root):], "self": base + path}
        if start + limit < len(items):
            rest = "&".join(f"{k}={quote(v[0], safe=',.')}" for k, v in q.items() if k not in ("start", "limit"))
            links["next"] = f"{path}?{rest + '&' if rest else ''}limit={limit}&start={start + limit}"
        return {"results": chunk, "start": start, "limit": limit, "size": len(chunk), "_links": links}

    def _media(self, path: str):
        att = self.attachments.get(path.rsplit("/", 1)[-1])
        if att is None:
            return None
        return 200, att.data, att.media_type, {}

    def _download(self, rest: str, q: dict):
        page_id, _, name = rest.partition("/")
        att = next((a for a in self.attachments.values() if a.page == page_id and a.title == unquote(name)), None)
        if att is None or att.status != "current":
            return None
        if self.flavor == "cloud":  # Cloud answers a download with a redirect to the media service
            return 302, b"", "text/plain", {"Location": f"/wiki/media/{att.id}"}
        return 200, att.data, att.media_type, {}

    def _webui(self, p: FPage) -> str:
        if self.flavor == "cloud":
            return f"/spaces/{p.space}/pages/{p.id}/{quote(p.title.replace(' ', '+'), safe='+')}"
        return f"/display/{p.space}/{quote(p.title.replace(' ', '+'), safe='+')}"

    def _ancestors(self, p: FPage) -> list[FPage]:
        chain, cur = [], p.parent
        while cur and cur in self.pages:
            chain.append(self.pages[cur])
            cur = self.pages[cur].parent
        return chain[::-1]

    def _body(self, p: FPage) -> str:
        if p.body is not None:
            return p.body
        return (f"<h1>{p.title}</h1><p>Generated page {p.id} of space {p.space}, version {p.version}.</p>"
                f"<h2>Details</h2><p>Owner {p.author}; the runbook step {int(p.id) % 97} applies.</p>")

    # -- Cloud: REST API v2, and v1 for restrictions, groups and memberships -----------------------------
    def _cloud_page(self, p: FPage, body: bool = False) -> dict:
        out = {"id": p.id, "status": p.status, "title": p.title, "spaceId": self.spaces[p.space].id,
               "parentId": p.parent, "parentType": "page" if p.parent else None, "position": 0,
               "authorId": p.author, "ownerId": p.author, "lastOwnerId": None, "createdAt": stamp(p.created),
               "version": {"createdAt": stamp(p.updated), "message": "", "number": p.version, "minorEdit": False,
                           "authorId": p.editor},
               "body": {"storage": {"representation": "storage", "value": self._body(p)}} if body else {},
               "_links": {"webui": self._webui(p), "editui": f"/pages/resumedraft.action?draftId={p.id}",
                          "tinyui": f"/x/{p.id}"}}
        return out

    def _cloud_attachment(self, a: FAttachment) -> dict:
        p = self.pages[a.page]
        download = f"/download/attachments/{p.id}/{quote(a.title)}?version={a.version}&modificationDate=" \
                   f"{(EPOCH + 60 * a.updated) * 1000}&cacheVersion=1&api=v2"
        webui = f"{self._webui(p)}?preview=/{p.id}/{a.id}/{quote(a.title)}"
        return {"id": a.id, "status": a.status, "title": a.title, "createdAt": stamp(a.updated), "pageId": p.id,
                "mediaType": a.media_type, "mediaTypeDescription": "", "comment": "", "fileId": f"file-{a.id}",
                "fileSize": len(a.data), "webuiLink": webui, "downloadLink": download,
                "version": {"createdAt": stamp(a.updated), "message": "", "number": a.version, "minorEdit": False,
                            "authorId": a.author},
                "_links": {"webui": webui, "download": download}}

    def _cursor(self, items: list, q: dict, path: str, render=None) -> tuple:
        """Cloud v2 cursor pagination: the next page's relative URL in `_links.next` and the Link header."""
        limit = min(int(self._one(q, "limit", "25")), 250)
        cursor = self._one(q, "cursor")
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        chunk = [render(x) for x in items[start:start + limit]] if render else items[start:start + limit]
        links = {"base": self.root + "/wiki"}
        headers = {}
        if start + limit < len(items):
            nxt_cursor = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            rest = "&".join(f"{k}={quote(x, safe=',')}" for k, v in q.items() if k not in ("cursor", "limit") for x in v)
            links["next"] = f"/wiki{path}?{rest + '&' if rest else ''}limit={limit}&cursor={quote(nxt_cursor)}"
            headers["Link"] = f'<{links["next"]}>; rel="next", <{self.root}/wiki>; rel="base"'
        return 200, json.dumps({"results": chunk, "_links": links}).encode(), "application/json", headers

    def _cloud(self, path: str, q: dict):
        if not path.startswith("/wiki/"):
            return None
        path = path[len("/wiki"):]
        if m := re.fullmatch(r"/download/attachments/(.+)", path):
            return self._download(m.group(1), q)
        if m := re.fullmatch(r"/rest/api/content/([^/]+)/restriction/byOperation/read", path):
            return self._restriction(m.group(1), q, self.root + "/wiki")
        if path == "/rest/api/group/by-id":
            gid = self._one(q, "id")
            name = next((n for n, i in self.group_ids.items() if i == gid), None)
            return {"type": "group", "name": name, "id": gid} if name else None
        if path == "/rest/api/user/memberof":  # an unknown (deleted) account: 404
            groups = [self._group(g) for g in self.memberships[self._one(q, "accountId")]]
            return self._offset_page(groups, q, "/rest/api/user/memberof", self.root + "/wiki", 200)
        if not path.startswith("/api/v2/"):
            return None
        path = path[len("/api/v2"):]
        if path == "/spaces":
            keys = set(",".join(q.get("keys", [])).split(",")) - {""}
            found = [s for s in self.spaces.values() if not keys or s.key in keys]
            return self._cursor([{"id": s.id, "key": s.key, "name": s.name, "type": "global", "status": "current",
                                  "_links": {"webui": f"/spaces/{s.key}"}} for s in found], q, "/api/v2/spaces")
        if m := re.fullmatch(r"/spaces/(\d+)/permissions", path):
            s = next(s for s in self.spaces.values() if s.id == m.group(1))
            perms: list[dict] = []
            for kind, ids in (("user", s.users), ("group", [self.group_ids[g] for g in s.groups]), ("role", s.roles)):
                for ident in ids:
                    for key, target in (("read", "space"), ("create", "page"), ("delete", "attachment")):
                        perms.append({"id": str(len(perms) + 1), "principal": {"type": kind, "id": ident},
                                      "operation": {"key": key, "targetType": target}})
            return self._cursor(perms, q, f"/api/v2{path}")
        if m := re.fullmatch(r"/spaces/(\d+)/pages", path):
            s = next(s for s in self.spaces.values() if s.id == m.group(1))
            wanted = set(q.get("status") or ["current", "archived"])  # the documented default
            body = self._one(q, "body-format") == "storage"
            pages = [self.pages[i] for i in s.pages if self.pages[i].status in wanted]
            return self._cursor(pages, q, f"/api/v2{path}", lambda p: self._cloud_page(p, body))
        if m := re.fullmatch(r"/pages/(\d+)", path):
            return self._cloud_page(self.pages[m.group(1)], self._one(q, "body-format") == "storage")
        if m := re.fullmatch(r"/pages/(\d+)/ancestors", path):
            chain = [{"id": a.id, "type": "page"} for a in self._ancestors(self.pages[m.group(1)])]
            return self._cursor(chain, q, f"/api/v2{path}")
        if m := re.fullmatch(r"/pages/(\d+)/attachments", path):
            page = self.pages[m.group(1)]
            atts = [self._cloud_attachment(a) for a in self.attachments.values() if a.page == page.id]
            return self._cursor(atts, q, f"/api/v2{path}")
        if m := re.fullmatch(r"/attachments/(att\d+)", path):
            return self._cloud_attachment(self.attachments[m.group(1)])
        return None

    # -- Data Center: /rest/api --------------------------------------------------------------------------
    def _dc_page(self, p: FPage, expand: str) -> dict:
        out: dict = {"id": p.id, "type": "page", "status": p.status, "title": p.title,
               "_links": {"webui": self._webui(p), "edit": f"/pages/resumedraft.action?draftId={p.id}",
                          "tinyui": f"/x/{p.id}", "self": f"{self.url}/rest/api/content/{p.id}"},
               "_expandable": {"space": f"/rest/api/space/{p.space}", "children": f"/rest/api/content/{p.id}/child"}}
        if "version" in expand:
            out["version"] = {"by": self._user(p.editor), "when": stamp(p.updated).replace("Z", "+00:00"),
                              "message": "", "number": p.version, "minorEdit": False}
        if "history" in expand:
            out["history"] = {"latest": True, "createdBy": self._user(p.author), "createdDate": stamp(p.created)}
        if "ancestors" in expand:
            out["ancestors"] = [{"id": a.id, "type": "page", "status": a.status, "title": a.title}
                                for a in self._ancestors(p)]
        if "restrictions.read.restrictions" in expand:
            r = self._restriction(p.id, {"limit": ["200"]}, self.url) or {"restrictions": {}}
            out["restrictions"] = {"read": {"operation": "read", "restrictions": r["restrictions"]}}
        if "body.storage" in expand:
            out["body"] = {"storage": {"value": self._body(p), "representation": "storage"}}
        return out

    def _dc_attachment(self, a: FAttachment) -> dict:
        p = self.pages[a.page]
        download = f"/download/attachments/{p.id}/{quote(a.title)}?version={a.version}&modificationDate=" \
                   f"{(EPOCH + 60 * a.updated) * 1000}&api=v2"
        return {"id": a.id, "type": "attachment", "status": a.status, "title": a.title,
                "metadata": {"mediaType": a.media_type}, "extensions": {"mediaType": a.media_type,
                                                                        "fileSize": len(a.data)},
                "version": {"by": self._user(a.author), "when": stamp(a.updated).replace("Z", "+00:00"),
                            "number": a.version, "minorEdit": False},
                "container": {"id": p.id, "type": "page", "title": p.title},
                "_links": {"webui": f"/pages/viewpageattachments.action?pageId={p.id}&preview={quote(a.title)}",
                           "download": download, "self": f"{self.url}/rest/api/content/{a.id}"}}

    def _dc(self, path: str, q: dict):
        if not path.startswith(CONTEXT + "/"):
            return None
        path = path[len(CONTEXT):]
        expand = ",".join(q.get("expand", []))
        if m := re.fullmatch(r"/download/attachments/(.+)", path):
            return self._download(m.group(1), q)
        if m := re.fullmatch(r"/rest/api/space/([^/]+)", path):
            s = self.spaces[m.group(1)]
            return {"id": int(s.id), "key": s.key, "name": s.name, "type": "global", "status": "current",
                    "_links": {"webui": f"/display/{s.key}", "base": self.url, "context": CONTEXT}}
        if m := re.fullmatch(r"/rest/api/space/([^/]+)/permissions", path):
            s = self.spaces[m.group(1)]
            subjects = [{"type": "user", "username": u, "userKey": f"key-{u}", "displayName": u.title()}
                        for u in s.users]
            subjects += [{"type": "group", "name": g, "displayName": g} for g in s.groups]
            subjects += [{"type": "anonymous", "displayName": "Anonymous"}] if s.anonymous else []
            return [{"operation": {"targetType": target, "operationKey": key}, "subject": subj, "spaceKey": s.key,
                     "spaceId": int(s.id)}
                    for subj in subjects for key, target in (("read", "space"), ("create", "page"))]
        if path == "/rest/api/content":
            s = self.spaces[self._one(q, "spaceKey")]
            wanted = set(",".join(q.get("status") or ["current"]).split(","))
            pages = [self.pages[i] for i in s.pages if self.pages[i].status in wanted]
            return self._offset_page(pages, q, path, self.url, render=lambda p: self._dc_page(p, expand))
        if m := re.fullmatch(r"/rest/api/content/(att\d+)", path):
            return self._dc_attachment(self.attachments[m.group(1)])
        if m := re.fullmatch(r"/rest/api/content/(\d+)", path):
            return self._dc_page(self.pages[m.group(1)], expand)
        if m := re.fullmatch(r"/rest/api/content/(\d+)/child/attachment", path):
            page = self.pages[m.group(1)]
            atts = [self._dc_attachment(a) for a in self.attachments.values() if a.page == page.id]
            return self._offset_page(atts, q, path, self.url)
        if m := re.fullmatch(r"/rest/api/content/([^/]+)/restriction/byOperation/read", path):
            return self._restriction(m.group(1), q, self.url)
        if path == "/rest/api/user/memberof":
            groups = [self._group(g) for g in self.memberships[self._one(q, "username")]]
            return self._offset_page(groups, q, path, self.url, 200)
        return None
