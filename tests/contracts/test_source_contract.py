"""The Source contract (ingest/sources/base.py), run against every implementation: files, Git, Confluence
Cloud and Data Center. What the sync engine relies on, checked once per source."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime
from typing import Callable, Iterator

import pytest

from ingest.formats import format_of
from ingest.sources.base import ItemUnavailable, Source, SourceItem, SourceUnavailable
from tests.support import SAMPLES
from tests.support.fake_confluence import FakeConfluence
from tests.support.gitrepo import Repo, date


@dataclasses.dataclass
class Case:
    source: Source
    add: Callable[[], None]  # one new item at the source
    break_listing: Callable[[], None]  # the inventory can no longer be listed completely


def _files(tmp_path) -> Case:
    from ingest.sources.files import FilesSource

    root = tmp_path / "drive"
    shutil.copytree(SAMPLES / "policies", root)
    return Case(FilesSource("drive", [root]), lambda: (root / "new.md").write_text("# New\n\nA new page.\n"),
                lambda: shutil.rmtree(root))


def _git(tmp_path) -> Case:
    from ingest.sources.git import GitSource

    repo = Repo(tmp_path / "repo")
    shutil.copytree(SAMPLES / "policies", repo.path / "policies")
    repo.commit(date(1))
    return Case(GitSource("handbook", str(repo.path), cache_dir=tmp_path / "cache"),
                lambda: repo.commit(date(2), files={"policies/new.md": "# New\n\nA new page.\n"}),
                lambda: shutil.rmtree(repo.path))


def _confluence(flavor: str):
    def make(tmp_path) -> Iterator[Case]:
        from ingest.sources.confluence import ConfluenceSource

        wiki = FakeConfluence(flavor)
        user = "557058:ana-0001" if flavor == "cloud" else "ana"
        wiki.add_user(user, ["staff"])
        wiki.add_space("ENG", groups=["staff"])
        home = wiki.add_page("ENG", "Home", "<h1>Welcome</h1><p>The engineering space.</p>", author=user)
        wiki.add_page("ENG", "Deploys", "<h1>Freeze</h1><p>No deploys on Fridays.</p>", parent=home, author=user)
        with wiki:
            src = ConfluenceSource("eng-wiki", wiki.url, flavor=flavor, spaces=["ENG"], page_size=1, backoff=0.01,
                                   max_wait=2.0, max_retries=2, **wiki.credentials)
            yield Case(src, lambda: wiki.add_page("ENG", "New", "<p>A new page.</p>", parent=home, author=user),
                       lambda: wiki.fail_at(1, status=500))
    return make


SOURCES = {"files": _files, "git": _git, "confluence-cloud": _confluence("cloud"),
           "confluence-datacenter": _confluence("datacenter")}


@pytest.fixture(params=sorted(SOURCES))
def case(request, tmp_path):
    made = SOURCES[request.param](tmp_path)
    if isinstance(made, Case):
        yield made
    else:
        yield from made


def test_items_are_complete_and_their_bytes_parse(case):
    items = list(case.source.inventory())
    assert items and all(isinstance(i, SourceItem) for i in items)
    assert len({i.external_id for i in items}) == len(items)  # ids are unique within a source
    for i in items:
        assert i.external_id and i.version and i.uri and format_of(i.name) is not None, i
        assert datetime.fromisoformat(i.updated_at).tzinfo is not None, i.updated_at  # an instant, not a local time
        assert all(t.startswith(("user:", "group:", "public")) for t in (*i.acl, *i.owners)), i
        assert isinstance(case.source.fetch(i), bytes) and case.source.fetch(i)


def test_an_unchanged_source_lists_the_same_items_and_a_new_one_appears(case):
    first = {i.external_id: i for i in case.source.inventory()}
    assert {i.external_id: i for i in case.source.inventory()} == first  # listing twice changes nothing
    case.add()
    second = {i.external_id: i for i in case.source.inventory()}
    assert set(second) > set(first) and len(second) == len(first) + 1
    assert all(second[k].version == v.version for k, v in first.items())


def test_an_item_that_is_gone_fails_alone(case):
    item = next(iter(case.source.inventory()))
    ghost = dataclasses.replace(item, external_id=item.external_id + "-gone", version="0" * 40,
                                path=item.path + "-gone")
    with pytest.raises(ItemUnavailable):
        case.source.fetch(ghost)


def test_a_listing_that_breaks_raises_and_never_returns_part(case):
    list(case.source.inventory())
    case.break_listing()
    with pytest.raises(SourceUnavailable):
        list(case.source.inventory())
