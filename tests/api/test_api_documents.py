"""Documents, passages, uploads, deletions and ingest jobs over real HTTP, with the real model."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from ingest.uploads import check_type, safe_filename
from ingest.errors import UnsupportedFormat

from tests.support import SAMPLES
from tests.support.live import wait_job

PDF = SAMPLES / "policies" / "remote-work-policy.pdf"


def md(title: str, *paragraphs: str) -> bytes:
    return ("# " + title + "\n\n" + "\n\n".join(paragraphs) + "\n").encode()


def upload(c: httpx.Client, name: str, content: bytes, **form) -> httpx.Response:
    return c.post("/v1/documents", files={"file": (name, content, "application/octet-stream")}, data=form)


def search(c: httpx.Client, query: str) -> list[dict]:
    r = c.post("/v1/search", json={"query": query, "mode": "keyword", "top_k": 20})
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def passage(c: httpx.Client, chunk_id: str) -> httpx.Response:
    return c.get(f"/v1/passages/{quote(chunk_id, safe='')}")  # chunk ids hold '#'


def leftovers(srv) -> list[str]:
    d = Path(srv.settings.data_dir) / "uploads"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture(scope="module")
def writer(tmp_path_factory, onnx_cache):
    """An empty knowledge base of its own, with one ingest root, a 1 MiB upload limit and its own keys."""
    from api.settings import Settings
    from tests.support.live import LiveServer

    base = tmp_path_factory.mktemp("writer")
    root = base / "root"
    (root / "handbook").mkdir(parents=True)
    (root / "handbook" / "travel.md").write_bytes(md("Travel", "Book trains through the quillfeather portal."))
    (root / "handbook" / "laptops.md").write_bytes(md("Laptops", "Laptops are refreshed every marrowlight cycle."))
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.md").write_bytes(md("Secret", "The zanzibarite launch code is 1234."))
    settings = Settings(data_dir=base / "data", server={"ingest_roots": [str(root)], "max_upload_mb": 1})
    with LiveServer(settings) as srv:
        keys = srv.services.keys
        srv.keys = {"reader": keys.create("sam", "", "reader")[0], "admin": keys.create("root", "", "admin")[0]}
        srv.base, srv.root, srv.outside = base, root, outside
        yield srv


# -- reading: the shared sample knowledge base ----------------------------------------------------

def _ids(c: httpx.Client, **params) -> dict[str, dict]:
    r = c.get("/v1/documents", params=params)
    assert r.status_code == 200, r.text
    return {Path(d["uri"]).name: d for d in r.json()["documents"]}


def test_list_documents_under_permissions(api_env):
    with api_env.client(api_env.keys["reader"]) as c:
        sam = _ids(c)
        page = c.get("/v1/documents", params={"limit": 2, "offset": 1}).json()
        policies = _ids(c, doc_type="policy")
        titled = _ids(c, q="pto")
    with api_env.client(api_env.keys["hr"]) as c:
        ana = _ids(c)
    with api_env.client(api_env.keys["admin"]) as c:
        root = _ids(c)
    assert "compensation-bands.md" not in sam and "compensation-bands.md" in ana
    assert len(ana) == len(sam) + 1 == 10
    pto = sam["pto-policy.md"]
    assert pto["acl"] is None and pto["chunk_count"] > 0 and pto["size"] > 0 and len(pto["version"]) == 64
    assert not pto["uploaded"] and pto["doc_type"] == "policy" and pto["updated_at"].startswith("2026-03-01")
    assert root["compensation-bands.md"]["acl"] == ["group:hr"] and root["pto-policy.md"]["acl"] == []
    assert page["total"] == 9 and page["limit"] == 2 and page["offset"] == 1 and len(page["documents"]) == 2
    assert {d["doc_type"] for d in policies.values()} == {"policy"} and "pto-policy.md" in policies
    assert list(titled) == ["pto-policy.md"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"doc_type": "memo"},
                                    {"q": "x" * 201}])
def test_list_documents_bad_query_is_422(api_env, params):
    with api_env.client(api_env.keys["reader"]) as c:
        r = c.get("/v1/documents", params=params)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_document_detail_lists_its_chunks(api_env):
    with api_env.client(api_env.keys["reader"]) as c:
        doc_id = _ids(c)["remote-work-policy.pdf"]["id"]
        d = c.get(f"/v1/documents/{doc_id}").json()
    assert d["id"] == doc_id and d["title"] == "Remote Work Policy" and len(d["chunks"]) == d["chunk_count"]
    assert [x["ordinal"] for x in d["chunks"]] == sorted(x["ordinal"] for x in d["chunks"])
    first = d["chunks"][0]
    assert set(first) == {"chunk_id", "ordinal", "section", "page_start", "page_end", "start", "end", "token_count"}
    assert first["page_start"] >= 1 and first["end"] > first["start"] and first["section"]


def test_unreadable_is_the_same_404_as_absent(api_env):
    with api_env.client(api_env.keys["hr"]) as c:
        comp = _ids(c)["compensation-bands.md"]["id"]
        chunk = c.get(f"/v1/documents/{comp}").json()["chunks"][0]["chunk_id"]
        assert passage(c, chunk).status_code == 200
    with api_env.client(api_env.keys["reader"]) as c:
        hidden_doc, absent_doc = c.get(f"/v1/documents/{comp}"), c.get("/v1/documents/no-such-doc-0000")
        hidden_psg, absent_psg = passage(c, chunk), c.get("/v1/passages/no-such-chunk")
        odd = [c.get(p) for p in ("/v1/documents/%2e%2e", "/v1/passages/%2e%2e%2f%2e%2e", "/v1/documents/..%00")]
    assert hidden_doc.status_code == absent_doc.status_code == 404
    assert hidden_doc.content == absent_doc.content and hidden_doc.json()["error"]["code"] == "not_found"
    assert hidden_psg.status_code == absent_psg.status_code == 404 and hidden_psg.content == absent_psg.content
    assert all(r.status_code == 404 for r in odd)


def test_passage_shows_where_a_citation_quote_sits(api_env):
    with api_env.client(api_env.keys["reader"]) as c:
        a = c.post("/v1/ask", json={"question": "How many PTO hours can I carry over into next year?"}).json()
        assert a["citations"]
        for cit in a["citations"]:
            p = passage(c, cit["chunk_id"]).json()
            ctx = p["context"]
            assert ctx["start"] <= p["start"] < p["end"] <= ctx["end"] and len(ctx["text"]) == ctx["end"] - ctx["start"]
            assert ctx["text"][p["start"] - ctx["start"]:p["end"] - ctx["start"]] == p["text"]
            assert ctx["text"][cit["start"] - ctx["start"]:cit["end"] - ctx["start"]] == cit["quote"]
            assert p["doc_id"] == cit["doc_id"] and p["version"] == cit["version"] and p["section"] == cit["section"]
            chunks = c.get(f"/v1/documents/{p['doc_id']}").json()["chunks"]
            ids = [x["chunk_id"] for x in chunks]
            i = ids.index(p["chunk_id"])
            assert p["previous_chunk_id"] == (ids[i - 1] if i else None)
            assert p["next_chunk_id"] == (ids[i + 1] if i + 1 < len(ids) else None)
            same = [x for x in chunks if x["section"] == p["section"]]
            assert ctx["start"] >= min(x["start"] for x in same) and ctx["end"] <= max(x["end"] for x in same)


def test_no_ingest_roots_means_no_ingest(api_env):
    with api_env.client(api_env.keys["admin"]) as c:
        r = c.post("/v1/ingest", json={"paths": [str(SAMPLES)]})
    assert r.status_code == 400 and "LORE_SERVER__INGEST_ROOTS" in r.json()["error"]["message"]


# -- writing: a knowledge base of its own -----------------------------------------------------------

def test_upload_markdown_text_and_pdf(writer):
    with writer.client(writer.keys["admin"]) as c:
        m = upload(c, "onboarding.md", md("Onboarding", "New hires receive a brindleworth badge on day one."),
                   doc_type="policy")
        t = upload(c, "notes.txt", b"Quarterly notes\n\nThe vexillary audit closes on Friday.\n")
        p = upload(c, "remote.pdf", PDF.read_bytes())
        hits = search(c, "brindleworth")
        pdf = c.get(f"/v1/documents/{p.json()['document']['id']}").json()
    assert m.status_code == t.status_code == p.status_code == 201, (m.text, t.text, p.text)
    doc = m.json()["document"]
    assert m.json()["report"]["added"] == 1 and doc["doc_type"] == "policy" and doc["uploaded"] and doc["acl"] == []
    assert Path(doc["uri"]) == Path(writer.settings.data_dir).absolute() / "uploads" / "onboarding.md"
    assert hits and {h["doc_id"] for h in hits} == {doc["id"]}
    assert pdf["title"] == "Remote Work Policy" and pdf["chunks"][0]["page_start"] == 1
    assert {"onboarding.md", "notes.txt", "remote.pdf"} <= set(leftovers(writer))
    assert not [n for n in leftovers(writer) if n.startswith(".")]


def test_reupload_replaces_the_previous_version(writer):
    with writer.client(writer.keys["admin"]) as c:
        v1 = upload(c, "handover.md", md("Handover", "Shifts hand over at the gallowglass desk."))
        same = upload(c, "handover.md", md("Handover", "Shifts hand over at the gallowglass desk."))
        v2 = upload(c, "handover.md", md("Handover", "Shifts hand over at the pennywhistle desk."))
        old, new = search(c, "gallowglass"), search(c, "pennywhistle")
        listed = [d for d in c.get("/v1/documents", params={"q": "handover"}).json()["documents"]]
    assert v1.status_code == same.status_code == v2.status_code == 201
    assert same.json()["report"]["unchanged"] == 1 and v2.json()["report"]["updated"] == 1
    doc = v2.json()["document"]
    assert doc["id"] == v1.json()["document"]["id"] and doc["version"] != v1.json()["document"]["version"]
    assert old == [] and [h["doc_id"] for h in new] == [doc["id"]] and len(listed) == 1


def test_upload_acl_is_enforced(writer):
    with writer.client(writer.keys["admin"]) as c:
        r = upload(c, "legal-hold.md", md("Legal hold", "The thimbleroot matter is under legal hold."),
                   acl="group:legal, user:lee")
        bad = upload(c, "bad-acl.md", md("Bad", "text"), acl="everyone")
        chunk = c.get(f"/v1/documents/{r.json()['document']['id']}").json()["chunks"][0]["chunk_id"]
    with writer.client(writer.keys["reader"]) as c:
        seen = [d["title"] for d in c.get("/v1/documents").json()["documents"]]
        hits = search(c, "thimbleroot")
        hidden = passage(c, chunk)
    assert r.status_code == 201 and r.json()["document"]["acl"] == ["group:legal", "user:lee"]
    assert "Legal hold" not in seen and hits == [] and hidden.status_code == 404
    assert bad.status_code == 400 and "everyone" in bad.json()["error"]["message"]
    assert "bad-acl.md" not in leftovers(writer)


@pytest.mark.parametrize("name,content", [
    ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00"),
    ("fake.pdf", b"# Not a PDF\n\njust markdown pretending\n"),
    ("fake.docx", b"plain text, not a zip"),
    ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    ("binary.txt", b"text with a \x00 NUL byte"),
    ("noext", b"hello"),
])
def test_wrong_types_are_415(writer, name, content):
    with writer.client(writer.keys["admin"]) as c:
        r = upload(c, name, content)
    assert r.status_code == 415, r.text
    err = r.json()["error"]
    assert err["code"] == "unsupported_type" and ".md" in err["message"] and ".pdf" in err["message"]
    assert name not in leftovers(writer) and not [n for n in leftovers(writer) if n.startswith(".")]


@pytest.mark.parametrize("raw,stored", [
    ("../../escape.md", "escape.md"), ("/etc/passwd.md", "passwd.md"), ("..\\..\\win.md", "win.md"),
    ("%2e%2e%2fpct.md", "_2e_2e_2fpct.md"), ("...hidden.md", "hidden.md"),
])
def test_upload_names_are_sanitized(writer, raw, stored):
    with writer.client(writer.keys["admin"]) as c:
        r = upload(c, raw, md("Sanitized " + stored, "The ossifrage rule applies."))
    assert r.status_code == 201, r.text
    uploads = Path(writer.settings.data_dir).absolute() / "uploads"
    assert Path(r.json()["document"]["uri"]) == uploads / stored and (uploads / stored).is_file()
    assert not (writer.base / "escape.md").exists() and not (Path(writer.settings.data_dir) / "escape.md").exists()


def test_safe_filename_and_sniffing_rules():
    assert safe_filename("a\x00b\x1b[31m\u202e.md") == "ab_31m.md"
    assert safe_filename("x" * 300 + ".md") == "x" * 117 + ".md"
    assert safe_filename("Política de viagens.md") == "Política de viagens.md"
    for bad in ("", "..", ".md", "../", "a.md/..", "archive.tar.gz"):
        with pytest.raises(UnsupportedFormat):
            safe_filename(bad)
    check_type("ok.docx", (SAMPLES / "policies" / "information-security-policy.docx").read_bytes())
    with pytest.raises(UnsupportedFormat):
        check_type("deck.pptx", (SAMPLES / "policies" / "information-security-policy.docx").read_bytes())


def test_too_big_upload_is_413_and_stores_nothing(writer):
    with writer.client(writer.keys["admin"]) as c:
        r = upload(c, "huge.md", b"# Huge\n\n" + b"word " * 300_000)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert "huge.md" not in leftovers(writer)


@pytest.mark.parametrize("name,content", [("empty.md", b""), ("blank.txt", b"  \n\n "),
                                          ("corrupt.pdf", b"%PDF-1.7\n garbage, no objects, no xref"),
                                          ("frontmatter-only.md", b"---\ntitle: x\n---\n")])
def test_unparseable_upload_is_422_and_leaves_nothing(writer, name, content):
    with writer.client(writer.keys["admin"]) as c:
        before = {d["id"] for d in c.get("/v1/documents").json()["documents"]}
        r = upload(c, name, content)
        after = {d["id"] for d in c.get("/v1/documents").json()["documents"]}
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "unprocessable_document" and name in r.json()["error"]["message"]
    assert before == after and name not in leftovers(writer)
    assert not [n for n in leftovers(writer) if n.startswith(".")]


def test_failed_reupload_keeps_the_previous_version(writer):
    good = md("Keeper", "The larkspur protocol stays in force.")
    with writer.client(writer.keys["admin"]) as c:
        first = upload(c, "keeper.md", good)
        broken = upload(c, "keeper.md", b"")
        hits = search(c, "larkspur")
    assert first.status_code == 201 and broken.status_code == 422
    assert [h["doc_id"] for h in hits] == [first.json()["document"]["id"]]
    assert (Path(writer.settings.data_dir) / "uploads" / "keeper.md").read_bytes() == good


def test_delete_removes_it_from_search_and_answers(writer):
    with writer.client(writer.keys["admin"]) as c:
        doc = upload(c, "ferry.md", md("Ferry schedule", "The cormorant ferry leaves at 07:15 every weekday.")).json()
        doc_id = doc["document"]["id"]
        assert search(c, "cormorant ferry")
        r = c.delete(f"/v1/documents/{doc_id}")
        again = c.delete(f"/v1/documents/{doc_id}")
        hits = c.post("/v1/search", json={"query": "cormorant ferry leaves", "top_k": 20}).json()["hits"]
        ans = c.post("/v1/ask", json={"question": "When does the cormorant ferry leave?"}).json()
        got = c.get(f"/v1/documents/{doc_id}")
    assert r.status_code == 200 and r.json() == {"deleted": doc_id, "title": "Ferry schedule"}
    assert again.status_code == 404 and got.status_code == 404
    assert doc_id not in {h["doc_id"] for h in hits}
    assert doc_id not in {x["doc_id"] for x in ans["hits"] + ans["citations"]}
    assert "ferry.md" not in leftovers(writer)


def test_long_section_context_is_capped_and_stays_in_its_section(writer):
    paras = [f"Paragraph {i} of the retention rules: record class {i} is kept for {i + 1} years under "
             f"schedule R-{i:03d}, reviewed by the archivist, then destroyed with a certificate. " * 2
             for i in range(40)]
    text = b"# Archive\n\n## Retention\n\n" + "\n\n".join(paras).encode() + b"\n\n## Destruction\n\nShred on site.\n"
    with writer.client(writer.keys["admin"]) as c:
        doc = upload(c, "archive.md", text).json()["document"]
        chunks = c.get(f"/v1/documents/{doc['id']}").json()["chunks"]
        retention = [x for x in chunks if x["section"][-1] == "Retention"]
        mid = retention[len(retention) // 2]
        p = passage(c, mid["chunk_id"]).json()
        last = passage(c, chunks[-1]["chunk_id"]).json()
    ctx = p["context"]
    assert len(retention) > 5 and len(ctx["text"]) == 6000
    assert ctx["text"][p["start"] - ctx["start"]:p["end"] - ctx["start"]] == p["text"]
    assert abs((ctx["start"] + ctx["end"]) - (p["start"] + p["end"])) <= 2  # centred
    assert "Shred on site" not in ctx["text"]
    assert last["section"][-1] == "Destruction" and "Paragraph" not in last["context"]["text"]


def test_ingest_job_runs_with_progress_and_report(writer):
    with writer.client(writer.keys["admin"]) as c:
        r = c.post("/v1/ingest", json={"paths": ["handbook"], "acl": ["public"]})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"])
        listed = c.get("/v1/jobs").json()["jobs"]
        hits = search(c, "quillfeather")
        again = c.post("/v1/ingest", json={"paths": [str(writer.root / "handbook")], "acl": ["public"]})
        rerun = wait_job(c, again.json()["job_id"])
    assert r.headers["location"] == f"/v1/jobs/{r.json()['job_id']}" and r.json()["status"] in ("queued", "running")
    assert job["status"] == "succeeded", job
    assert job["paths"] == [str(writer.root / "handbook")] and job["acl"] == ["public"]
    assert job["report"]["added"] == 2 and job["report"]["failed"] == [] and job["error"] is None
    pr = job["progress"]
    assert pr["files_total"] == pr["files_done"] == 2 and pr["chunks"] == job["report"]["chunks"] > 0
    assert job["started_at"] and job["finished_at"] and job["job_id"] in [j["job_id"] for j in listed]
    assert hits and Path(hits[0]["uri"]).name == "travel.md"
    assert rerun["status"] == "succeeded" and rerun["report"]["unchanged"] == 2 and rerun["progress"]["files_done"] == 2


def test_one_write_at_a_time(writer):
    folder = writer.root / "batch"
    folder.mkdir()
    for i in range(6):  # enough files for the parser process pool: seconds, not milliseconds
        (folder / f"memo-{i}.md").write_bytes(md(f"Memo {i}", f"Memo {i} concerns the tamarack{i} budget."))
    with writer.client(writer.keys["admin"]) as c:
        first = c.post("/v1/ingest", json={"paths": ["batch"]}).json()
        second = c.post("/v1/ingest", json={"paths": ["handbook"]})
        up = upload(c, "during.md", md("During", "written while a job runs"))
        done = wait_job(c, first["job_id"])
    assert second.status_code == 409 and first["job_id"] in second.json()["error"]["message"]
    assert up.status_code == 409 and first["job_id"] in up.json()["error"]["message"]
    assert second.json()["error"]["code"] == "busy" and "during.md" not in leftovers(writer)
    assert done["status"] == "succeeded" and done["report"]["added"] == 6 and done["progress"]["files_done"] == 6


def test_the_ingest_file_lock_is_409(writer):
    from filelock import FileLock

    lock = FileLock(str(Path(writer.settings.data_dir) / "lore.lock"))
    with lock.acquire(timeout=5):  # what a `lore ingest` in another process holds
        with writer.client(writer.keys["admin"]) as c:
            job = c.post("/v1/ingest", json={"paths": ["handbook"]})
            up = upload(c, "locked.md", md("Locked", "the file lock is held"))
    assert job.status_code == 409 and up.status_code == 409, (job.text, up.text)
    assert "locked.md" not in leftovers(writer) and not [n for n in leftovers(writer) if n.startswith(".")]


def test_ingest_paths_must_stay_inside_the_roots(writer):
    root, outside = writer.root, writer.outside
    (root / "link-out").symlink_to(outside, target_is_directory=True)
    (root / "mixed").mkdir()
    (root / "mixed" / "fine.md").write_bytes(md("Fine", "fine"))
    (root / "mixed" / "sneaky.md").symlink_to(outside / "secret.md")
    cases = {str(outside): "not inside", "/etc": "not inside", f"{root}/../outside": "..", "../outside": "..",
             "link-out": "links outside", str(root / "link-out" / "secret.md"): "links outside",
             "mixed": "sneaky.md", "%2e%2e/outside": "does not exist", "no-such-folder": "does not exist",
             "bad\x00path": "not a usable path", "": "not a usable path"}
    with writer.client(writer.keys["admin"]) as c:
        before = len(c.get("/v1/jobs").json()["jobs"])
        for path, why in cases.items():
            r = c.post("/v1/ingest", json={"paths": [path]})
            assert r.status_code == 400, (path, r.text)
            msg = r.json()["error"]["message"]
            assert why in msg, (path, msg)
            assert "LORE_SERVER__INGEST_ROOTS" in msg or why == "not a usable path", (path, msg)
        lone = c.post("/v1/ingest", content=b'{"paths": ["bad\\ud800"]}', headers={"content-type": "application/json"})
        assert lone.status_code == 400 and "not a usable path" in lone.json()["error"]["message"]
        for body in ({"paths": []}, {"paths": ["handbook"], "doc_type": "memo"}, {"paths": "handbook"},
                     {"paths": ["handbook"], "extra": 1}):
            assert c.post("/v1/ingest", json=body).status_code == 422, body
        bad_acl = c.post("/v1/ingest", json={"paths": ["handbook"], "acl": ["all"]})
        assert len(c.get("/v1/jobs").json()["jobs"]) == before
        assert search(c, "zanzibarite") == []
    assert bad_acl.status_code == 400


def test_admin_routes_refuse_readers_and_anonymous(writer):
    calls = [("POST", "/v1/ingest", {"json": {"paths": ["handbook"]}}),
             ("POST", "/v1/documents", {"files": {"file": ("x.md", b"# x\n\ny\n")}}),
             ("DELETE", "/v1/documents/anything", {}), ("GET", "/v1/jobs", {}), ("GET", "/v1/jobs/anything", {})]
    with writer.client(writer.keys["reader"]) as c:
        for method, path, kw in calls:
            r = c.request(method, path, **kw)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, r.text)
    for method, path, kw in calls + [("GET", "/v1/documents", {}), ("GET", "/v1/passages/x", {})]:
        assert httpx.request(method, writer.url + path, **kw).status_code == 401, path
    with writer.client(writer.keys["admin"]) as c:
        unknown = c.get("/v1/jobs/0123456789abcdef")
        gone = c.delete("/v1/documents/no-such-doc")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert gone.status_code == 404
    assert "x.md" not in leftovers(writer)


def test_openapi_documents_the_routes(writer):
    spec = httpx.get(writer.url + "/openapi.json").json()
    paths = spec["paths"]
    assert {"/v1/documents", "/v1/documents/{doc_id}", "/v1/passages/{chunk_id}", "/v1/ingest", "/v1/jobs",
            "/v1/jobs/{job_id}"} <= set(paths)
    assert {"201", "413", "415", "422"} <= set(paths["/v1/documents"]["post"]["responses"])
    assert {"202", "400", "409"} <= set(paths["/v1/ingest"]["post"]["responses"])
    assert paths["/v1/passages/{chunk_id}"]["get"]["summary"] and paths["/v1/documents"]["get"]["description"]


def test_writes_bring_the_running_keyword_index_up_to_date(tmp_path, onnx_cache):
    """With the in-memory keyword index on, an upload or delete leaves the service's own index at the new
    registry generation (rebuilt once, by the retriever that uses it), and keyword search serves from it."""
    from api.settings import Settings
    from tests.support.live import LiveServer

    settings = Settings(data_dir=tmp_path / "data", retrieval={"keyword_index": "memory"})
    with LiveServer(settings) as srv:
        admin = srv.services.keys.create("root", "", "admin")[0]
        acc = srv.services.retriever.keyword_index

        def index_generation() -> int | None:
            idx = acc._index  # observed without triggering a refresh (current() would rebuild on its own)
            return idx.generation if idx is not None else None

        with srv.client(admin) as c:
            doc = upload(c, "kiosk.md", md("Kiosk", "The lobby kiosk prints a thimbleweed pass.")).json()["document"]
            assert index_generation() == srv.services.store.generation()
            served = dict(acc.served)
            assert [h["doc_id"] for h in search(c, "thimbleweed")] == [doc["id"]]
            assert acc.served.get("memory", 0) == served.get("memory", 0) + 1
            assert c.delete(f"/v1/documents/{doc['id']}").status_code == 200
            assert index_generation() == srv.services.store.generation()
            assert search(c, "thimbleweed") == []
