"""ConfluenceSource: the pages and attachments of some Confluence spaces, with their readers, as a Source."""

from __future__ import annotations

import logging
import re
from typing import Iterator

import httpx

from ingest.errors import ConfigError
from ingest.formats import format_of
from ingest.sources.base import ItemUnavailable, SourceItem, SourceUnavailable
from ingest.sources.confluence.acl import ALL_USERS_GROUPS, AclResolver
from ingest.sources.confluence.cloud import CloudApi
from ingest.sources.confluence.datacenter import DataCenterApi
from ingest.sources.confluence.http import ConfluenceHttp, HttpFailed, basic_auth, bearer_auth
from ingest.sources.confluence.records import Page
from ingest.sources.confluence.storage import storage_to_html

log = logging.getLogger(__name__)

FLAVORS = ("cloud", "datacenter")
MAX_PAGE_SIZE = 250  # Cloud v2's largest `limit`
_SLUG = re.compile(r"[^a-z0-9]+")
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]+")


class ConfluenceSource:
    """Confluence Cloud or Data Center spaces as a Source; see `acl` for how readers become Lore tokens.

        src = ConfluenceSource("eng-wiki", "https://acme.atlassian.net", spaces=["ENG"],
                               email="bot@acme.com", token=api_token)
        src = ConfluenceSource("wiki", "https://wiki.acme.com/confluence", flavor="datacenter",
                               spaces=["ENG"], pat=personal_access_token)

    Pages are named `<slug>-<id>.html` (storage format converted to plain HTML); attachments keep their file
    name and are listed only when `ingest.formats` parses their type.
    """

    def __init__(self, name: str, base_url: str, *, flavor: str = "cloud", spaces: list[str] | tuple[str, ...],
                 email: str | None = None, token: str | None = None, pat: str | None = None,
                 client: httpx.Client | None = None, max_retries: int = 5, page_size: int = 100,
                 max_wait: float = 300.0, backoff: float = 1.0, timeout: float = 30.0,
                 all_users_groups: tuple[str, ...] | list[str] = ALL_USERS_GROUPS) -> None:
        if flavor not in FLAVORS:
            raise ConfigError(f"Confluence source {name!r}: flavor {flavor!r} is not one of {', '.join(FLAVORS)}")
        if not re.match(r"https?://[^/\s]+", base_url or ""):
            raise ConfigError(f"Confluence source {name!r}: base_url {base_url!r} is not an http(s) URL")
        if "@" in base_url.split("/")[2]:  # not echoed: it holds a secret
            raise ConfigError(f"Confluence source {name!r}: base_url must not hold credentials; give email and "
                              "token (Cloud) or pat (Data Center)")
        spaces = [str(s).strip() for s in (spaces or []) if str(s).strip()]
        if not spaces:
            raise ConfigError(f"Confluence source {name!r}: give at least one space key in spaces")
        if flavor == "cloud" and not (email and token):
            raise ConfigError(f"Confluence source {name!r}: Cloud needs email and token (an Atlassian API token)")
        if flavor == "datacenter" and not pat:
            raise ConfigError(f"Confluence source {name!r}: Data Center needs pat (a personal access token)")
        if max_retries < 0:
            raise ConfigError(f"Confluence source {name!r}: max_retries must be 0 or more, not {max_retries}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"Confluence source {name!r}: page_size must be 1 to {MAX_PAGE_SIZE}, not {page_size}")
        base = base_url.rstrip("/")
        if flavor == "cloud":
            base = base.removesuffix("/wiki")  # v2 and v1 paths both start with /wiki
        self.name, self.base_url, self.flavor, self.spaces = name, base, flavor, tuple(spaces)
        self.all_users_groups = tuple(all_users_groups)
        auth = basic_auth(email, token) if flavor == "cloud" else bearer_auth(pat)  # type: ignore[arg-type]
        self._http = ConfluenceHttp(base, auth, client=client, max_retries=max_retries, max_wait=max_wait,
                                    backoff=backoff, timeout=timeout)
        self._api: CloudApi | DataCenterApi = (CloudApi if flavor == "cloud" else DataCenterApi)(self._http, page_size)
        self._downloads: dict[str, str] = {}  # attachment external id -> download link, from the last inventory

    def __repr__(self) -> str:
        return f"ConfluenceSource({self.name!r}, {self.base_url!r}, flavor={self.flavor!r}, spaces={list(self.spaces)})"

    def close(self) -> None:
        self._http.close()

    # -- inventory ------------------------------------------------------------------------------------
    def inventory(self) -> Iterator[SourceItem]:
        """Every current page and parseable attachment of the spaces; read whole before the first item is
        given, so a failure anywhere raises SourceUnavailable and no partial listing is ever seen."""
        try:
            items, downloads = self._collect()
        except HttpFailed as exc:
            raise self._unavailable(exc) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # JSON not shaped as documented
            raise SourceUnavailable(f"Confluence source {self.name!r} ({self.base_url}): a response is not shaped "
                                    f"as Atlassian documents it ({type(exc).__name__}: {exc}); nothing was listed "
                                    "and the sync changes nothing") from None
        self._downloads = downloads
        yield from items

    def _collect(self) -> tuple[list[SourceItem], dict[str, str]]:
        api = self._api
        api.reset()
        resolver = AclResolver(api.groups_of, self.all_users_groups)
        restrictions: dict[str, frozenset[str] | None] = {}
        items: list[SourceItem] = []
        downloads: dict[str, str] = {}
        for key in self.spaces:
            space = api.space(key)
            readers = api.space_readers(space)
            if not readers:
                log.warning("Confluence %s: no reader of space %s maps to a Lore principal; its pages are left out",
                            self.name, key)
            pages = list(api.pages(space))
            by_id = {p.id: p for p in pages}
            skipped = 0
            for page in pages:
                chain = self._chain(page, by_id)
                levels = [readers]
                for cid in (*chain, page.id):
                    r = self._restriction(cid, by_id, restrictions)
                    if r is not None:
                        levels.append(r)
                acl = resolver.acl(levels) if readers else ()
                if not acl:
                    skipped += 1
                    log.warning("Confluence %s: page %s (%s) is readable by no Lore principal; left out",
                                self.name, page.id, page.title)
                    continue
                path = "/".join([space.key, *(by_id[c].title for c in chain if c in by_id), page.title])
                items.append(self._page_item(page, acl, path))
                for att in api.attachments(page):
                    if format_of(att.title) is None:
                        continue  # images, archives, spreadsheets: no parser, not listed
                    eid = f"attachment:{att.id}"
                    downloads[eid] = att.download
                    items.append(SourceItem(
                        external_id=eid, name=_file_name(att.title, att.id), version=str(att.version),
                        updated_at=att.updated_at, uri=api.web_url(att.webui) or api.web_url(page.webui),
                        title=att.title, acl=acl, owners=att.owners or page.owners, path=f"{path}/{att.title}"))
            log.info("Confluence %s: space %s: %d current pages, %d left out", self.name, key, len(pages), skipped)
        return items, downloads

    def _chain(self, page: Page, by_id: dict[str, Page]) -> tuple[str, ...]:
        """The page's ancestors, root first."""
        if page.ancestors is not None:
            return page.ancestors
        chain: list[str] = []
        cur = page.parent_id
        while cur:
            if cur not in by_id or cur in chain:  # parent not listed (a folder, an archived page): ask
                return self._api.ancestors(page.id)
            chain.append(cur)
            cur = by_id[cur].parent_id
        return tuple(reversed(chain))

    def _restriction(self, cid: str, by_id: dict[str, Page], cache: dict) -> frozenset[str] | None:
        listed = by_id.get(cid)
        if listed is not None and listed.has_restriction:
            return listed.restriction
        if cid not in cache:
            cache[cid] = self._api.restriction(cid)
        return cache[cid]

    def _page_item(self, page: Page, acl: tuple[str, ...], path: str) -> SourceItem:
        slug = _SLUG.sub("-", page.title.lower()).strip("-")[:60] or "page"
        return SourceItem(external_id=f"page:{page.id}", name=f"{slug}-{page.id}.html", version=str(page.version),
                          updated_at=page.updated_at, uri=self._api.web_url(page.webui), title=page.title, acl=acl,
                          owners=page.owners, path=path)

    # -- fetch ----------------------------------------------------------------------------------------
    def fetch(self, item: SourceItem) -> bytes:
        """A page as HTML converted from its storage format, or an attachment's bytes."""
        kind, _, ident = item.external_id.partition(":")
        try:
            if kind == "page" and ident:
                storage, title, version = self._api.page_body(ident)
                if item.version and str(version) != item.version:
                    raise ItemUnavailable(item.external_id, f"changed since it was listed (version {item.version}, "
                                          f"now {version}); the next sync fetches the new version")
                return storage_to_html(storage, title or item.title).encode("utf-8")
            if kind == "attachment" and ident:
                link = self._downloads.get(item.external_id) or self._api.attachment(ident).download
                if not link:
                    raise ItemUnavailable(item.external_id, "Confluence gives no download link for it")
                resp = self._http.get(self._api.download_url(link), what=f"attachment {ident}", accept="*/*")
                return resp.content
        except HttpFailed as exc:
            raise ItemUnavailable(item.external_id, self._reason(exc)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ItemUnavailable(item.external_id, f"the response is not shaped as documented ({type(exc).__name__})") from None
        raise ItemUnavailable(item.external_id, "not a Confluence page or attachment id of this source")

    # -- errors ---------------------------------------------------------------------------------------
    def _reason(self, exc: HttpFailed) -> str:
        if exc.status == 401:
            return (f"{exc}: the credentials were refused; check the e-mail and API token (Cloud) or the "
                    "personal access token (Data Center)")
        if exc.status == 403:
            if "permissions of space" in exc.what or exc.what.startswith(("view restrictions", "group", "groups")):
                need = ("permission to read it, needed to compute who may read the pages (Cloud: View space and "
                        "the read:space:confluence and read:content-details:confluence scopes; Data Center: "
                        "space admin to list space permissions)")
            else:
                need = "permission to view it"
            return f"{exc}: the account lacks {need}"
        if exc.status == 404 and self.flavor == "datacenter" and "permissions of space" in exc.what:
            return f"{exc}: this Confluence has no /rest/api/space/{{key}}/permissions (Data Center 8.x and later)"
        if exc.status == 404:
            return f"{exc}: not found (deleted, or not visible to the account)"
        if exc.status == 0:
            return f"{exc}: cannot reach {self.base_url}"
        return str(exc)

    def _unavailable(self, exc: HttpFailed) -> SourceUnavailable:
        return SourceUnavailable(f"Confluence source {self.name!r} ({self.base_url}): {self._reason(exc)}; nothing "
                                 "was listed and the sync changes nothing: fix it and sync again")


def _file_name(title: str, ident: str) -> str:
    return _UNSAFE_NAME.sub("_", title).strip() or ident
