"""H2: an ingest never widens who may read a document by omission (CLI, Python and HTTP paths)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import LORE, REPO

SECRET = "The quartzmoth salary band for level 7 is 181,000 EUR."


def _kb(root: Path) -> Path:
    hr = root / "src" / "hr"
    hr.mkdir(parents=True)
    (hr / "salaries.md").write_text(f"# Salaries\n\n{SECRET}\n")
    (hr / "reviews.md").write_text("# Reviews\n\nPerformance reviews use the quartzmoth rubric twice a year.\n")
    (root / "src" / "public.md").write_text("# Holidays\n\nThe office closes on the quartzmoth festival day.\n")
    return root / "src"


def _readers(ingestor) -> dict[str, tuple[str, ...]]:
    return {Path(d.uri).name: d.acl for d in ingestor.store.documents()}


def _vector_acls(ingestor) -> set[tuple[str, ...]]:
    ids = sorted(ingestor.vectors.ids())
    return {tuple(m["acl"]) for _, m in ingestor.vectors.get(ids).values() if "hr" in m["uri"]}


def test_reingest_without_acl_keeps_readers(tmp_path, make_ingestor):
    kb = _kb(tmp_path)
    ing = make_ingestor()
    first = ing.ingest([kb / "hr"], acl=["group:hr"])
    assert first.added == 2 and first.acl_changed == []
    again = ing.ingest([kb / "hr"])  # the flag left out: nothing about the documents changed
    parent = ing.ingest([kb])  # the parent folder, also without a flag
    assert (again.unchanged, again.updated, again.acl_changed) == (2, 0, [])
    assert (parent.added, parent.unchanged, parent.updated, parent.acl_changed, parent.failed) == (1, 2, 0, [], [])
    acl = _readers(ing)
    assert acl["salaries.md"] == acl["reviews.md"] == ("group:hr",) and acl["public.md"] == ()
    assert _vector_acls(ing) == {("group:hr",)}


def test_edited_file_without_acl_keeps_readers(tmp_path, make_ingestor):
    kb = _kb(tmp_path)
    ing = make_ingestor()
    ing.ingest([kb / "hr"], acl=["group:hr"])
    (kb / "hr" / "salaries.md").write_text(f"# Salaries\n\n{SECRET} Reviewed yearly.\n")
    rep = ing.ingest([kb])
    assert rep.updated == 1 and rep.acl_changed == []
    assert _readers(ing)["salaries.md"] == ("group:hr",) and _vector_acls(ing) == {("group:hr",)}


def test_changed_readers_are_explicit_and_reported(tmp_path, make_ingestor):
    kb = _kb(tmp_path)
    ing = make_ingestor()
    ing.ingest([kb / "hr"], acl=["group:hr"])
    rep = ing.ingest([kb / "hr"], acl=["group:hr", "user:ana"])  # a flag is an explicit act
    assert rep.updated == 2 and sorted(c["path"] for c in rep.acl_changed) == sorted(
        str(kb / "hr" / n) for n in ("reviews.md", "salaries.md"))
    assert all(c["from"] == ["group:hr"] and c["to"] == ["group:hr", "user:ana"] for c in rep.acl_changed)
    assert _vector_acls(ing) == {("group:hr", "user:ana")}
    # the document's own front matter is the other explicit act
    (kb / "hr" / "reviews.md").write_text("---\nacl: [group:managers]\n---\n# Reviews\n\nThe quartzmoth rubric.\n")
    rep = ing.ingest([kb / "hr"])
    assert [(Path(c["path"]).name, c["to"]) for c in rep.acl_changed] == [("reviews.md", ["group:managers"])]
    assert _readers(ing)["salaries.md"] == ("group:hr", "user:ana")


def test_removing_front_matter_acl_does_not_widen(tmp_path, make_ingestor):
    kb = tmp_path / "src"
    kb.mkdir()
    doc = kb / "plan.md"
    doc.write_text("---\nacl: group:exec\n---\n# Plan\n\nThe quartzmoth merger closes in May.\n")
    ing = make_ingestor()
    ing.ingest([kb])
    doc.write_text("# Plan\n\nThe quartzmoth merger closes in June.\n")
    rep = ing.ingest([kb])
    assert rep.updated == 1 and rep.acl_changed == [] and _readers(ing)["plan.md"] == ("group:exec",)


@pytest.mark.parametrize("value", ["[]", '""', "' , '"])
def test_empty_front_matter_acl_is_refused(tmp_path, make_ingestor, value):
    kb = tmp_path / "src"
    kb.mkdir()
    (kb / "a.md").write_text(f"---\nacl: {value}\n---\n# A\n\nQuartzmoth.\n")
    (kb / "b.md").write_text("# B\n\nQuartzmoth too.\n")
    rep = make_ingestor().ingest([kb])
    assert rep.added == 1 and len(rep.failed) == 1
    assert rep.failed[0]["path"] == str(kb / "a.md") and "acl" in rep.failed[0]["error"] and "empty" in rep.failed[0]["error"]


def _lore(*args: str, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LORE, *args, "--data-dir", str(data)], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_reingest_keeps_hr_documents_hidden(tmp_path):
    kb, data = _kb(tmp_path), tmp_path / "data"
    assert _lore("ingest", str(kb / "hr"), "--acl", "group:hr", data=data).returncode == 0
    again = _lore("ingest", str(kb), "--json", data=data)
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert again.returncode == 0 and summary["unchanged"] == 2 and summary["acl_changed"] == []
    hits = json.loads(_lore("search", "quartzmoth salary band", "--json", data=data).stdout.strip().splitlines()[-1])
    uris = [h["uri"] for h in (hits["hits"] if isinstance(hits, dict) else hits)]
    assert uris and not any("/hr/" in u for u in uris), uris
    changed = _lore("ingest", str(kb / "hr"), "--acl", "public", data=data)
    assert changed.returncode == 0 and changed.stderr.count("readers changed") == 2, changed.stderr


def test_http_reingest_without_acl_keeps_readers(tmp_path, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer
    from tests.support.live import wait_job

    kb = _kb(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", server={"ingest_roots": [str(kb)]})
    with LiveServer(settings) as srv:
        admin = srv.services.keys.create("root", "", "admin")[0]
        reader = srv.services.keys.create("sam", "", "reader")[0]
        with srv.client(admin) as c:
            first = wait_job(c, c.post("/v1/ingest", json={"paths": ["hr"], "acl": ["group:hr"]}).json()["job_id"])
            again = wait_job(c, c.post("/v1/ingest", json={"paths": ["."]}).json()["job_id"])
            docs = {Path(d["uri"]).name: d["acl"] for d in c.get("/v1/documents").json()["documents"]}
            widened = wait_job(c, c.post("/v1/ingest", json={"paths": ["hr"], "acl": ["group:hr", "user:ana"]}
                                         ).json()["job_id"])
        with srv.client(reader) as c:
            hits = c.post("/v1/search", json={"query": "quartzmoth salary band"}).json()["hits"]
    assert first["status"] == again["status"] == "succeeded", (first, again)
    assert again["report"]["unchanged"] == 2 and again["report"]["added"] == 1 and again["report"]["acl_changed"] == []
    assert docs["salaries.md"] == docs["reviews.md"] == ["group:hr"]
    assert hits and not any("/hr/" in h["uri"] for h in hits)
    changed = widened["report"]["acl_changed"]
    assert sorted(Path(c["path"]).name for c in changed) == ["reviews.md", "salaries.md"]
    assert all(c["from"] == ["group:hr"] and c["to"] == ["group:hr", "user:ana"] for c in changed)
