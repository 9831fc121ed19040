"""Conversation plumbing: the question in a Slack message, a thread's earlier turns, and retry de-duplication."""

from __future__ import annotations

import html
import logging
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from slack_sdk import WebClient

from ingest.sqlite_db import Schema, migrate

log = logging.getLogger(__name__)
MAX_QUESTION = 2000  # as /v1/ask
MAX_TURNS = 10  # the last question-answer pairs of a thread given as history
MAX_TURN_CHARS = 8000
ANSWER_EVENT = "lore_answer"  # message metadata on every answer: the thread's history is read back from it
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#[CG][A-Z0-9]+\|([^>]*)>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(?:subteam\^[A-Z0-9]+\|)?([^>|]*)(?:\|[^>]*)?>")
SEEN_TTL = 3600.0  # Slack retries 3 times within about 5 minutes; an hour also covers a slow restart
PRUNE_EVERY = 300.0  # expired delivery ids are deleted at most this often, inside a claim's transaction
BUSY_TIMEOUT = 2.0  # under Slack's 3 s acknowledgement deadline: a locked file fails open, not late
_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_at ON deliveries (at);
"""
SCHEMA = Schema("slack deliveries", (_SCHEMA,), "move slack.db aside: it only remembers which Slack deliveries were answered")
_CLAIM = ("INSERT INTO deliveries (key, at) VALUES (?, ?) "
          "ON CONFLICT (key) DO UPDATE SET at = excluded.at WHERE deliveries.at <= ?")


def question_text(text: str, bot_user: str | None) -> str:
    """Slack's message markup as plain text: the bot's own mention removed, other mentions and links kept readable."""
    text = _USER.sub(lambda m: "" if m.group(1) == bot_user else f"@{m.group(1)}", text or "")
    text = _CHANNEL.sub(lambda m: f"#{m.group(1)}", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1).lstrip('@')}", text)
    return " ".join(html.unescape(text).split())


def answer_metadata(question: str, trace_id: str) -> dict:
    return {"event_type": ANSWER_EVENT, "event_payload": {"question": question[:MAX_QUESTION], "trace_id": trace_id}}


def thread_history(client: WebClient, channel: str, thread_ts: str, before: str | None,
                   bot_user: str | None) -> list[dict]:
    """Earlier question-answer pairs of a thread, oldest first, read from the bot's answers' metadata.

    Only Lore's own answers count: their metadata holds the question each one answered, so a thread started
    by a slash command has its question too, and side conversation between people is not taken as a turn.
    """
    turns: list[dict] = []
    cursor = None
    while True:
        page = client.conversations_replies(channel=channel, ts=thread_ts, include_all_metadata=True, limit=200,
                                            cursor=cursor)
        for m in page.get("messages") or []:
            meta = m.get("metadata") or {}
            if before is not None and float(m.get("ts", "0")) >= float(before):
                continue
            if meta.get("event_type") != ANSWER_EVENT or (bot_user and m.get("user") not in (bot_user, None)):
                continue
            q = (meta.get("event_payload") or {}).get("question")
            if q:
                turns += [{"role": "user", "content": q[:MAX_TURN_CHARS]},
                          {"role": "assistant", "content": (m.get("text") or "")[:MAX_TURN_CHARS]}]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return turns[-2 * MAX_TURNS:]


class Seen:
    """Slack delivery keys seen within a TTL: `Seen(DATA_DIR / "slack.db").first(*keys)` is True once.

    With a path the keys are shared in SQLite by every process on the data dir (several `lore serve` workers,
    or one restarted before Slack's retry); without one, or if the file cannot be written, in memory only.
    """

    def __init__(self, path: Path | str | None = None, ttl: float = SEEN_TTL, capacity: int = 50_000,
                 clock: Callable[[], float] = time.time, prune_every: float = PRUNE_EVERY) -> None:
        if not ttl > 0:
            raise ValueError(f"Seen ttl must be a number of seconds > 0, got {ttl!r}")
        self.ttl, self.capacity, self.prune_every, self._clock = ttl, capacity, prune_every, clock
        self.path = Path(path) if path is not None else None
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._next_prune = 0.0
        self._db = self._open(self.path) if self.path is not None else None

    @property
    def shared(self) -> bool:
        """Whether other processes on the data dir see these keys (False: memory only)."""
        return self._db is not None

    def first(self, *keys: str | None) -> bool:
        """True if none of the keys was seen; all of them are remembered either way."""
        now = self._clock()
        named = tuple(dict.fromkeys(k for k in keys if k))
        with self._lock:
            while self._keys and (len(self._keys) > self.capacity or now - next(iter(self._keys.values())) > self.ttl):
                self._keys.popitem(last=False)
            known = sum(k in self._keys for k in named)
            fresh = not known
            for k in named:
                self._keys[k] = now
                self._keys.move_to_end(k)
            if known == len(named) or self._db is None:  # this process's own repeat: nothing new to record
                return fresh
            try:
                return self._claim(self._db, named, now) and fresh
            except sqlite3.Error as exc:  # answering twice beats not answering: this process's memory decides
                log.warning("slack: delivery ids in %s unavailable (%s): de-duplicating in this process only",
                            self.path, exc)
                return fresh

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _claim(self, db: sqlite3.Connection, keys: tuple[str, ...], now: float) -> bool:
        """Insert the keys in one write transaction: exactly one process finds them all new."""
        cutoff = now - self.ttl
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = True
            for k in keys:  # an expired row counts as absent and is taken over
                fresh &= db.execute(_CLAIM, (k, now, cutoff)).rowcount == 1
            if now >= self._next_prune:
                db.execute("DELETE FROM deliveries WHERE at <= ?", (cutoff,))
                self._next_prune = now + self.prune_every
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return fresh

    def _open(self, path: Path) -> sqlite3.Connection | None:
        db = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
            db.execute("PRAGMA journal_mode=WAL")
            migrate(db, SCHEMA, path)
            now = self._clock()
            db.execute("DELETE FROM deliveries WHERE at <= ?", (now - self.ttl,))  # also proves the file is writable
            self._next_prune = now + self.prune_every
            return db
        except (OSError, sqlite3.Error) as exc:
            if db is not None:
                db.close()
            log.warning("slack: cannot keep delivery ids in %s (%s), so Slack's retries are de-duplicated in "
                        "this process only: make the data directory (LORE_DATA_DIR) writable", path, exc)
            return None
