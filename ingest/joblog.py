"""Ingest job records that outlive the service that ran them: DATA_DIR/jobs.db, its own SQLite file.

A job that was queued or running when its service died is marked `interrupted` by the next service to open
the log: ingest is crash-safe, so starting it again finishes it.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from ingest.errors import sqlite_unusable
from ingest.sqlite_db import Schema, migrate

log = logging.getLogger(__name__)
OPEN = ("queued", "running")  # a job in one of these when its service dies is interrupted
DAMAGED = "move jobs.db aside: it holds only the history of ingest jobs, and a new one is made on the next start"
INTERRUPTED = ("the service stopped before this job finished; ingest is crash-safe (no document is left half-stored), "
               "so start it again with the same paths (POST /v1/ingest): files already stored are skipped")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL, status TEXT NOT NULL,
    paths TEXT NOT NULL, doc_type TEXT, acl TEXT NOT NULL, exclude TEXT NOT NULL, progress TEXT NOT NULL,
    report TEXT, error TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, saved_at TEXT NOT NULL
);
"""
SCHEMA = Schema("jobs", (_SCHEMA,), DAMAGED)
_JSON = ("paths", "acl", "exclude", "progress", "report")
_MUTABLE = ("status", "progress", "report", "error", "started_at", "finished_at")
_FIELDS = ("id", "status", "paths", "doc_type", "acl", "exclude", "progress", "report", "error", "created_at",
           "started_at", "finished_at")


class JobLog:
    """`JobLog(data_dir / "jobs.db")`: ingest job records that outlive the service that ran them.

    Each service holds a lock file, job-owners/<owner>.lock, while it lives; an open job whose owner's
    lock is free belongs to a service that is gone, so it is marked interrupted (never restarted).
    """

    def __init__(self, path: str | Path, keep: int = 50) -> None:
        if keep < 1:
            raise ValueError(f"JobLog keep must be at least 1, got {keep}")
        self.path, self.keep = Path(path), keep
        self.owner = uuid.uuid4().hex
        self._owners = self.path.parent / "job-owners"
        self._lock = threading.Lock()  # one connection, shared by request threads and the job's thread
        try:
            self._owners.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate(self._db, SCHEMA, self.path)
            self._alive = FileLock(str(self._owners / f"{self.owner}.lock"), thread_local=False)
            self._alive.acquire(timeout=0)  # never released: the kernel drops it when this process ends
            self._recover()
        except (OSError, sqlite3.Error, Timeout) as exc:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc

    def add(self, rec: dict) -> None:
        """Record a new job (as `Job.to_dict` gives it) and forget all but the latest `keep`."""
        row = [json.dumps(rec[k]) if k in _JSON else rec["job_id" if k == "id" else k] for k in _FIELDS]
        self._write(rec["job_id"], f"INSERT INTO jobs (owner, saved_at, {', '.join(_FIELDS)}) "
                    f"VALUES (?, ?, {', '.join('?' * len(_FIELDS))})", (self.owner, _now(), *row), prune=True)

    def save(self, rec: dict) -> None:
        """Write a job's new state and progress; a failure is logged, never raised, so the job goes on."""
        vals = [json.dumps(rec[k]) if k in _JSON else rec[k] for k in _MUTABLE]
        self._write(rec["job_id"], f"UPDATE jobs SET saved_at=?, {', '.join(f'{k}=?' for k in _MUTABLE)} WHERE id=?",
                    (_now(), *vals, rec["job_id"]))

    def load(self, job_id: str) -> dict | None:
        rows = self._read(f"SELECT {', '.join(_FIELDS)} FROM jobs WHERE id=?", (job_id,))
        return _record(rows[0]) if rows else None

    def recent(self, n: int) -> list[dict]:
        """The latest `n` jobs, newest first."""
        return [_record(r) for r in self._read(f"SELECT {', '.join(_FIELDS)} FROM jobs ORDER BY seq DESC LIMIT ?", (n,))]

    def _read(self, sql: str, args: tuple) -> list[tuple]:
        """All rows of a query; a damaged page found while reading them is a StoreError, not a 500."""
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, job_id: str, sql: str, args: tuple, prune: bool = False) -> None:
        try:
            with self._lock:
                self._db.execute(sql, args)
                if prune:
                    self._db.execute("DELETE FROM jobs WHERE seq <= (SELECT seq FROM jobs ORDER BY seq DESC "
                                     "LIMIT 1 OFFSET ?)", (self.keep,))
        except sqlite3.Error as exc:
            log.warning("could not record ingest job %s in %s (%s); it is not kept across a restart", job_id,
                        self.path, exc)

    def _recover(self) -> None:
        """Mark the open jobs of services that are gone as interrupted, and drop those services' lock files."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT owner FROM jobs WHERE status IN (?, ?)", OPEN).fetchall()
        owners = {r[0] for r in rows} | {p.stem for p in self._owners.glob("*.lock")}
        for owner in sorted(owners - {self.owner}):
            if not self._gone(owner):
                continue
            with self._lock:
                ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE owner=? AND status IN (?, ?)",
                                                      (owner, *OPEN))]
                self._db.execute("UPDATE jobs SET status='interrupted', error=?, finished_at=saved_at, saved_at=? "
                                 "WHERE owner=? AND status IN (?, ?)", (INTERRUPTED, _now(), owner, *OPEN))
            for job_id in ids:
                log.warning("ingest job %s was cut short when its service stopped: marked interrupted", job_id)

    def _gone(self, owner: str) -> bool:
        if not re.fullmatch(r"[0-9a-f]{32}", owner):
            return True
        path = self._owners / f"{owner}.lock"
        lock = FileLock(str(path), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False  # that service still runs (perhaps another process on this data dir)
        try:
            path.unlink(missing_ok=True)
        finally:
            lock.release()
        return True


def _record(row: tuple) -> dict:
    return {"job_id" if k == "id" else k: json.loads(v) if k in _JSON and v is not None else v
            for k, v in zip(_FIELDS, row)}
