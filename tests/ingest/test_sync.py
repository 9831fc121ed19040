"""Syncing sources (ingest/sync.py) over real Git repositories and the Confluence fake: every change of the
inventory takes effect in one sync, a broken listing changes nothing, and a rerun after a crash equals one
clean sync. Real model, real Chroma and SQLite."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from ingest.sources.confluence import ConfluenceSource
from ingest.sources.git import GitSource
from ingest.sources.registry import SourceConfig, SourceRegistry
from ingest.sync import Syncer, source_doc_id
from retriever.search import Retriever
from ingest.access import Principal
from tests.support import ENTERPRISE_DIRS, SAMPLES, snapshot
from tests.support.fake_confluence import FakeConfluence
from tests.support.gitrepo import Repo, date


def chunks_by_path(store, root: str = "") -> dict:
    """Each document's chunks (text, section, span) keyed by its path below the corpus root (given a root),
    else by its id in its source (a file's is its absolute path)."""
    out = {}
    for d in store.documents():
        key = d.uri.split(root, 1)[-1].lstrip("/") if root else d.external_id
        out[key] = [(c.text, c.section, c.start, c.end) for c in store.chunks(d.id)]
    return out


@pytest.fixture()
def repo(tmp_path) -> Repo:
    r = Repo(tmp_path / "work")
    shutil.copytree(SAMPLES, r.path, dirs_exist_ok=True)
    r.write("CODEOWNERS", "* @acme/docs\n/policies/ @acme/people-ops hr-lead@example.com\n")
    r.commit(date(1))
    return r


@pytest.fixture()
def git(repo, tmp_path):
    return GitSource("handbook", str(repo.path), cache_dir=tmp_path / "cache", link="https://git.example.com/{path}")


def test_a_git_sync_stores_what_a_folder_ingest_stores_with_commit_dates_and_owners(repo, git, make_ingestor,
                                                                                    tmp_path):
    folder = make_ingestor(tmp_path / "folder")
    folder.ingest([repo.path])
    ing = make_ingestor(tmp_path / "kb")
    rep = Syncer(ing).sync(git)
    assert rep.status == "ok" and rep.failed == [] and rep.added == rep.listed > 5, rep
    want = {k: v for k, v in chunks_by_path(folder.store, str(repo.path)).items()}
    assert chunks_by_path(ing.store) == want
    docs = {d.external_id: d for d in ing.store.documents()}
    by_file = {d.uri.split(str(repo.path), 1)[-1].lstrip("/"): d.updated_at for d in folder.store.documents()}
    commit = "2024-03-01T10:00:00+01:00"  # front matter's date wins, else the last commit's (never the mtime)
    assert all(d.updated_at in (by_file[k], commit) for k, d in docs.items())
    assert sum(d.updated_at == commit != by_file[k] for k, d in docs.items()) >= 3
    assert docs["policies/pto-policy.md"].owners == ("group:people-ops", "user:hr-lead@example.com")
    assert docs["specs/payments-api.md"].owners == ("group:docs",)
    assert docs["specs/payments-api.md"].uri == "https://git.example.com/specs/payments-api.md"
    assert docs["specs/payments-api.md"].source == "handbook"
    again = Syncer(ing).sync(git)  # nothing changed: nothing fetched, parsed or embedded
    assert (again.status, again.unchanged, again.added + again.updated + again.deleted) == ("ok", rep.listed, 0)


def test_edits_renames_and_deletes_take_effect_in_one_sync(repo, git, make_ingestor):
    ing = make_ingestor()
    Syncer(ing).sync(git)
    before = {d.external_id: d for d in ing.store.documents()}
    pto = before["policies/pto-policy.md"]
    repo.write("policies/pto-policy.md", (repo.path / "policies/pto-policy.md").read_text()
               + "\n## Sabbatical\n\nAfter five years, staff may take a four-week paid sabbatical.\n")
    repo.git("mv", "specs/payments-api.md", "specs/payments-api-v2.md")
    repo.git("rm", "-q", "incidents/2025-03-14-checkout-outage.md")
    repo.commit(date(2))
    rep = Syncer(ing).sync(git)
    assert (rep.updated, rep.deleted, rep.added, rep.status) == (2, 1, 0, "ok"), rep  # the rename is an update
    after = {d.id: d for d in ing.store.documents()}
    assert pto.id in after and after[pto.id].version != pto.version
    moved = after[source_doc_id("handbook", "specs/payments-api.md")]  # one document across the rename
    assert moved.uri.endswith("specs/payments-api-v2.md")
    assert not any("checkout-outage" in d.uri for d in after.values())
    hits = Retriever(ing.store, ing.vectors, ing.embedder).search("four-week paid sabbatical", Principal(), top_k=3).hits
    assert hits[0].doc.id == pto.id
    assert ing.vectors.ids() == ing.store.chunk_ids()


def test_a_listing_that_fails_or_comes_back_empty_deletes_nothing(repo, git, make_ingestor, tmp_path):
    ing = make_ingestor()
    Syncer(ing).sync(git)
    kept = snapshot(ing)
    gone = GitSource("handbook", str(tmp_path / "no-such-repo"), cache_dir=tmp_path / "cache2")
    rep = Syncer(ing).sync(gone)
    assert rep.status == "failed" and "could not be listed" in rep.error and rep.deleted == 0
    repo.git("rm", "-q", "-r", "policies", "specs", "incidents")
    repo.commit(date(3))
    empty = Syncer(ing).sync(git)
    assert empty.status == "failed" and "listed nothing where" in empty.error and "--allow-empty" in empty.error
    assert snapshot(ing) == kept
    forced = Syncer(ing).sync(git, allow_empty=True)
    assert forced.status == "ok" and forced.deleted == len(kept["docs"]) and ing.store.documents() == []


def confluence() -> tuple[FakeConfluence, dict]:
    wiki = FakeConfluence("cloud")
    ana, ben = "557058:ana-0001", "557058:ben-0001"
    wiki.add_user(ana, ["engineering"])
    wiki.add_user(ben, ["engineering"])
    wiki.add_space("ENG", groups=["engineering"])
    ids = {"home": wiki.add_page("ENG", "Home", "<h1>Welcome</h1><p>The engineering space.</p>", author=ana)}
    ids["deploy"] = wiki.add_page("ENG", "Deploy guide", "<h1>Freeze</h1><p>No deploys on Fridays after 15:00 "
                                  "in the payments team.</p>", parent=ids["home"], author=ana)
    ids["salary"] = wiki.add_page("ENG", "Salary bands", "<h1>Bands</h1><p>Staff engineers in Lisbon earn band "
                                  "L7 of the grid.</p>", parent=ids["home"], author=ben)
    ids["old"] = wiki.add_page("ENG", "Old runbook", "<h1>Old</h1><p>The legacy queue drains at midnight.</p>",
                               parent=ids["home"], author=ben)
    return wiki, ids


def wiki_source(wiki: FakeConfluence) -> ConfluenceSource:
    return ConfluenceSource("eng-wiki", wiki.url, flavor=wiki.flavor, spaces=["ENG"], page_size=2, backoff=0.01,
                            max_wait=5.0, max_retries=4, **wiki.credentials)


def found(ing, question: str, who: Principal) -> set[str]:
    r = Retriever(ing.store, ing.vectors, ing.embedder)
    return {h.doc.title for h in r.search(question, who, top_k=10).hits}


def test_confluence_restrictions_archives_and_deletions_take_effect_in_the_next_sync(make_ingestor):
    wiki, ids = confluence()
    ben = Principal("557058.ben-0001", ("engineering",))
    with wiki:
        ing = make_ingestor()
        src = wiki_source(wiki)
        first = Syncer(ing).sync(src)
        assert first.status == "ok" and first.added == 4, first
        assert "Salary bands" in found(ing, "salary band for staff engineers in Lisbon", ben)
        wiki.restrict(ids["salary"], users=["557058:ana-0001"])  # ben loses access after ingest
        wiki.set_status(ids["old"], "archived")
        wiki.delete_page(ids["deploy"])
        wiki.storm(3, retry_after="0")  # a burst of 429s on the way
        rep = Syncer(ing).sync(src)
        assert rep.status == "ok" and rep.deleted == 2 and rep.updated == 1, rep
        assert rep.acl_changed and rep.acl_changed[0]["to"] == ["user:557058.ana-0001"]
        assert "Salary bands" not in found(ing, "salary band for staff engineers in Lisbon", ben)
        ana = Principal("557058.ana-0001", ("engineering",))
        assert "Salary bands" in found(ing, "salary band for staff engineers in Lisbon", ana)
        assert {d.title for d in ing.store.documents()} == {"Home", "Salary bands"}
        kept = snapshot(ing)
        wiki.fail_at(3, status=500)  # the inventory breaks half-way: nothing changes
        broken = Syncer(ing).sync(src)
        assert broken.status == "failed" and snapshot(ing) == kept


def test_the_registry_keeps_sources_and_their_reports(tmp_path):
    reg = SourceRegistry(tmp_path / "sources.db")
    cfg = reg.add(SourceConfig("handbook", "git", {"repo": "/srv/handbook"}, interval_s=600, acl=("group:staff",)))
    assert cfg.created_at and reg.get("handbook") == cfg and reg.list() == [cfg]
    run = reg.start("handbook")
    assert reg.last("handbook")["error"].startswith("the sync stopped before it finished")
    reg.finish(run, {"status": "failed", "error": "boom"})
    reg.finish(reg.start("handbook"), {"status": "failed", "error": "boom"})
    assert reg.failures_in_a_row("handbook") == 2 and reg.last_success("handbook") is None
    reg.finish(reg.start("handbook"), {"status": "ok", "added": 3})
    assert reg.failures_in_a_row("handbook") == 0 and reg.last_success("handbook")["added"] == 3
    with pytest.raises(Exception, match="exists"):
        reg.add(cfg)
    reg.remove("handbook")
    assert reg.list() == []
    assert sqlite3.connect(tmp_path / "sources.db").execute("PRAGMA user_version").fetchone()[0] == 1


@pytest.mark.parametrize("bad", [{"name": "Bad Name"}, {"kind": "ftp"}, {"interval_s": -1}])
def test_bad_source_configs_name_the_field(bad):
    with pytest.raises(Exception, match="source name|source kind|interval"):
        SourceConfig(**{"name": "ok", "kind": "git", **bad})


def test_the_enterprise_corpus_through_git_equals_the_folder_ingest(enterprise_kb, make_ingestor, tmp_path):
    """The shared corpus committed into a test-made repository (read in place, copied only into tmp)."""
    folder_dir, done = enterprise_kb
    assert done.returncode == 0, done.stderr
    r = Repo(tmp_path / "enterprise")
    for d in ENTERPRISE_DIRS:
        shutil.copytree(d, r.path / d.name)
    r.commit(date(5))
    ing = make_ingestor(tmp_path / "kb")
    with sqlite3.connect(tmp_path / "kb" / "lore.db") as db:  # the folder ingest's vector cache: no re-embedding
        db.execute("ATTACH ? AS f", (str(folder_dir / "lore.db"),))
        db.execute("INSERT OR IGNORE INTO embeddings SELECT * FROM f.embeddings")
    rep = Syncer(ing).sync(GitSource("enterprise", str(r.path), cache_dir=tmp_path / "cache"))
    assert rep.status == "ok" and rep.failed == [], rep.failed[:3]
    from ingest.sqlite_store import SqliteStore

    folder = SqliteStore(folder_dir / "lore.db")
    root = str(ENTERPRISE_DIRS[0].parent)
    assert chunks_by_path(ing.store) == chunks_by_path(folder, root)
    assert {d.updated_at for d in ing.store.documents() if d.updated_at != date(5)} <= {
        d.updated_at for d in folder.documents()}  # front matter dates win, else the commit's


@pytest.mark.parametrize("point,n", [("before_commit", 4)])  # test_crash.py covers every point of ingest
def test_a_sync_killed_mid_way_then_run_again_equals_one_clean_sync(tmp_path, make_ingestor, point, n):
    import json
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from chromadb.api.client import SharedSystemClient

    from tests.support import REPO

    wiki, _ = confluence()
    for i in range(6):
        wiki.add_page("ENG", f"Runbook {i}", f"<h1>Step {i}</h1><p>Runbook {i} drains queue q{i} in {i + 2} "
                      "minutes.</p>")

    def run(d: Path, point: str, n: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(Path(__file__).parents[1] / "support" / "sync_driver.py"), str(d), point, str(n),
                               wiki.url, wiki.flavor, json.dumps(wiki.credentials)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)

    def state(d: Path) -> dict:
        SharedSystemClient.clear_system_cache()  # another process wrote since
        return snapshot(make_ingestor(d))

    with wiki:
        assert run(tmp_path / "clean", "none", 0).returncode == 0
        killed = run(tmp_path / "crashed", point, n)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        again = run(tmp_path / "crashed", "none", 0)
        assert again.returncode == 0, again.stderr[-2000:]
        assert json.loads(again.stdout.splitlines()[-1])["status"] == "ok"
        assert state(tmp_path / "crashed") == state(tmp_path / "clean")


def test_the_files_source_syncs_what_lore_ingest_stores(corpus, make_ingestor, tmp_path):
    """The folder ingest's selection and chunks, through the source seam (ingest/sources/files.py)."""
    from ingest.sources.files import FilesSource

    folder = make_ingestor(tmp_path / "folder")
    folder.ingest([corpus])
    ing = make_ingestor(tmp_path / "kb")
    src = FilesSource("drive", [corpus])
    rep = Syncer(ing).sync(src)
    assert rep.status == "ok" and rep.added == len(folder.store.documents()), rep
    key = {d.uri: d for d in folder.store.documents()}
    assert {d.uri: (d.title, d.doc_type, d.version, d.updated_at) for d in ing.store.documents()} == {
        u: (d.title, d.doc_type, d.version, d.updated_at) for u, d in key.items()}
    assert chunks_by_path(ing.store) == {  # keyed by external id: the file's path, as the folder's uri
        d.uri: [(c.text, c.section, c.start, c.end) for c in folder.store.chunks(d.id)] for d in folder.store.documents()}
    (corpus / "policies" / "pto-policy.md").unlink()
    assert Syncer(ing).sync(src).deleted == 1
