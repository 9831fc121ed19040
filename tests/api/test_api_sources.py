"""Sources over real HTTP (admin only): add, sync now, the report in GET /v1/sources, the Prometheus gauges,
the scheduler, removal; credentials never returned. A live `lore serve` app with the real model."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest

from tests.support import SAMPLES
from tests.support.fake_confluence import CLOUD_TOKEN, FakeConfluence
from tests.support.gitrepo import Repo, date


@pytest.fixture(scope="module")
def server(tmp_path_factory, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer

    settings = Settings(data_dir=tmp_path_factory.mktemp("sources") / "data", sources={"tokens": {"eng-wiki": CLOUD_TOKEN}, "schedule": False})
    with LiveServer(settings) as srv:
        keys = srv.services.keys
        srv.keys = {"reader": keys.create("sam", "", "reader")[0], "admin": keys.create("root", "", "admin")[0]}
        yield srv


def wait(c: httpx.Client, name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = c.get(f"/v1/sources/{name}").json()
        if got["status"] not in ("running", "never synced") or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_git_and_confluence_sources_sync_over_the_api(server, tmp_path):
    repo = Repo(tmp_path / "handbook")
    shutil.copytree(SAMPLES / "specs", repo.path / "specs")
    repo.commit(date(1))
    wiki = FakeConfluence("cloud")
    wiki.add_user("557058:ana-0001", ["engineering"])
    wiki.add_space("ENG", groups=["engineering"])
    wiki.add_page("ENG", "Deploy guide", "<h1>Freeze</h1><p>No deploys on Fridays after 15:00.</p>")
    with wiki, server.client(server.keys["admin"]) as c, server.client(server.keys["reader"]) as r:
        assert r.get("/v1/sources").status_code == 403
        assert r.post("/v1/sources", json={"name": "x", "kind": "git", "options": {"repo": "/x"}}).status_code == 403
        bad = c.post("/v1/sources", json={"name": "h", "kind": "git", "options": {}})
        assert bad.status_code == 400 and "options.repo" in bad.json()["error"]["message"]
        ok = c.post("/v1/sources", json={"name": "handbook", "kind": "git", "options": {"repo": str(repo.path)},
                                         "acl": ["group:eng"], "owners": ["group:platform"]})
        assert ok.status_code == 201 and ok.json()["status"] == "never synced", ok.text
        assert c.post("/v1/sources", json={"name": "eng-wiki", "kind": "confluence", "options": {
            "base_url": wiki.url, "spaces": ["ENG"], "email": wiki.credentials["email"]}}).status_code == 201
        started = c.post("/v1/sources/handbook/sync")
        assert started.status_code == 202 and started.headers["location"] == "/v1/sources/handbook"
        second = c.post("/v1/sources/eng-wiki/sync")  # one write at a time: 409 while handbook syncs
        hb = wait(c, "handbook")
        assert hb["status"] == "ok" and hb["last_sync"]["added"] >= 2 and hb["last_success"], hb
        if second.status_code == 409:
            assert "is syncing" in second.json()["error"]["message"]
            second = c.post("/v1/sources/eng-wiki/sync")
        assert second.status_code == 202, second.text
        wk = wait(c, "eng-wiki")
        assert wk["status"] == "ok" and wk["last_sync"]["added"] == 1, wk
        listing = c.get("/v1/sources").text
        assert CLOUD_TOKEN not in listing and json.loads(listing)["sources"][0]["name"] == "eng-wiki"
        docs = c.get("/v1/documents", params={"limit": 500}).json()["documents"]
        assert any(d["title"] == "Deploy guide" for d in docs)
        metrics = c.get("/metrics").text
        assert 'lore_source_last_success_timestamp_seconds{source="handbook"}' in metrics
        shutil.rmtree(repo.path)  # the repository vanishes: failed, shown, nothing deleted
        assert c.post("/v1/sources/handbook/sync").status_code == 202
        failed = wait(c, "handbook")
        assert failed["status"] == "failed" and "could not be listed" in failed["last_sync"]["error"]
        assert 'lore_source_sync_failures_total{source="handbook"} 1.0' in c.get("/metrics").text
        assert len(c.get("/v1/documents", params={"limit": 500}).json()["documents"]) == len(docs)
        assert c.get("/v1/sources/nope").status_code == 404
        gone = c.delete("/v1/sources/eng-wiki")
        assert gone.status_code == 200 and gone.json()["documents_removed"] == 1


def test_the_scheduler_syncs_due_sources_and_skips_the_rest(server, tmp_path):
    repo = Repo(tmp_path / "handbook")
    shutil.copytree(SAMPLES / "incidents", repo.path / "incidents")
    repo.commit(date(1))
    with server.client(server.keys["admin"]) as c:
        for name, interval in (("due", 60), ("manual", 0)):
            assert c.post("/v1/sources", json={"name": name, "kind": "git", "options": {"repo": str(repo.path)},
                                               "interval_s": interval}).status_code == 201
    syncs = server.services.syncs
    assert syncs.tick() == ["due"]  # never synced and on an interval; "manual" only on demand
    assert syncs.tick() == []  # synced a moment ago
    cfg = syncs.registry.get("due")
    assert syncs.due(cfg, now=time.time() + 61)


def test_a_files_source_added_on_the_server_is_listed_with_its_report(server, tmp_path):
    """`lore sources add --kind files` is a server-side command; GET /v1/sources must still show the source
    and its report (kind `files`, the ACL changes the sync made), and HTTP cannot add one."""
    from ingest.sources.registry import SourceConfig

    folder = tmp_path / "drive"
    folder.mkdir()
    shutil.copy(SAMPLES / "policies" / "pto-policy.md", folder)
    server.services.syncs.registry.add(SourceConfig("drive", "files", {"paths": [str(folder)]}, 0, ("group:hr",), ()))
    with server.client(server.keys["admin"]) as c:
        assert c.post("/v1/sources/drive/sync").status_code == 202
        got = wait(c, "drive")
        assert got["kind"] == "files" and got["status"] == "ok", got
        assert got["last_sync"]["added"] > 0 and got["last_sync"]["acl_changed"] == []
        assert any(s["name"] == "drive" for s in c.get("/v1/sources").json()["sources"])
        refused = c.post("/v1/sources", json={"name": "d2", "kind": "files", "options": {"paths": [str(folder)]}})
        assert refused.status_code == 422
