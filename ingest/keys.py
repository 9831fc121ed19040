"""API keys: principals stored under a secret, with a role (reader or admin).

A key looks like `lore_<id>_<secret>`; only sha256(secret) is stored, so a copy of the data directory
does not leak working keys. The id lets a key be listed and revoked without showing it again. How a
request presents a key (a bearer header, an environment variable) is the edges' business (api/auth.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from ingest.access import Principal
from ingest.errors import ConfigError, LoreError, StoreError
from ingest.sqlite_db import Schema, migrate

log = logging.getLogger(__name__)
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key: a read must not cost a write
Role = Literal["reader", "admin"]
ROLES = ("reader", "admin")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, user_id TEXT, groups TEXT NOT NULL,
    role TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT, last_used_at TEXT, note TEXT
);
"""
SCHEMA = Schema("API keys", (_SCHEMA,), "restore it from a backup, or move it aside and create the API keys again")


class Unauthorized(LoreError):
    """No valid credentials: a missing, malformed, unknown or revoked key."""


class Forbidden(LoreError):
    """Valid credentials without the role the action needs."""


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the principal whose permissions apply, and what it may administer."""

    principal: Principal
    role: Role
    via: Literal["key", "proxy", "demo", "slack"]
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    user_id: str | None
    groups: tuple[str, ...]
    role: Role
    created_at: str
    revoked_at: str | None
    last_used_at: str | None
    note: str | None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """`KeyStore(data_dir / "auth.db").create("ana", ("hr",), "reader")` -> the key, shown once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}  # key id -> when last_used_at was last attempted (monotonic)
        self.write_error: str | None = None  # why the last last_used_at write failed, until one succeeds
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:  # a garbage file opens fine and fails at its first statement
            self._db.execute("PRAGMA journal_mode=WAL")
            migrate(self._db, SCHEMA, self.path)
            self._db.execute("SELECT key_id, secret_sha256, user_id, groups, role, created_at, revoked_at, "
                             "last_used_at, note FROM api_keys LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from exc

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "full" in text:
            return StoreError(f"{self.path}: cannot be written ({text}); free disk space in the data directory")
        if "locked" in text or "busy" in text:
            return StoreError(f"{self.path} is busy ({text}); try again in a moment")
        if isinstance(exc, sqlite3.OperationalError):  # permissions, a missing directory, a foreign schema
            return StoreError(f"{self.path}: cannot be opened or read ({text}); check that the file and its "
                              "directory are readable and writable by this user")
        return StoreError(f"{self.path}: not a usable Lore key store ({text}); restore it from a backup, or move "
                          "it aside and create the API keys again with `lore keys create` (the old keys stop "
                          "working)")

    def _run(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from exc

    def create(self, user: str | None, groups: tuple[str, ...] | list[str] | str, role: str,
               note: str | None = None) -> tuple[str, KeyInfo]:
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
        principal = Principal.of(user, groups)  # validates the user id and group names
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self._lock:
            self._run("INSERT INTO api_keys VALUES (?,?,?,?,?,?,NULL,NULL,?)",
                             (key_id, _sha(secret), principal.user_id, json.dumps(list(principal.groups)), role,
                              _now(), note))
        return f"lore_{key_id}_{secret}", self._stored(key_id)

    def get(self, key_id: str) -> KeyInfo | None:
        row = self._run("SELECT key_id, user_id, groups, role, created_at, revoked_at, last_used_at, note "
                        "FROM api_keys WHERE key_id=?", (key_id,)).fetchone()
        return None if row is None else KeyInfo(row[0], row[1], tuple(json.loads(row[2])), *row[3:])

    def list(self, include_revoked: bool = False) -> list[KeyInfo]:
        rows = self._run("SELECT key_id FROM api_keys " + ("" if include_revoked else
                         "WHERE revoked_at IS NULL ") + "ORDER BY created_at, key_id").fetchall()
        return [self._stored(r[0]) for r in rows]

    def _stored(self, key_id: str) -> KeyInfo:
        """A key known to exist (keys are revoked, never deleted)."""
        info = self.get(key_id)
        if info is None:  # pragma: no cover - the data dir was swapped underneath
            raise Unauthorized(f"API key {key_id} is no longer stored; ask an admin for a key (lore keys create)")
        return info

    def revoke(self, key_id: str) -> KeyInfo:
        with self._lock:
            cur = self._run("UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL",
                            (_now(), key_id))
        info = self.get(key_id)
        if info is None:
            raise ConfigError(f"no API key with id {key_id!r}; `lore keys list` shows the ids")
        if cur.rowcount == 0 and info.revoked_at is None:  # pragma: no cover - raced with itself
            raise ConfigError(f"API key {key_id} could not be revoked; try again")
        return info

    def verify(self, key: str) -> Caller:
        """The caller a presented key stands for; Unauthorized for anything but a live key."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "lore" or not parts[1] or not parts[2]:
            raise Unauthorized("the API key is malformed; keys look like lore_<id>_<secret> (lore keys create)")
        row = self._run("SELECT secret_sha256, revoked_at FROM api_keys WHERE key_id=?", (parts[1],)).fetchone()
        # compare even when the id is unknown, so timing does not tell ids apart
        ok = hmac.compare_digest(row[0] if row else _sha(""), _sha(parts[2]))
        if row is None or not ok or row[1] is not None:
            raise Unauthorized("the API key is unknown or revoked; ask an admin for a key (lore keys create)")
        info = self._stored(parts[1])
        self._touch(info.key_id)
        return Caller(Principal(info.user_id, info.groups), info.role, "key", info.key_id)

    def _touch(self, key_id: str) -> None:
        """Record when a key was last used: best effort, at most once a minute per key, so a read never fails
        (or waits) on a write (a full disk, a locked file)."""
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
                return
            self._touched[key_id] = now
            try:
                self._db.execute("UPDATE api_keys SET last_used_at=? WHERE key_id=?", (_now(), key_id))
            except sqlite3.Error as exc:
                if self.write_error is None:  # once per episode, not once per request
                    log.warning("%s: could not record the API key's last_used_at (%s); requests go on, "
                                "but `lore keys list` shows stale times until it can be written", self.path, exc)
                self.write_error = f"{self.path}: {exc}"
                return
            if self.write_error is not None:
                log.warning("%s: last_used_at is recorded again", self.path)
                self.write_error = None

    def close(self) -> None:
        self._db.close()
