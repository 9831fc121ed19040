"""The `lore` CLI end to end, with the network made unreachable for the whole process."""

import json
import os
import subprocess
import sys

import pytest

from tests.support import ENTERPRISE_DIRS, LORE, REPO

def lore(*args, env=None, offline=True):
    cmd = [LORE, *args]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HF_HUB_OFFLINE", None)  # prove Lore sets it itself
    if offline:
        full_env["PYTHONPATH"] = _NO_NET_DIR[0]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=full_env, timeout=900)


_NO_NET_DIR = [""]


@pytest.fixture(autouse=True)
def _offline(no_net_dir):
    _NO_NET_DIR[0] = no_net_dir


def test_ingest_docs_rm_without_network(tmp_path, corpus):
    d = str(tmp_path / "kb")
    r = lore("ingest", str(corpus), "--data-dir", d, "--json")
    assert r.returncode == 0 and "NETWORK ACCESS" not in r.stderr, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary == {"added": 10, "updated": 0, "unchanged": 0, "deleted": 0, "failed": [],
                       "chunks": summary["chunks"], "excluded": 0, "acl_changed": []} and summary["chunks"] > 10
    docs = json.loads(lore("docs", "--data-dir", d, "--json").stdout)
    assert {x["doc_type"] for x in docs} == {"policy", "spec", "incident"}
    doc = next(x for x in docs if x["title"] == "Payments API Specification v3")
    shown = json.loads(lore("show", doc["id"], "--data-dir", d, "--json").stdout)
    assert any("600 requests per minute" in c["text"] for c in shown["chunks"])
    r = lore("rm", doc["id"], "--data-dir", d)
    assert r.returncode == 0 and "removed" in r.stdout
    r = lore("rm", doc["id"], "--data-dir", d)
    assert r.returncode == 4 and "lore docs" in r.stderr
    again = json.loads(lore("ingest", str(corpus), "--data-dir", d, "--json").stdout.splitlines()[-1])
    assert (again["added"], again["unchanged"]) == (1, 9)


def test_search_and_ask_offline_with_permissions(tmp_path, corpus):
    d = str(tmp_path / "kb")
    assert lore("ingest", str(corpus), "--data-dir", d).returncode == 0
    r = lore("search", "salary band senior engineer", "--data-dir", d, "--json", "-k", "20")
    assert r.returncode == 0 and "NETWORK ACCESS" not in r.stderr, r.stderr[-2000:]
    anon = json.loads(r.stdout.splitlines()[-1])["hits"]
    assert anon and not any(h["doc_id"].startswith("compensation-bands") for h in anon)
    hr = json.loads(lore("search", "salary band senior engineer", "--data-dir", d, "--json",
                         "--user", "ana", "--groups", "hr,support").stdout.splitlines()[-1])["hits"]
    top = hr[0]
    assert top["doc_id"].startswith("compensation-bands") and top["section"][-1] == "Engineering bands"
    assert {"title", "uri", "doc_type", "version", "start", "end", "page_start", "stages"} <= set(top)
    typed = json.loads(lore("search", "outage", "--type", "incident", "--data-dir", d, "--json").stdout.splitlines()[-1])
    assert typed["hits"] and {h["doc_type"] for h in typed["hits"]} == {"incident"}
    r = lore("search", "x", "--type", "memo", "--data-dir", d)
    assert r.returncode == 2 and "memo" in r.stderr
    text = lore("search", "PTO carry over", "--data-dir", d).stdout
    assert "Carry-over" in text and "40 hours" in text

    r = lore("ask", "How many PTO hours can I carry over?", "--data-dir", d, "--json")
    assert r.returncode == 0 and "NETWORK ACCESS" not in r.stderr, r.stderr[-2000:]
    ans = json.loads(r.stdout.splitlines()[-1])
    assert ans["status"] == "extractive" and "40 hours" in ans["text"]
    assert ans["text"].split(" [1]")[0] in ans["citations"][0]["quote"]  # the answer sentence, its context quoted
    assert {"retrieve_ms", "answer_ms", "total_ms"} <= set(ans["timings"]) and ans["trace_id"]
    lines = "\n".join(json.dumps(x) for x in [
        {"id": "a", "question": "what is the rate limit of the payments api"},
        {"id": "b", "question": "who won the 2022 football world cup"},
        {"id": "c", "question": "salary band senior engineer", "user": "ana", "groups": ["hr"]}])
    r = subprocess.run([LORE, "ask", "--jsonl", "--data-dir", d], input=lines + "\nnot json\n", capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert [g.get("id") for g in got] == ["a", "b", "c", None]
    assert got[0]["status"] == "extractive" and "600" in got[0]["text"]
    assert got[1]["status"] == "no_evidence" and got[1]["citations"] == []
    assert "68,000" in got[2]["text"] and "line 4" in got[3]["error"]


def test_the_hook_really_blocks_network(no_net_dir):
    probe = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9', timeout=1)"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": no_net_dir})
    assert "network access attempted" in r.stderr


def test_partial_failure_exit_code_and_bad_arguments(tmp_path, corpus):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 nope")
    d = str(tmp_path / "kb")
    r = lore("ingest", str(corpus), "--data-dir", d, "--json", offline=False)
    assert r.returncode == 3
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["added"] == 10 and out["failed"][0]["path"].endswith("broken.pdf")
    r = lore("ingest", str(corpus), "--data-dir", d, "--acl", "everyone", offline=False)
    assert r.returncode == 2 and "invalid ACL token 'everyone'" in r.stderr
    r = lore("ingest", str(corpus), "--data-dir", d, env={"LORE_EMBEDDING__BACKEND": "gpu"}, offline=False)
    assert r.returncode == 2 and "LORE_EMBEDDING__BACKEND" in r.stderr


@pytest.mark.slow
def test_enterprise_corpus_ingests_completely(enterprise_kb):
    """144 real documents: every file ingests; every chunk's provenance is complete and exact."""
    from chromadb.api.client import SharedSystemClient

    from ingest.sqlite_store import SqliteStore

    d, r = enterprise_kb
    assert r.returncode == 0 and "NETWORK ACCESS" not in r.stderr, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["added"] == 144 and summary["failed"] == [] and summary["chunks"] > 2000
    store = SqliteStore(d / "lore.db")
    docs = store.documents()
    assert sorted({x.doc_type for x in docs}) == ["incident", "policy", "spec"]
    by_type = {t: sum(x.doc_type == t for x in docs) for t in ("policy", "spec", "incident")}
    assert by_type == {"policy": 57, "spec": 21, "incident": 66}
    total = 0
    for doc in docs:
        assert doc.title and doc.uri and len(doc.version) == 64 and doc.updated_at and doc.ingested_at
        text = store.document_text(doc.id)
        chunks = store.chunks(doc.id)
        assert len(chunks) == doc.chunk_count > 0
        for c in chunks:
            assert text[c.start:c.end] == c.text and c.text.strip()
            assert c.doc_id == doc.id and c.version == doc.version and c.section and c.content_hash
            assert c.token_count <= 222  # the model's 256-token window less the header budget
        total += len(chunks)
    assert total == summary["chunks"]
    SharedSystemClient.clear_system_cache()
    from ingest.chroma_store import ChromaChunkStore
    from ingest.onnx_embedder import OnnxEmbedder

    assert ChromaChunkStore(OnnxEmbedder().model_id, path=d / "chroma").count() == total
    rerun = json.loads(lore("ingest", *map(str, ENTERPRISE_DIRS), "--data-dir", str(d), "--json").stdout.splitlines()[-1])
    assert rerun["unchanged"] == 144 and rerun["chunks"] == 0
