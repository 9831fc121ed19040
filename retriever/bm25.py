"""BM25 with the reader's statistics: FTS5's bm25() formula, with the row count, document frequencies and
average row length taken over the chunks the principal may read (docs/decisions/0004, FILTERS.md).

Statistics over the whole registry would let a reader's scores and ranking move when documents it cannot
read are added (a hidden document full of a word lowers that word's IDF for everyone), which tells
the reader how often words occur in hidden documents. Over the readable chunks only, a reader gets
exactly the scores BM25 would give if the registry held only what it may read; with no ACLs in play
(a public corpus) they equal FTS5's own. Both keyword backends use them: the in-memory index
(`keyword_index.py`) and, while it is stale or off, `ReaderFts` below over FTS5's own postings.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path

import numpy as np

from ingest.errors import sqlite_unusable
from ingest.sqlite_store import DAMAGED, SqliteStore, fts_tokens
from ingest.access import Access
from retriever.filters import acl_where

K1, B = 1.2, 0.75  # FTS5's bm25() constants
_COLS = {"title": 0, "section": 1, "body": 2}  # chunks_fts's columns, in bm25()'s weight order


def idf(df, n: int) -> np.ndarray:
    """FTS5's IDF: log((N - n + 0.5) / (n + 0.5)), floored at 1e-6 so a very common term still counts.
    libm's log, as SQLite's, not numpy's vectorized one: a reader of everything gets FTS5's exact bits."""
    out = np.array([math.log((n - d + 0.5) / (d + 0.5)) for d in np.asarray(df, np.float64).tolist()], np.float64)
    out[out <= 0] = 1e-6
    return out


def contributions(tf: np.ndarray, dl: np.ndarray, term_idf, avgdl: float) -> np.ndarray:
    """bm25() per (phrase, row), in fts5_aux.c's order of operations:
    idf * ((tf * (k1 + 1)) / (tf + k1 * (1 - b + b * D / avgdl)))."""
    tf = np.asarray(tf, np.float64)
    return term_idf * ((tf * (K1 + 1.0)) / (tf + K1 * (1 - B + B * np.asarray(dl, np.float64) / avgdl)))


def _varints(blob: bytes) -> int:
    """Sum of the varints of an FTS5 docsize record (SQLite's varints: 7 bits a byte, high bits first):
    the row's tokens over all columns."""
    total = value = 0
    for byte in blob:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            total, value = total + value, 0
    return total


class ReaderFts:
    """Keyword search over FTS5's postings scored with the reader's statistics; the in-memory index's twin.

    Reads through its own read-only connection, one snapshot per search. Per registry generation it
    keeps every row's document and length (one pass over `chunks` and FTS5's docsize table); per search
    it reads the readable and matching documents (SQL over `documents`) and each query term's
    occurrences (`fts5vocab`), so its cost grows with the term's postings, as FTS5's own bm25() does.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._db: sqlite3.Connection | None = None
        self._rows: tuple | None = None  # ((generation, store id), rowids sorted, doc position per row, length, doc ids)
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(f"{Path(self.store.path).absolute().as_uri()}?mode=ro", uri=True,
                                 check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("CREATE VIRTUAL TABLE temp.lore_vocab USING fts5vocab(main, chunks_fts, instance)")
            self._db = db
        return self._db

    def search(self, query_terms: list[str], k: int, weights: tuple[float, float, float], access: Access,
               where: tuple[str, list] | None) -> list[tuple[str, float]]:
        """The k best chunks the reader may read that meet `where` (None: permissions only), best first."""
        phrases = [t for t in fts_tokens(query_terms) if t]
        if not phrases:
            return []
        with self._lock:
            try:
                db = self._connect()
                db.execute("BEGIN")
                try:
                    return self._search(db, phrases, k, np.asarray(weights, np.float64), access, where)
                finally:
                    db.execute("ROLLBACK")
            except sqlite3.Error as exc:  # a damaged or unreadable lore.db: a storage error (503 / exit 5)
                self._db = None
                raise sqlite_unusable(self.store.path, exc, DAMAGED) from exc

    def _search(self, db, phrases, k, weights, access, where) -> list[tuple[str, float]]:
        gen = tuple(r[0] for r in db.execute("SELECT value FROM meta WHERE key IN ('store_id', 'generation') ORDER BY key"))
        if self._rows is None or self._rows[0] != gen:
            self._rows = (gen, *self._read_rows(db))
        _, rowids, doc_of, dl, doc_ids = self._rows
        readable = self._row_mask(db, acl_where(access), doc_ids, doc_of)
        n = int(readable.sum())
        if not n:
            return []
        allowed = readable if where is None else readable & self._row_mask(db, where, doc_ids, doc_of)
        avgdl = float(dl[readable].sum()) / n
        acc = np.zeros(len(rowids))
        hit = np.zeros(len(rowids), bool)
        for phrase in phrases:
            rows, cols = self._occurrences(db, phrase)
            pos = np.searchsorted(rowids, rows)
            ok = (pos < len(rowids)) & (rowids[np.minimum(pos, len(rowids) - 1)] == rows)
            pos, cols = pos[ok], cols[ok]
            tf = np.bincount(pos, weights[cols], len(rowids))
            matched = np.bincount(pos, minlength=len(rowids)) > 0
            term_idf = idf(np.array([np.count_nonzero(matched & readable)], np.float64), n)[0]
            sel = np.flatnonzero(matched & allowed)
            acc[sel] += contributions(tf[sel], dl[sel], term_idf, avgdl)
            hit[sel] = True
        cand = np.flatnonzero(hit)
        if len(cand) > k:
            cand = cand[np.argpartition(-acc[cand], k - 1)[:k]]
        cand = cand[np.lexsort((cand, -acc[cand]))]
        ids = self._chunk_ids(db, rowids[cand].tolist())
        return [(ids[int(r)], float(acc[i])) for r, i in zip(rowids[cand], cand)]

    @staticmethod
    def _read_rows(db) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        rows = db.execute("SELECT c.rowid, c.doc_id, s.sz FROM chunks c JOIN chunks_fts_docsize s ON s.id = c.rowid "
                          "ORDER BY c.rowid").fetchall()
        doc_pos: dict[str, int] = {}
        doc_of = np.fromiter((doc_pos.setdefault(r[1], len(doc_pos)) for r in rows), np.int64, len(rows))
        dl = np.fromiter((_varints(r[2]) for r in rows), np.float64, len(rows))
        return np.fromiter((r[0] for r in rows), np.int64, len(rows)), doc_of, dl, list(doc_pos)

    @staticmethod
    def _row_mask(db, where: tuple[str, list], doc_ids: list[str], doc_of: np.ndarray) -> np.ndarray:
        cond, params = where
        ok = {r[0] for r in db.execute(f"SELECT d.doc_id FROM documents d WHERE {cond}", params)}
        return np.array([d in ok for d in doc_ids] + [False], bool)[doc_of]

    @staticmethod
    def _occurrences(db, phrase: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(rowid, column) of every occurrence of the phrase: its tokens at consecutive offsets in one column."""
        got = db.execute("SELECT doc, col, offset FROM temp.lore_vocab WHERE term = ?", (phrase[0],)).fetchall()
        if len(phrase) > 1:
            rest = [set(db.execute("SELECT doc, col, offset FROM temp.lore_vocab WHERE term = ?", (t,)).fetchall())
                    for t in phrase[1:]]
            got = [(d, c, o) for d, c, o in got if all((d, c, o + j) in s for j, s in enumerate(rest, 1))]
        return (np.fromiter((g[0] for g in got), np.int64, len(got)),
                np.fromiter((_COLS[g[1]] for g in got), np.int64, len(got)))

    @staticmethod
    def _chunk_ids(db, rowids: list[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for i in range(0, len(rowids), 500):
            part = rowids[i:i + 500]
            out.update(db.execute(f"SELECT rowid, chunk_id FROM chunks WHERE rowid IN ({','.join('?' * len(part))})", part))
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
