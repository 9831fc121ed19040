"""FTS5's postings and row sizes, read in one snapshot: what the keyword search with the reader's statistics
(`retriever/bm25.py`) scores from, so no SQL or table name of the registry leaves ingest."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ingest.access import Scope
from ingest.errors import sqlite_unusable
from ingest.sqlite_store import DAMAGED, admitted_doc_ids

_COLS = {"title": 0, "section": 1, "body": 2}  # chunks_fts's columns, in bm25()'s weight order


def _varints(blob: bytes) -> int:
    """Sum of the varints of an FTS5 docsize record (SQLite's varints: 7 bits a byte, high bits first):
    the row's tokens over all columns."""
    total = value = 0
    for byte in blob:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            total, value = total + value, 0
    return total


class FtsPostings:
    """A read-only connection to the registry's FTS5 index; `snapshot()` reads one committed state."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True,
                                 check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("CREATE VIRTUAL TABLE temp.lore_vocab USING fts5vocab(main, chunks_fts, instance)")
            self._db = db
        return self._db

    @contextmanager
    def snapshot(self) -> Iterator["PostingsSnapshot"]:
        """One read transaction; sqlite3's errors (also those of the caller's reads) leave as StoreError."""
        try:
            db = self._connect()
            db.execute("BEGIN")
            try:
                yield PostingsSnapshot(db)
            finally:
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:  # a damaged or unreadable lore.db: a storage error (503 / exit 5)
            self._db = None
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class PostingsSnapshot:
    """Reads of one snapshot (`FtsPostings.snapshot`)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def state(self) -> tuple[str, ...]:
        """(generation, store id): which registry state the snapshot holds."""
        return tuple(r[0] for r in self._db.execute(
            "SELECT value FROM meta WHERE key IN ('store_id', 'generation') ORDER BY key"))

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(FTS rowids ascending, document position per row, tokens per row over all columns, document ids)."""
        rows = self._db.execute("SELECT c.rowid, c.doc_id, s.sz FROM chunks c JOIN chunks_fts_docsize s "
                                "ON s.id = c.rowid ORDER BY c.rowid").fetchall()
        doc_pos: dict[str, int] = {}
        doc_of = np.fromiter((doc_pos.setdefault(r[1], len(doc_pos)) for r in rows), np.int64, len(rows))
        dl = np.fromiter((_varints(r[2]) for r in rows), np.float64, len(rows))
        return np.fromiter((r[0] for r in rows), np.int64, len(rows)), doc_of, dl, list(doc_pos)

    def admitted(self, scope: Scope) -> set[str]:
        """Ids of the documents `scope` admits, in this snapshot."""
        return set(admitted_doc_ids(self._db, scope))

    def occurrences(self, token: str) -> list[tuple[int, int, int]]:
        """(rowid, column 0-2 in bm25()'s weight order, token offset) of every occurrence of a token."""
        return [(d, _COLS[c], o) for d, c, o in
                self._db.execute("SELECT doc, col, offset FROM temp.lore_vocab WHERE term = ?", (token,))]

    def chunk_ids(self, rowids: list[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(rowids), 500):
            part = rowids[i:i + 500]
            out.update(self._db.execute(
                f"SELECT rowid, chunk_id FROM chunks WHERE rowid IN ({','.join('?' * len(part))})", part))
        return out
