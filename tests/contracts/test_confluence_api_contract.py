"""The Confluence `Api` contract (ingest/sources/confluence/records.py), run against both implementations:
Cloud (REST v2 with v1 where v2 has no call) and Data Center (REST v1), each against the fake Confluence
speaking that flavor's wire protocol. What `ConfluenceSource` relies on: the same records from either
flavor for the same wiki, and every failure an `HttpFailed`."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Iterator

import pytest

from ingest.sources.confluence.cloud import CloudApi
from ingest.sources.confluence.datacenter import DataCenterApi
from ingest.sources.confluence.http import ConfluenceHttp, HttpFailed, basic_auth, bearer_auth
from ingest.sources.confluence.records import Api, Attachment, Page, Space
from tests.support.fake_confluence import CLOUD_EMAIL, CLOUD_TOKEN, DC_PAT, FakeConfluence

PDF = b"%PDF-1.4\n% a tiny attachment\n"


@dataclasses.dataclass
class Wiki:
    api: Api
    fake: FakeConfluence
    user: str  # the Confluence user who reads the space, as Confluence names them
    home: str
    child: str
    secret: str  # a page with a view restriction
    archived: str
    attachment: str

    @property
    def token(self) -> str:
        return "user:" + self.user.replace(":", ".")


@pytest.fixture(scope="module", params=["cloud", "datacenter"])
def fake_wiki(request) -> Iterator[tuple[FakeConfluence, dict]]:
    """One fake Confluence per flavor for the module (no test changes its pages); the ids of its pages."""
    flavor = request.param
    fake = FakeConfluence(flavor)
    user = "557058:ana-0001" if flavor == "cloud" else "ana"
    fake.add_user(user, ["staff", "eng"])
    fake.add_space("ENG", users=[user], groups=["staff"])
    home = fake.add_page("ENG", "Home", "<h1>Welcome</h1><p>The engineering space.</p>", author=user)
    child = fake.add_page("ENG", "Deploys", "<p>No deploys on Fridays.</p>", parent=home, author=user)
    secret = fake.add_page("ENG", "Salaries", "<p>Bands.</p>", parent=child, author=user)
    fake.restrict(secret, users=[user], groups=["eng"])
    archived = fake.add_page("ENG", "Old", "<p>Gone.</p>", parent=home, author=user)
    fake.set_status(archived, "archived")
    att = fake.add_attachment(child, "runbook.pdf", PDF, "application/pdf", author=user)
    with fake:
        yield fake, {"user": user, "home": home, "child": child, "secret": secret, "archived": archived,
                     "attachment": att}


@pytest.fixture()
def wiki(fake_wiki) -> Iterator[Wiki]:
    """A fresh Api of the flavor (nothing learnt yet) over the module's fake."""
    fake, ids = fake_wiki
    if fake.flavor == "cloud":
        http = ConfluenceHttp(fake.url, basic_auth(CLOUD_EMAIL, CLOUD_TOKEN), client=None, max_retries=0,
                              max_wait=1.0, backoff=0.01, timeout=5.0)
        api: Api = CloudApi(http, page_size=1)
    else:
        http = ConfluenceHttp(fake.url, bearer_auth(DC_PAT), client=None, max_retries=0, max_wait=1.0,
                              backoff=0.01, timeout=5.0)
        api = DataCenterApi(http, page_size=1)
    yield Wiki(api, fake, **ids)
    fake.clear_faults()
    http.close()


def _instant(s: str) -> datetime:
    t = datetime.fromisoformat(s)
    assert t.tzinfo is not None, s
    return t


def test_a_space_and_its_readers(wiki):
    space = wiki.api.space("ENG")
    assert isinstance(space, Space) and space.key == "ENG" and space.id and space.name
    assert wiki.api.space_readers(space) == {"group:staff", wiki.token}
    with pytest.raises(HttpFailed) as exc:
        wiki.api.space("NOPE")
    assert exc.value.status == 404


def test_pages_lists_every_current_page_once_across_listing_pages(wiki):
    pages = list(wiki.api.pages(wiki.api.space("ENG")))
    assert all(isinstance(p, Page) for p in pages)
    assert sorted(p.id for p in pages) == sorted([wiki.home, wiki.child, wiki.secret])  # not the archived one
    by_id = {p.id: p for p in pages}
    assert by_id[wiki.child].title == "Deploys" and by_id[wiki.child].version >= 1
    for p in pages:
        _instant(p.updated_at)
        assert p.webui and wiki.token in p.owners
        assert p.parent_id is not None or p.ancestors is not None or p.id == wiki.home


def test_ancestors_run_from_the_root(wiki):
    assert wiki.api.ancestors(wiki.secret) == (wiki.home, wiki.child)
    assert wiki.api.ancestors(wiki.home) == ()


def test_a_read_restriction_or_none(wiki):
    wiki.api.space_readers(wiki.api.space("ENG"))
    assert wiki.api.restriction(wiki.child) is None
    assert wiki.api.restriction(wiki.secret) == {wiki.token, "group:eng"}


def test_attachments_of_a_page_and_by_id(wiki):
    page = next(p for p in wiki.api.pages(wiki.api.space("ENG")) if p.id == wiki.child)
    atts = list(wiki.api.attachments(page))
    assert [a.id for a in atts] == [wiki.attachment] and all(isinstance(a, Attachment) for a in atts)
    a = atts[0]
    assert a.page_id == wiki.child and a.title == "runbook.pdf" and a.download and a.version >= 1
    _instant(a.updated_at)
    again = wiki.api.attachment(wiki.attachment)
    assert (again.id, again.page_id, again.title, again.version) == (a.id, a.page_id, a.title, a.version)


def test_groups_of_a_user_met_in_this_inventory_and_reset_forgets_them(wiki):
    assert wiki.api.groups_of(wiki.token) == frozenset()  # not met yet: nobody to look up
    wiki.api.space_readers(wiki.api.space("ENG"))
    assert wiki.api.groups_of(wiki.token) == {"group:staff", "group:eng"}
    wiki.api.reset()
    assert wiki.api.groups_of(wiki.token) == frozenset()


def test_a_page_body_and_a_page_no_longer_current(wiki):
    storage, title, version = wiki.api.page_body(wiki.child)
    assert "No deploys on Fridays." in storage and title == "Deploys" and version >= 1
    with pytest.raises(HttpFailed) as exc:
        wiki.api.page_body(wiki.archived)
    assert exc.value.status == 404


def test_every_failure_is_http_failed(wiki):
    space = wiki.api.space("ENG")
    wiki.fake.fail_at(1, status=500)
    with pytest.raises(HttpFailed) as exc:
        list(wiki.api.pages(space))
    assert exc.value.status == 500 and str(exc.value)
    wiki.fake.clear_faults()
    wiki.fake.fail_at(1, kind="json")
    with pytest.raises(HttpFailed):
        wiki.api.page_body(wiki.child)
