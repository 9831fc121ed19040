"""`lore sources`: add, list, sync, status, show, rm over a real Git repository and the Confluence fake;
failures are reports with exit code 6, never a silent success, and secrets never show."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from api.cli import app
from tests.support import SAMPLES
from tests.support.fake_confluence import CLOUD_TOKEN, FakeConfluence
from tests.support.gitrepo import Repo, date

run = CliRunner().invoke


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_git_source_from_add_to_rm(tmp_path):
    repo = Repo(tmp_path / "handbook")
    shutil.copytree(SAMPLES / "policies", repo.path / "policies")
    repo.commit(date(1))
    d = ["--data-dir", str(tmp_path / "kb")]
    added = run(app, ["sources", "add", "handbook", "--kind", "git", "--repo", str(repo.path), "--acl", "group:staff",
                      "--owner", "group:people-ops", "--interval", "600", *d, "--json"])
    assert added.exit_code == 0, added.output
    assert last_json(added)["options"]["repo"] == str(repo.path)
    synced = run(app, ["sources", "sync", "handbook", *d, "--json"])
    assert synced.exit_code == 0, synced.output
    rep = last_json(synced)["reports"][0]
    assert rep["status"] == "ok" and rep["added"] == rep["listed"] >= 3
    docs = last_json(run(app, ["docs", *d, "--json"]))
    assert docs  # the synced documents are in the knowledge base
    status = last_json(run(app, ["sources", "status", *d, "--json"]))["sources"][0]
    assert status["status"] == "ok" and status["last_success"]
    listed = last_json(run(app, ["sources", "list", *d, "--json"]))["sources"]
    assert [s["name"] for s in listed] == ["handbook"] and listed[0]["interval_s"] == 600
    shutil.rmtree(repo.path)  # the repository vanishes: the sync fails loudly and deletes nothing
    failed = run(app, ["sources", "sync", *d, "--json"])
    assert failed.exit_code == 6 and last_json(failed)["reports"][0]["status"] == "failed"
    assert "could not be listed" in failed.output
    shown = last_json(run(app, ["sources", "show", "handbook", *d, "--json"]))
    assert [r["status"] for r in shown["runs"]] == ["failed", "ok"]
    removed = run(app, ["sources", "rm", "handbook", *d, "--json"])
    assert removed.exit_code == 0 and last_json(removed)["documents_removed"] == rep["added"]


def test_bad_input_names_the_option_and_a_missing_token_names_the_setting(tmp_path, monkeypatch):
    d = ["--data-dir", str(tmp_path / "kb")]
    bad = run(app, ["sources", "add", "Bad Name", "--kind", "git", "--repo", "/x", *d])
    assert bad.exit_code == 2 and "source name" in bad.output
    no_repo = run(app, ["sources", "add", "h", "--kind", "git", *d])
    assert no_repo.exit_code == 2 and "--repo" in no_repo.output
    assert run(app, ["sources", "sync", "nope", *d]).exit_code == 2
    wiki = FakeConfluence("cloud")
    wiki.add_space("ENG", groups=["engineering"])
    wiki.add_page("ENG", "Home", "<p>Hi</p>")
    with wiki:
        ok = run(app, ["sources", "add", "eng-wiki", "--kind", "confluence", "--url", wiki.url, "--space", "ENG",
                       "--email", wiki.credentials["email"], *d])
        assert ok.exit_code == 0, ok.output
        missing = run(app, ["sources", "sync", "eng-wiki", *d, "--json"])
        assert missing.exit_code == 6 and "LORE_SOURCES__TOKENS" in missing.output
        monkeypatch.setenv("LORE_SOURCES__TOKENS", json.dumps({"eng-wiki": CLOUD_TOKEN}))
        good = run(app, ["sources", "sync", "eng-wiki", *d, "--json"])
        assert good.exit_code == 0 and last_json(good)["reports"][0]["added"] == 1, good.output
        shown = run(app, ["sources", "show", "eng-wiki", *d, "--json"])
        assert CLOUD_TOKEN not in shown.output and CLOUD_TOKEN not in good.output
