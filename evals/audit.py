"""The append-only audit log of questions, answers and feedback, in SQLite (DATA_DIR/audit.db).

Append-only is enforced by the database, not by convention. Triggers abort every UPDATE of an answer or
feedback row, and every DELETE of a row younger than the retention period. That period lives in the one-row
`policy` table, written from LORE_AUDIT__RETENTION_DAYS each time the log is opened; a CHECK keeps it at one
day or more, and NULL (retention off, or the row gone) means nothing may be deleted at all. So `purge()`
needs no privileged connection or flag: it deletes exactly what the triggers allow, and a stray
`DELETE FROM answers` in a shell aborts as soon as it reaches a record younger than the period. This stops
mistakes and casual edits; whoever can write the file can also drop the triggers, so ship the log elsewhere
when that matters.

Questions, answer texts, citation quotes and feedback comments are redacted (api/redact.py) before they are
written when `redact` is on; what the caller receives is never changed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, overload

from evals.redact import scan
from ingest.errors import ConfigError, InvalidInput, NotFound, sqlite_unusable
from ingest.sqlite_db import Schema, migrate

log = logging.getLogger(__name__)
CHANNELS = ("api", "web", "slack", "openai", "mcp")
RATINGS = ("up", "down")
STATUSES = ("answered", "extractive", "no_evidence")
PURGE_EVERY_S = 3600.0
DAMAGED = ("restore audit.db from a backup; to start a new, empty log instead, move it aside and keep it (it is the "
           "record of past answers)")
MAX_SOURCES = 10
_NOW_MINUS = "strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || (SELECT retention_days FROM policy) || ' days')"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    retention_days INTEGER CHECK (retention_days IS NULL OR retention_days >= 1)
);
INSERT OR IGNORE INTO policy VALUES (1, NULL);
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, trace_id TEXT NOT NULL, recorded_at TEXT NOT NULL,
    user_id TEXT, groups TEXT NOT NULL, role TEXT NOT NULL, via TEXT NOT NULL, key_id TEXT,
    channel TEXT NOT NULL, context TEXT, question TEXT NOT NULL, status TEXT NOT NULL, confidence REAL NOT NULL,
    answer TEXT NOT NULL, citations TEXT NOT NULL, sources TEXT NOT NULL, latency_ms REAL NOT NULL,
    retrieve_ms REAL, answer_ms REAL, models TEXT NOT NULL, usage TEXT NOT NULL, redactions TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_time ON answers(recorded_at);
CREATE INDEX IF NOT EXISTS answers_trace ON answers(trace_id);
CREATE INDEX IF NOT EXISTS answers_user ON answers(user_id, recorded_at);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, trace_id TEXT NOT NULL, recorded_at TEXT NOT NULL,
    user_id TEXT, key_id TEXT, role TEXT NOT NULL, via TEXT NOT NULL, channel TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')), comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_trace ON feedback(trace_id, seq);
CREATE INDEX IF NOT EXISTS feedback_time ON feedback(recorded_at);
CREATE TRIGGER IF NOT EXISTS answers_no_update BEFORE UPDATE ON answers
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: answers cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_update BEFORE UPDATE ON feedback
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: feedback cannot be changed'); END;
-- REPLACE deletes without firing delete triggers (recursive_triggers is off), so refuse it here
CREATE TRIGGER IF NOT EXISTS answers_no_replace BEFORE INSERT ON answers
WHEN EXISTS (SELECT 1 FROM answers WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: answers cannot be replaced'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_replace BEFORE INSERT ON feedback
WHEN EXISTS (SELECT 1 FROM feedback WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: feedback cannot be replaced'); END;
CREATE TRIGGER IF NOT EXISTS answers_keep BEFORE DELETE ON answers
WHEN (SELECT retention_days FROM policy) IS NULL OR OLD.recorded_at >= {_NOW_MINUS}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: only records older than the retention period go'); END;
CREATE TRIGGER IF NOT EXISTS feedback_keep BEFORE DELETE ON feedback
WHEN (SELECT retention_days FROM policy) IS NULL OR OLD.recorded_at >= {_NOW_MINUS}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: only records older than the retention period go'); END;
"""
# migration 2: what admins did (uploads, deletions, ingests, keys): who, action, target, outcome, when; never a
# key's secret
_ADMIN_ACTIONS = f"""
CREATE TABLE IF NOT EXISTS admin_actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at TEXT NOT NULL, user_id TEXT, key_id TEXT, role TEXT NOT NULL,
    via TEXT NOT NULL, action TEXT NOT NULL, target TEXT, outcome TEXT NOT NULL, detail TEXT
);
CREATE INDEX IF NOT EXISTS admin_actions_time ON admin_actions(recorded_at);
CREATE TRIGGER IF NOT EXISTS admin_actions_no_update BEFORE UPDATE ON admin_actions
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: admin actions cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS admin_actions_no_replace BEFORE INSERT ON admin_actions
WHEN EXISTS (SELECT 1 FROM admin_actions WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: admin actions cannot be replaced'); END;
CREATE TRIGGER IF NOT EXISTS admin_actions_keep BEFORE DELETE ON admin_actions
WHEN (SELECT retention_days FROM policy) IS NULL OR OLD.recorded_at >= {_NOW_MINUS}
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: only records older than the retention period go'); END;
"""
SCHEMA = Schema("audit", (_SCHEMA, _ADMIN_ACTIONS), DAMAGED)
ACTIONS = ("document.upload", "document.delete", "ingest.start", "key.create", "key.revoke")
OUTCOMES = ("succeeded", "failed", "denied")
_COLUMNS = ("seq, trace_id, recorded_at, user_id, groups, role, via, key_id, channel, context, question, status, "
            "confidence, answer, citations, sources, latency_ms, retrieve_ms, answer_ms, models, usage, redactions")


def utc_iso(t: datetime) -> str:
    """The stored time format: UTC, milliseconds, so text order is time order."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


@overload
def _utf8(text: str) -> str: ...
@overload
def _utf8(text: None) -> None: ...
def _utf8(text: str | None) -> str | None:
    """JSON may carry lone surrogates ("\\ud800"), which SQLite cannot store: they become "?"."""
    return text.encode("utf-8", "replace").decode("utf-8") if text else text


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One rating of an answer; the latest per trace id is the one that counts."""

    trace_id: str
    rating: str
    comment: str | None
    recorded_at: str
    user_id: str | None
    key_id: str | None
    channel: str


@dataclass(frozen=True, slots=True)
class AdminAction:
    """One admin action as recorded: who did what to which target, and how it ended (detail: why it failed)."""

    seq: int
    recorded_at: str
    user_id: str | None
    key_id: str | None
    role: str
    via: str
    action: str
    target: str | None
    outcome: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recorded answer as stored (question and texts redacted when redaction is on)."""

    seq: int
    trace_id: str
    recorded_at: str
    user_id: str | None
    groups: tuple[str, ...]
    role: str
    via: str
    key_id: str | None
    channel: str
    context: dict | None
    question: str
    status: str
    confidence: float
    answer: str
    citations: tuple[dict, ...]
    sources: tuple[dict, ...]  # the closest documents, best first, one entry per document
    latency_ms: float
    retrieve_ms: float | None
    answer_ms: float | None
    models: dict
    usage: dict
    redactions: dict  # kind -> how many were masked in the question
    feedback: Feedback | None = None


class AuditLog:
    """`AuditLog(data_dir / "audit.db", retention_days=90).record(caller=..., channel="api", ...)`."""

    def __init__(self, path: str | Path, *, redact: bool = True, retention_days: int | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        if retention_days is not None and (not isinstance(retention_days, int) or retention_days < 1):
            raise ConfigError(f"audit retention_days must be a whole number of days >= 1, got {retention_days!r} "
                              "(LORE_AUDIT__RETENTION_DAYS; unset keeps records forever)")
        self.path = Path(path)
        self.redact = redact
        self.retention_days = retention_days
        self._clock = clock  # tests back-date records with it
        self._lock = threading.Lock()
        self._last_purge = time.monotonic()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            migrate(self._db, SCHEMA, self.path)
            self._db.execute("UPDATE policy SET retention_days=? WHERE id=1", (retention_days,))
        except sqlite3.Error as exc:
            self._db.close()
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc

    def _mask(self, text: str) -> tuple[str, dict]:
        text = _utf8(text)
        if not self.redact or not text:
            return text, {}
        r = scan(text)
        return r.text, r.counts

    def record(self, *, caller, channel: str, question: str, answer: dict, latency_ms: float,
               context: dict | None = None) -> None:
        """Append one answered question (caller: ingest.keys.Caller; answer: the Answer's JSON, as /v1/ask gives it)."""
        if channel not in CHANNELS:
            raise InvalidInput(f"audit channel {channel!r} is not one of {', '.join(CHANNELS)}")
        q, counts = self._mask(question)
        citations = [{"marker": c.get("marker"), "doc_id": c.get("doc_id"), "chunk_id": c.get("chunk_id"),
                      "title": c.get("title"), "uri": c.get("uri"), "version": c.get("version"),
                      "quote": self._mask(c.get("quote") or "")[0]} for c in answer.get("citations", ())]
        sources: list[dict] = []
        seen: set[str | None] = set()
        for h in answer.get("hits", ()):
            if h.get("doc_id") not in seen and len(sources) < MAX_SOURCES:
                seen.add(h.get("doc_id"))
                sources.append({"doc_id": h.get("doc_id"), "chunk_id": h.get("chunk_id"), "title": h.get("title"),
                                "uri": h.get("uri"), "score": h.get("score")})
        timings = answer.get("timings") or {}
        p = caller.principal
        row = (_utf8(answer.get("trace_id")) or "", utc_iso(self._clock()), p.user_id, json.dumps(list(p.groups)),
               caller.role, caller.via, caller.key_id, channel, None if context is None else json.dumps(context),
               q, answer.get("status", ""), float(answer.get("confidence") or 0.0),
               self._mask(answer.get("text") or "")[0], json.dumps(citations), json.dumps(sources),
               float(latency_ms), timings.get("retrieve_ms"), timings.get("answer_ms"),
               json.dumps(answer.get("models") or {}), json.dumps(answer.get("usage") or {}), json.dumps(counts))
        with self._lock:
            self._write(f"INSERT INTO answers ({_COLUMNS.split(', ', 1)[1]}) VALUES ({','.join('?' * len(row))})",
                        row)
            due = self.retention_days is not None and time.monotonic() - self._last_purge >= PURGE_EVERY_S
        if due:
            self.purge()

    def feedback(self, *, caller, trace_id: str, rating: str, comment: str | None = None,
                 channel: str = "api") -> dict:
        """Rate an answer the caller was given (admins: any answer); NotFound when there is none."""
        if rating not in RATINGS:
            raise InvalidInput(f"rating {rating!r} is not one of {', '.join(RATINGS)}")
        if channel not in CHANNELS:
            raise InvalidInput(f"feedback channel {channel!r} is not one of {', '.join(CHANNELS)}")
        mine, args = self._visible(caller)
        trace_id, at = _utf8(trace_id), utc_iso(self._clock())
        with self._lock:
            found = self._read(f"SELECT 1 FROM answers WHERE trace_id=? AND {mine} LIMIT 1", (trace_id, *args))
            if not found:
                raise NotFound(f"no answer with trace id {trace_id!r} was given to you; use the trace_id "
                               "returned with the answer")
            p = caller.principal
            self._write("INSERT INTO feedback (trace_id, recorded_at, user_id, key_id, role, via, channel, rating, "
                        "comment) VALUES (?,?,?,?,?,?,?,?,?)",
                        (trace_id, at, p.user_id, caller.key_id, caller.role, caller.via, channel, rating,
                         self._mask(comment)[0] if comment else None))
        return {"trace_id": trace_id, "rating": rating, "recorded_at": at}

    def record_action(self, *, caller, action: str, target: str | None, outcome: str,
                      detail: str | None = None) -> None:
        """Append one admin action (caller: ingest.keys.Caller); `detail` must never hold a secret."""
        if action not in ACTIONS or outcome not in OUTCOMES:
            raise ConfigError(f"admin action {action!r} / outcome {outcome!r}: the action is one of "
                              f"{', '.join(ACTIONS)} and the outcome one of {', '.join(OUTCOMES)}")
        row = (utc_iso(self._clock()), caller.principal.user_id, caller.key_id, caller.role, caller.via, action,
               _utf8(target), outcome, _utf8(detail))
        with self._lock:
            self._write("INSERT INTO admin_actions (recorded_at, user_id, key_id, role, via, action, target, outcome, "
                        "detail) VALUES (?,?,?,?,?,?,?,?,?)", row)

    def actions(self, *, since: datetime | None = None, until: datetime | None = None, action: str | None = None,
                user: str | None = None, outcome: str | None = None, limit: int = 100,
                offset: int = 0) -> tuple[list[AdminAction], int]:
        """One page of admin actions, newest first, and how many match; `since` inclusive, `until` exclusive."""
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidInput(f"limit must be 1-500 and offset >= 0, got limit={limit}, offset={offset}")
        where, args = ["1=1"], []
        for sql, value in (("action = ?", action), ("user_id = ?", user), ("outcome = ?", outcome),
                           ("recorded_at >= ?", since and utc_iso(since)), ("recorded_at < ?", until and utc_iso(until))):
            if value is not None:
                where.append(sql)
                args.append(value)
        cond = " AND ".join(where)
        with self._lock:
            total = self._read(f"SELECT count(*) FROM admin_actions WHERE {cond}", args)[0][0]
            rows = self._read("SELECT seq, recorded_at, user_id, key_id, role, via, action, target, outcome, detail "
                              f"FROM admin_actions WHERE {cond} ORDER BY seq DESC LIMIT ? OFFSET ?",
                              (*args, limit, offset))
        return [AdminAction(*r) for r in rows], total

    @staticmethod
    def _visible(caller) -> tuple[str, tuple]:
        if caller.is_admin:
            return "1=1", ()
        # NULL never equals NULL, so a key without a user matches only its own key id
        return "(key_id = ? OR user_id = ?)", (caller.key_id, caller.principal.user_id)

    def query(self, *, since: datetime | None = None, until: datetime | None = None, user: str | None = None,
              status: str | None = None, channel: str | None = None, trace_id: str | None = None,
              rating: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[AuditRecord], int]:
        """One page of records, newest first, and how many match; `since` inclusive, `until` exclusive."""
        if not 1 <= limit <= 500 or offset < 0:
            raise InvalidInput(f"limit must be 1-500 and offset >= 0, got limit={limit}, offset={offset}")
        where, args = ["1=1"], []
        for column, value in (("user_id", user), ("status", status), ("channel", channel), ("trace_id", trace_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("recorded_at >= ?")
            args.append(utc_iso(since))
        if until is not None:
            where.append("recorded_at < ?")
            args.append(utc_iso(until))
        if rating is not None:
            where.append("(SELECT f.rating FROM feedback f WHERE f.trace_id = answers.trace_id "
                         "ORDER BY f.seq DESC LIMIT 1) = ?")
            args.append(rating)
        sql = " AND ".join(where)
        with self._lock:
            total = self._read(f"SELECT count(*) FROM answers WHERE {sql}", args)[0][0]
            rows = self._read(f"SELECT {_COLUMNS} FROM answers WHERE {sql} ORDER BY seq DESC LIMIT ? OFFSET ?",
                              (*args, limit, offset))
            return self._with_feedback(rows), total

    def iter_records(self, since: datetime | None = None, until: datetime | None = None,
                     batch: int = 500) -> Iterator[AuditRecord]:
        """Every record in time order, with its latest feedback: for analytics and exports."""
        last = 0
        bounds, args = "", []
        if since is not None:
            bounds += " AND recorded_at >= ?"
            args.append(utc_iso(since))
        if until is not None:
            bounds += " AND recorded_at < ?"
            args.append(utc_iso(until))
        while True:
            with self._lock:
                rows = self._read(f"SELECT {_COLUMNS} FROM answers WHERE seq > ?{bounds} ORDER BY seq LIMIT ?",
                                  (last, *args, batch))
                records = self._with_feedback(rows)
            if not records:
                return
            yield from records
            last = records[-1].seq

    def feedback_for(self, trace_id: str) -> list[Feedback]:
        """All ratings of one answer, oldest first."""
        with self._lock:
            rows = self._read("SELECT trace_id, rating, comment, recorded_at, user_id, key_id, channel "
                              "FROM feedback WHERE trace_id=? ORDER BY seq", (trace_id,))
        return [Feedback(*r) for r in rows]

    def _with_feedback(self, rows: list[tuple]) -> list[AuditRecord]:
        traces = sorted({r[1] for r in rows})
        latest: dict[str, Feedback] = {}
        for i in range(0, len(traces), 500):
            part = traces[i:i + 500]
            for r in self._read("SELECT trace_id, rating, comment, recorded_at, user_id, key_id, channel "
                                f"FROM feedback WHERE trace_id IN ({','.join('?' * len(part))}) ORDER BY seq", part):
                latest[r[0]] = Feedback(*r)
        out = []
        for r in rows:
            (seq, trace, at, user, groups, role, via, key_id, channel, context, question, status, confidence,
             answer, citations, sources, latency, retrieve, answer_ms, models, usage, redactions) = r
            out.append(AuditRecord(seq, trace, at, user, tuple(json.loads(groups)), role, via, key_id, channel,
                                   json.loads(context) if context else None, question, status, confidence, answer,
                                   tuple(json.loads(citations)), tuple(json.loads(sources)), latency, retrieve,
                                   answer_ms, json.loads(models), json.loads(usage), json.loads(redactions),
                                   latest.get(trace)))
        return out

    def purge(self) -> int:
        """Delete records older than the retention period (none when it is unset); returns answers removed."""
        if self.retention_days is None:
            return 0
        with self._lock:
            self._last_purge = time.monotonic()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                # the same cutoff expression as the triggers, so purge never asks for more than they allow
                answers = self._db.execute(f"DELETE FROM answers WHERE recorded_at < {_NOW_MINUS}").rowcount
                feedback = self._db.execute(f"DELETE FROM feedback WHERE recorded_at < {_NOW_MINUS}").rowcount
                self._db.execute(f"DELETE FROM admin_actions WHERE recorded_at < {_NOW_MINUS}")
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise sqlite_unusable(self.path, exc, DAMAGED) from exc
        if answers or feedback:
            log.info("audit log: purged %d answers and %d feedback rows older than %d days", answers, feedback,
                     self.retention_days)
        return answers

    def _write(self, sql: str, args: tuple) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc

    def _read(self, sql: str, args=()) -> list[tuple]:
        """All rows of a query; a damaged page found while reading them is a StoreError, not a 500."""
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
