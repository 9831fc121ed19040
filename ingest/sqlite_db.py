"""One way to open Lore's SQLite files: WAL, a busy timeout, and numbered forward migrations.

    SCHEMA = Schema("jobs", migrations=(V1_SQL, "ALTER TABLE jobs ADD COLUMN owner TEXT"),
                    damaged="delete jobs.db; past jobs are forgotten, nothing else is lost")
    db = connect(data_dir / "jobs.db", SCHEMA)     # creates, or migrates an older file forward

`PRAGMA user_version` holds how many migrations a file has had. Migration 1 of every database is the
schema as Lore wrote it before versions existed, with IF NOT EXISTS throughout, so a file from then
(version 0, tables present) takes it as a no-op and continues from there. Each migration runs in its
own write transaction together with the version bump: a crash leaves the file at the previous version,
and the next open runs it again. A file from a newer Lore (a version above the known migrations) is
refused rather than written with an older idea of its schema.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Union

from ingest.errors import StoreError, sqlite_unusable

Migration = Union[str, Callable[[sqlite3.Connection], None]]  # SQL statements, or a function of the connection


@dataclass(frozen=True, slots=True)
class Schema:
    """A database's name (for messages), its migrations in order, and what to do when the file is damaged."""

    name: str
    migrations: tuple[Migration, ...]
    damaged: str
    synchronous: str = "NORMAL"  # FULL where a lost last write matters more than write speed

    @property
    def version(self) -> int:
        return len(self.migrations)


def statements(sql: str) -> Iterator[str]:
    """The complete statements of a script, one by one (executescript would commit on its own)."""
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip().strip(";").strip():
                yield buf
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement: {buf.strip()[:80]!r}")


def connect(path: str | Path, schema: Schema, *, timeout: float = 30.0) -> sqlite3.Connection:
    """An open, migrated connection (autocommit mode: callers BEGIN their own transactions).

    Raises StoreError naming the file and the fix when it cannot be opened, is damaged or is newer.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=timeout)
    except (OSError, sqlite3.Error) as exc:
        raise sqlite_unusable(path, exc, schema.damaged) from exc
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={schema.synchronous}")
        migrate(db, schema, path)
    except (OSError, sqlite3.Error) as exc:
        db.close()
        raise sqlite_unusable(path, exc, schema.damaged) from exc
    except BaseException:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection, schema: Schema, path: str | Path = "") -> int:
    """Bring the file to `schema.version`; returns the version it had."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > schema.version:
        raise StoreError(f"{path or schema.name} was written by a newer Lore (its {schema.name} schema is "
                         f"version {found}, this Lore knows up to {schema.version}); upgrade Lore, or use a "
                         "data directory of this version")
    for number in range(found + 1, schema.version + 1):
        step = schema.migrations[number - 1]
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] >= number:  # another process got here first
                db.execute("ROLLBACK")
                continue
            if callable(step):
                step(db)
            else:
                for stmt in statements(step):
                    db.execute(stmt)
            db.execute(f"PRAGMA user_version={number}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return found
