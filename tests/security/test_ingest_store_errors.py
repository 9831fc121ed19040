"""A damaged lore.db, audit.db or jobs.db, or a read-only data dir: a storage error that says which and
what to do (CLI exit code 5, HTTP 503), never a traceback, and never the wrong diagnosis."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.errors import StoreError

REPO = Path(__file__).resolve().parents[2]
LORE = str(Path(sys.executable).parent / "lore")
COMMANDS = [["docs"], ["search", "expense receipts"], ["ask", "When are expense reports due?"],
            ["ingest", "CORPUS"]]
DAMAGED = "is not a SQLite database or is damaged"
READ_ONLY = "is read-only"


def _env() -> dict:
    # the hash embedder: these runs fail at the registry, before or without any model work
    return {**os.environ, "LORE_EMBEDDING__BACKEND": "hash"}


def lore(args: list[str], data_dir: Path, corpus: Path) -> subprocess.CompletedProcess:
    args = [str(corpus) if a == "CORPUS" else a for a in args]
    return subprocess.run([LORE, *args, "--data-dir", str(data_dir)], cwd=REPO, capture_output=True, text=True,
                          env=_env(), timeout=300)


def damage_tables(db: Path, *tables: str) -> None:
    """Overwrite the root pages of `tables` with garbage: the file still opens, reading them fails."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = con.execute("PRAGMA page_size").fetchone()[0]
    roots = [r[0] for r in con.execute(f"SELECT rootpage FROM sqlite_master WHERE name IN "
                                       f"({','.join('?' * len(tables))})", tables)]
    con.close()
    assert len(roots) == len(tables)
    with open(db, "r+b") as f:
        for page in roots:
            f.seek((page - 1) * size)
            f.write(b"\xa5\x5a" * (size // 2))


@contextmanager
def immutable(*paths: Path):
    """Make paths read-only even for root (chattr +i), as a read-only mount or foreign owner would."""
    try:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        # CI runs as root on a file system with attributes: there this is a failure, never a quiet skip
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"cannot make files immutable here ({exc})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> tuple[Path, Path]:
    """A small knowledge base written by `lore ingest`, and its corpus."""
    base = tmp_path_factory.mktemp("store-errors")
    corpus = base / "corpus"
    corpus.mkdir()
    for i in range(12):
        (corpus / f"policy-{i}.md").write_text(f"# Policy {i}\n\nExpense reports are due within {i + 10} days.\n")
    r = lore(["ingest", "CORPUS"], base / "kb", corpus)
    assert r.returncode == 0, r.stderr
    return base / "kb", corpus


def _copy(kb: Path, dst: Path) -> Path:
    shutil.copytree(kb, dst)
    return dst


def _assert_store_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 5, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "sqlite3." not in r.stderr, r.stderr[-3000:]
    for w in words:
        assert w in " ".join(r.stderr.split()), r.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_damaged_registry_is_exit_5_with_what_to_do(kb, tmp_path, args):
    d = _copy(kb[0], tmp_path / "kb")
    damage_tables(d / "lore.db", "documents", "chunks")
    _assert_store_error(lore(args, d, kb[1]), "lore.db", DAMAGED, "move it aside", "backup")


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_garbage_registry_is_exit_5(kb, tmp_path, args):
    d = _copy(kb[0], tmp_path / "kb")
    (d / "lore.db").write_bytes(b"this is not a database " * 400)
    _assert_store_error(lore(args, d, kb[1]), "lore.db", DAMAGED)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_read_only_data_dir_is_called_read_only(kb, tmp_path, args):
    d = _copy(kb[0], tmp_path / "kb")
    with immutable(d, d / "lore.db"):
        r = lore(args, d, kb[1])
    _assert_store_error(r, "lore.db", READ_ONLY, "permissions")
    assert DAMAGED not in r.stderr and "not a usable" not in r.stderr


def test_damaged_registry_is_503_over_http(kb, tmp_path, onnx_cache):
    import httpx

    from api.settings import Settings
    from tests.support.live import LiveServer

    d = _copy(kb[0], tmp_path / "kb")
    damage_tables(d / "lore.db", "documents", "chunks")
    settings = Settings(data_dir=d, server={"auth": "none"}, embedding={"backend": "hash"})
    with LiveServer(settings) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        docs = c.get("/v1/documents")
        ask = c.post("/v1/ask", json={"question": "When are expense reports due?"})
    for r in (docs, ask):
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "store_unavailable" and DAMAGED in r.json()["error"]["message"]


def test_damaged_job_log_is_503_over_http(tmp_path, onnx_cache):
    import httpx

    from ingest.joblog import JobLog
    from api.settings import Settings
    from tests.support.live import LiveServer

    d = tmp_path / "kb"
    log = JobLog(d / "jobs.db")
    for i in range(200):
        log.add({"job_id": f"job-{i}", "status": "succeeded", "paths": ["/x" * 50], "doc_type": None, "acl": [],
                 "exclude": [], "progress": {}, "report": None, "error": None, "created_at": "2025-01-01",
                 "started_at": None, "finished_at": None})
    log.close()
    damage_tables(d / "jobs.db", "jobs")
    settings = Settings(data_dir=d, server={"auth": "none"}, embedding={"backend": "hash"})
    with LiveServer(settings) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        r = c.get("/v1/jobs")
    assert r.status_code == 503, r.text
    assert "jobs.db" in r.json()["error"]["message"] and DAMAGED in r.json()["error"]["message"]


def test_audit_and_job_logs_tell_damaged_from_read_only(tmp_path):
    from evals.audit import AuditLog
    from ingest.joblog import JobLog

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "audit.db").write_bytes(b"not a database at all " * 400)
    (garbage / "jobs.db").write_bytes(b"not a database at all " * 400)
    with pytest.raises(StoreError, match=f"audit.db {DAMAGED}.*backup"):
        AuditLog(garbage / "audit.db")
    with pytest.raises(StoreError, match=f"jobs.db {DAMAGED}.*move jobs.db aside"):
        JobLog(garbage / "jobs.db")

    fine = tmp_path / "fine"
    AuditLog(fine / "audit.db").close()
    JobLog(fine / "jobs.db").close()
    with immutable(fine, fine / "audit.db", fine / "jobs.db"):
        for open_log, name in ((AuditLog, "audit.db"), (JobLog, "jobs.db")):
            with pytest.raises(StoreError, match=READ_ONLY) as got:
                open_log(fine / name)
            assert "permissions" in str(got.value) and DAMAGED not in str(got.value)
