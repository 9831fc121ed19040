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
import threading

import numpy as np

from ingest.access import Scope
from ingest.fts_postings import FtsPostings, PostingsSnapshot
from ingest.sqlite_store import SqliteStore, fts_tokens

K1, B = 1.2, 0.75  # FTS5's bm25() constants


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


class ReaderFts:
    """Keyword search over FTS5's postings scored with the reader's statistics; the in-memory index's twin.

    Reads one registry snapshot per search (`ingest.fts_postings`). Per registry generation it keeps every
    row's document and length; per search it reads the documents the scope admits (the store compiles
    the Scope) and each query term's occurrences, so its cost grows with the term's postings, as FTS5's
    own bm25() does.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._postings = FtsPostings(store.path)
        self._rows: tuple | None = None  # ((generation, store id), rowids sorted, doc position per row, length, doc ids)
        self._lock = threading.Lock()

    def search(self, query_terms: list[str], k: int, weights: tuple[float, float, float],
               scope: Scope) -> list[tuple[str, float]]:
        """The k best chunks `scope` admits, scored over the chunks its access reads, best first."""
        phrases = [t for t in fts_tokens(query_terms) if t]
        if not phrases:
            return []
        with self._lock, self._postings.snapshot() as snap:
            return self._search(snap, phrases, k, np.asarray(weights, np.float64), scope)

    def _search(self, snap: PostingsSnapshot, phrases, k, weights, scope: Scope) -> list[tuple[str, float]]:
        gen = snap.state()
        if self._rows is None or self._rows[0] != gen:
            self._rows = (gen, *snap.rows())
        _, rowids, doc_of, dl, doc_ids = self._rows
        readable = self._row_mask(snap.admitted(Scope(scope.access)), doc_ids, doc_of)
        n = int(readable.sum())
        if not n:
            return []
        allowed = readable & self._row_mask(snap.admitted(scope), doc_ids, doc_of) if scope.narrowed else readable
        avgdl = float(dl[readable].sum()) / n
        acc = np.zeros(len(rowids))
        hit = np.zeros(len(rowids), bool)
        for phrase in phrases:
            rows, cols = self._occurrences(snap, phrase)
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
        ids = snap.chunk_ids(rowids[cand].tolist())
        return [(ids[int(r)], float(acc[i])) for r, i in zip(rowids[cand], cand)]

    @staticmethod
    def _row_mask(ok: set[str], doc_ids: list[str], doc_of: np.ndarray) -> np.ndarray:
        return np.array([d in ok for d in doc_ids] + [False], bool)[doc_of]

    @staticmethod
    def _occurrences(snap: PostingsSnapshot, phrase: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(rowid, column) of every occurrence of the phrase: its tokens at consecutive offsets in one column."""
        got = snap.occurrences(phrase[0])
        if len(phrase) > 1:
            rest = [set(snap.occurrences(t)) for t in phrase[1:]]
            got = [(d, c, o) for d, c, o in got if all((d, c, o + j) in s for j, s in enumerate(rest, 1))]
        return (np.fromiter((g[0] for g in got), np.int64, len(got)),
                np.fromiter((g[1] for g in got), np.int64, len(got)))

    def close(self) -> None:
        self._postings.close()
