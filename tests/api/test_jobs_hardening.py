"""Ingest jobs outlive their service (killed ones show as interrupted), and the walk stays inside the roots."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support import LORE, REPO

OUTSIDE = "links outside the allowed folders"
N_BULK = 80


def md(title: str, *paragraphs: str) -> bytes:
    return ("# " + title + "\n\n" + "\n\n".join(paragraphs) + "\n").encode()


def wait_job(c: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def search(c: httpx.Client, query: str) -> list[dict]:
    r = c.post("/v1/search", json={"query": query, "mode": "keyword", "top_k": 20})
    assert r.status_code == 200, r.text
    return r.json()["hits"]


@pytest.fixture()
def site(tmp_path):
    """An ingest root with a small handbook, a folder outside it holding a secret, and settings for both."""
    from api.settings import Settings

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "handbook").mkdir(parents=True)
    (root / "handbook" / "travel.md").write_bytes(md("Travel", "Book trains through the quillfeather portal."))
    (root / "handbook" / "laptops.md").write_bytes(md("Laptops", "Laptops are refreshed every marrowlight cycle."))
    outside.mkdir()
    (outside / "secret.md").write_bytes(md("Secret", "The zanzibarite launch code is 1234."))

    def settings():  # a fresh object per service, as a restarted process builds it
        return Settings(data_dir=tmp_path / "data", server={"ingest_roots": [str(root)]})

    return root, outside, settings


def admin_key(settings) -> str:
    from ingest.keys import KeyStore

    return KeyStore(Path(settings.data_dir) / "auth.db").create("root", "", "admin")[0]


def jobs_db(settings) -> sqlite3.Connection:
    return sqlite3.connect(str(Path(settings.data_dir) / "jobs.db"), isolation_level=None, timeout=30)


# -- jobs survive a restart -------------------------------------------------------------------------

def test_a_finished_job_is_still_listed_after_a_restart(site):
    from tests.support.live import LiveServer

    root, _, settings = site
    key = admin_key(settings())
    with LiveServer(settings()) as srv, srv.client(key) as c:
        r = c.post("/v1/ingest", json={"paths": ["handbook"], "acl": ["public"], "exclude": ["drafts/"]})
        assert r.status_code == 202, r.text
        done = wait_job(c, r.json()["job_id"])
        second = wait_job(c, c.post("/v1/ingest", json={"paths": ["handbook"]}).json()["job_id"])
    assert done["status"] == "succeeded" and done["report"]["added"] == 2, done
    with LiveServer(settings()) as srv, srv.client(key) as c:
        again = c.get(f"/v1/jobs/{done['job_id']}")
        listed = c.get("/v1/jobs").json()["jobs"]
    assert again.status_code == 200 and again.json() == done
    assert [j["job_id"] for j in listed] == [second["job_id"], done["job_id"]] and listed[0] == second
    assert listed[1] == done and done["paths"] == [str(root / "handbook")] and done["exclude"] == ["drafts/"]


def test_a_job_killed_with_its_service_shows_interrupted(site, tmp_path):
    """The real `lore serve`, killed with SIGKILL while a slow job runs; the next service says what happened."""
    from tests.support.live import LiveServer, free_port

    root, _, settings = site
    s = settings()
    key = admin_key(s)
    bulk = root / "bulk"
    bulk.mkdir()
    para = " ".join(f"Clause {i} of the procurement rules covers vendor tier {i % 7} and its review." for i in range(20))
    for i in range(N_BULK):  # seconds of parsing and embedding: long enough to be killed mid-run
        (bulk / f"memo-{i:03d}.md").write_bytes(md(f"Memo {i}", f"Memo {i} names the larkspur{i} budget.", para))
    port = free_port()
    env = {**os.environ, "LORE_SERVER__INGEST_ROOTS": json.dumps([str(root)]), "LORE_SERVER__AUTH": "keys"}
    proc = subprocess.Popen([LORE, "serve", "--port", str(port), "--data-dir", str(s.data_dir)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, "lore serve did not start"
                try:
                    c.get("/healthz")
                    break
                except httpx.ConnectError:
                    time.sleep(0.2)
            r = c.post("/v1/ingest", json={"paths": ["bulk"]})
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            while (seen := c.get(f"/v1/jobs/{job_id}").json())["status"] == "queued":
                time.sleep(0.02)
            assert seen["status"] == "running", seen
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    with jobs_db(s) as db:
        assert db.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone() == ("running",)
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # embedded Chroma: another process wrote since
    with LiveServer(settings()) as srv, srv.client(key) as c:
        job = c.get(f"/v1/jobs/{job_id}").json()
        listed = c.get("/v1/jobs").json()["jobs"]
        rerun = wait_job(c, c.post("/v1/ingest", json={"paths": ["bulk"]}).json()["job_id"])
    assert job["status"] == "interrupted" and listed[0]["job_id"] == job_id and listed[0]["status"] == "interrupted"
    assert "crash-safe" in job["error"] and "start it again" in job["error"] and job["finished_at"], job
    assert job["report"] is None and job["paths"] == [str(bulk)] and job["started_at"]
    assert rerun["status"] == "succeeded" and rerun["report"]["failed"] == [], rerun
    assert rerun["report"]["added"] + rerun["report"]["unchanged"] == N_BULK and rerun["report"]["added"] > 0


def test_only_jobs_of_a_service_that_is_gone_are_interrupted(site):
    """Records left queued or running: a dead owner's become interrupted, a live owner's (its lock held) stay."""
    from filelock import FileLock

    from tests.support.live import LiveServer

    _, _, settings = site
    key = admin_key(settings())
    with LiveServer(settings()) as srv, srv.client(key) as c:
        done = wait_job(c, c.post("/v1/ingest", json={"paths": ["handbook"]}).json()["job_id"])
    assert done["status"] == "succeeded"
    dead, alive = "d" * 32, "a" * 32
    owners = Path(settings().data_dir) / "job-owners"
    (owners / f"{dead}.lock").write_text("")  # left behind by a killed service: nobody holds it
    live_lock = FileLock(str(owners / f"{alive}.lock"), thread_local=False)
    live_lock.acquire(timeout=0)  # another service on this data dir, still running its job
    with jobs_db(settings()) as db:
        row = db.execute("SELECT * FROM jobs WHERE id=?", (done["job_id"],)).fetchone()
        cols = [d[0] for d in db.execute("SELECT * FROM jobs").description]
        for job_id, owner, status in (("q" * 32, dead, "queued"), ("r" * 32, dead, "running"),
                                      ("l" * 32, alive, "running")):
            rec = dict(zip(cols, row), seq=None, id=job_id, owner=owner, status=status, report=None,
                       finished_at=None)
            db.execute(f"INSERT INTO jobs ({', '.join(rec)}) VALUES ({', '.join('?' * len(rec))})", tuple(rec.values()))
    try:
        with LiveServer(settings()) as srv, srv.client(key) as c:
            got = {j["job_id"]: j for j in c.get("/v1/jobs").json()["jobs"]}
    finally:
        live_lock.release()
    assert got["q" * 32]["status"] == got["r" * 32]["status"] == "interrupted"
    assert "crash-safe" in got["q" * 32]["error"] and got["r" * 32]["finished_at"]
    assert got["l" * 32]["status"] == "running" and got["l" * 32]["error"] is None
    assert got[done["job_id"]] == done
    assert not (owners / f"{dead}.lock").exists()


def test_only_the_latest_jobs_are_kept(site, monkeypatch):
    import ingest.jobs
    from tests.support.live import LiveServer

    _, _, settings = site
    monkeypatch.setattr(ingest.jobs, "MAX_JOBS", 3)
    key = admin_key(settings())
    with LiveServer(settings()) as srv, srv.client(key) as c:
        ids = [wait_job(c, c.post("/v1/ingest", json={"paths": ["handbook"]}).json()["job_id"])["job_id"]
               for _ in range(4)]
    with LiveServer(settings()) as srv, srv.client(key) as c:
        listed = [j["job_id"] for j in c.get("/v1/jobs").json()["jobs"]]
        first = c.get(f"/v1/jobs/{ids[0]}")
    assert listed == ids[:0:-1]
    assert first.status_code == 404 and "GET /v1/jobs" in first.json()["error"]["message"]
    with jobs_db(settings()) as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (3,)


def test_a_damaged_job_log_refuses_job_routes_only(site):
    from tests.support.live import LiveServer

    _, _, settings = site
    key = admin_key(settings())
    (Path(settings().data_dir) / "jobs.db").write_bytes(b"not a database, " * 512)
    with LiveServer(settings()) as srv, srv.client(key) as c:
        jobs, start = c.get("/v1/jobs"), c.post("/v1/ingest", json={"paths": ["handbook"]})
        docs = c.get("/v1/documents")
    assert jobs.status_code == start.status_code == 503 and jobs.json()["error"]["code"] == "store_unavailable"
    assert "jobs.db" in jobs.json()["error"]["message"] and "aside" in jobs.json()["error"]["message"]
    assert docs.status_code == 200  # reading documents does not need the job log


# -- the walk stays inside the roots ------------------------------------------------------------------

@pytest.fixture()
def tree(tmp_path):
    """root/ holds a file, a sub folder, links to a file and a folder outside, and a link to another folder."""
    root, other, outside = tmp_path / "root", tmp_path / "other", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    other.mkdir()
    outside.mkdir()
    (root / "a.md").write_bytes(md("A", "alpha"))
    (root / "sub" / "b.md").write_bytes(md("B", "beta"))
    (other / "c.md").write_bytes(md("C", "gamma"))
    (outside / "secret.md").write_bytes(md("Secret", "The zanzibarite launch code is 1234."))
    (root / "sneaky.md").symlink_to(outside / "secret.md")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "to-other").symlink_to(other, target_is_directory=True)
    return root, other, outside


def test_discover_confined_skips_links_out_of_the_roots(tree):
    from ingest.discover import discover

    root, other, outside = tree
    free = discover([root])
    confined = discover([root], confine=[root])
    both = discover([root], confine=[root, other])
    link_arg = discover([root / "sneaky.md", root / "out", root / "a.md"], confine=[str(root)])
    names = lambda d: sorted(c.path.relative_to(root).as_posix() for c in d.candidates)  # noqa: E731
    fails = lambda d: {Path(f.path).name: f.reason for f in d.failures}  # noqa: E731
    assert "sneaky.md" in names(free) and "out/secret.md" not in names(free)  # deduplicated by real path
    assert any(c.path.resolve() == outside / "secret.md" for c in free.candidates)  # today: followed out
    assert names(confined) == ["a.md", "sub/b.md"] and confined.roots == (root,)
    assert set(fails(confined)) == {"sneaky.md", "out", "to-other"}
    assert all(OUTSIDE in why for why in fails(confined).values())
    assert str(root / "out") in {f.path for f in confined.failures}  # the path as found, not its target
    assert names(both) == ["a.md", "sub/b.md", "to-other/c.md"] and set(fails(both)) == {"sneaky.md", "out"}
    assert [c.path.name for c in link_arg.candidates] == ["a.md"] and set(fails(link_arg)) == {"sneaky.md", "out"}
    assert link_arg.roots == ()  # an argument that leads out is not walked, so nothing under it is removed


def test_ingestor_confined_does_not_follow_a_link_made_after_the_check(tree, make_ingestor):
    """The race: the paths pass the check, then a link appears inside the root before the walk."""
    from ingest.uploads import _no_escapes

    root, _, outside = tree
    for name in ("sneaky.md", "out", "to-other"):
        (root / name).unlink()
    _no_escapes([str(root)], [], [root])  # what POST /v1/ingest checks before the job starts: passes
    (root / "sub" / "late.md").symlink_to(outside / "secret.md")  # made after the check
    (root / "late-dir").symlink_to(outside, target_is_directory=True)
    ing = make_ingestor()
    report = ing.ingest([root], confine=[root])
    uris = sorted(Path(d.uri).relative_to(root).as_posix() for d in ing.store.documents())
    failed = {Path(f["path"]).name: f["error"] for f in report.failed}
    assert uris == ["a.md", "sub/b.md"] and report.added == 2
    assert set(failed) == {"late.md", "late-dir"} and all(OUTSIDE in e for e in failed.values())
    assert not any("zanzibarite" in c.text for d in ing.store.documents() for c in ing.store.chunks(d.id))
    unconfined = ing.ingest([root])  # the CLI's default: links are followed wherever they lead
    assert unconfined.added == 1 and unconfined.unchanged == 2 and unconfined.failed == []


def test_ingest_job_skips_a_link_made_after_the_request_was_accepted(site, monkeypatch):
    """Over HTTP: the job is held just before its walk while the link is made, then let go."""
    from ingest.pipeline import Ingestor
    from tests.support.live import LiveServer

    root, outside, settings = site
    gate, reached = threading.Event(), threading.Event()
    original = Ingestor.reconcile

    def held(self):  # runs in the job's thread just before discovery
        reached.set()
        assert gate.wait(60)
        return original(self)

    key = admin_key(settings())
    with LiveServer(settings()) as srv, srv.client(key) as c:
        monkeypatch.setattr(Ingestor, "reconcile", held)
        r = c.post("/v1/ingest", json={"paths": ["handbook"]})
        assert r.status_code == 202, r.text
        assert reached.wait(60)
        (root / "handbook" / "secret.md").symlink_to(outside / "secret.md")
        (root / "handbook" / "vault").symlink_to(outside, target_is_directory=True)
        gate.set()
        job = wait_job(c, r.json()["job_id"])
        monkeypatch.undo()
        hits = search(c, "zanzibarite")
        refused = c.post("/v1/ingest", json={"paths": ["handbook"]})  # now the check itself sees the links
    failed = {Path(f["path"]).name: f["error"] for f in job["report"]["failed"]}
    assert job["status"] == "succeeded" and job["report"]["added"] == 2, job
    assert set(failed) == {"secret.md", "vault"} and all(OUTSIDE in e for e in failed.values())
    assert hits == []
    assert refused.status_code == 400 and "links outside" in refused.json()["error"]["message"]


def test_a_file_swapped_for_a_link_after_the_walk_is_not_read(tmp_path, make_ingestor):
    """The read re-checks the confinement: a file replaced by a link out of the roots between the walk and
    the read is refused, not ingested."""
    import ingest.sources.files as pipeline  # the files source walks and reads for the ingest

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nThe vault code is 4711.\n")
    doc = root / "note.md"
    doc.write_text("# Note\n\nA harmless note.\n")
    real_discover = pipeline.discover

    def discover_then_swap(*a, **kw):
        found = real_discover(*a, **kw)
        doc.unlink()
        doc.symlink_to(outside / "secret.md")
        return found

    ing = make_ingestor(tmp_path / "kb")
    pipeline.discover = discover_then_swap
    try:
        report = ing.ingest([root], confine=[root])
    finally:
        pipeline.discover = real_discover
    assert report.added == 0 and [f["path"] for f in report.failed] == [str(doc)]
    assert "outside the allowed folders" in report.failed[0]["error"]
    assert not any("4711" in c.text for d in ing.store.documents() for c in ing.store.chunks(d.id))
