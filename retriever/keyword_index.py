"""In-memory BM25 over the registry's chunks: an accelerator for the FTS5 keyword search (decision 0004).

FTS5 stays the source of truth. An index is built from one registry snapshot, records that snapshot's
generation, and serves a search only while the registry is still at that generation. It scores with
FTS5's own bm25() (same tokens, IDF, field weights and row lengths), so both rank alike, and it applies
permissions and filters as a mask before choosing the top k.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import zlib
from array import array
from collections import Counter
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ingest.errors import ConfigError
from ingest.keywords import query_terms
from ingest.types import DEFAULT_ACL_MARK
from ingest.sqlite_store import SqliteStore, fts_tokens
from retriever.bm25 import contributions, idf
from ingest.access import Access, Scope

log = logging.getLogger(__name__)
Mode = Literal["auto", "memory", "fts5"]
FORMAT = 2  # of the persisted folder; bump when the layout or the scoring changes (2: tf and row lengths)
BITSET_SHARE = 1 / 64  # ACL tokens granting at least this share of chunks get a bitset, the rest a position list
SYNC_BUILD_MAX_CHUNKS = 5_000  # rebuilt inside the search up to this size (about 0.5 s), larger in the background
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits: unicode61's token characters, as ingest/keywords.py splits
_TOKENS: dict[str, tuple[str, ...]] = {}  # surface word -> FTS5 tokens, shared by every index in the process
_BUILDS: list[threading.Thread] = []  # background builds of this process


@atexit.register
def _finish_builds() -> None:
    """A process that started a build (the CLI's one search) saves it before exiting: the next one loads it."""
    for t in _BUILDS:
        t.join(timeout=600)


def _tokens(words: Sequence[str]) -> list[tuple[str, ...]]:
    """FTS5's tokens for each word, asked of SQLite once per distinct word."""
    known = {w: t for w in words if (t := _TOKENS.get(w)) is not None}
    new = [w for w in dict.fromkeys(words) if w not in known]
    if new:
        if len(_TOKENS) > 2_000_000:  # a bound for long-lived processes; other threads keep their `known`
            _TOKENS.clear()
        known.update(zip(new, fts_tokens(new)))
        _TOKENS.update((w, known[w]) for w in new)
    return [known[w] for w in words]


def _words(text: str) -> list[str]:
    # NFC first, so a combining accent stays inside its word as it does for unicode61
    return _WORD.findall(text if text.isascii() else unicodedata.normalize("NFC", text))


class KeywordIndex:
    """BM25 postings (term -> chunk positions and scores) and ACL grants of one registry generation."""

    def __init__(self, meta: dict, arrays: dict[str, np.ndarray], strings: dict[str, list[str]]) -> None:
        self.meta = meta
        self.store_id, self.generation = meta["store_id"], meta["generation"]
        self.weights = tuple(meta["weights"])
        self.terms, self.chunk_ids = strings["terms"], strings["chunk_ids"]
        self.doc_ids, self.acl_tokens = strings["doc_ids"], strings["acl_tokens"]
        a = arrays
        self.indptr, self.indices, self.scores = a["indptr"], a["indices"], a["scores"]
        self.tf = a["tf"]  # field-weighted term frequency per posting: scores with the reader's statistics
        self.chunk_doc, self.acl_ptr, self.acl_pos = a["chunk_doc"], a["acl_ptr"], a["acl_pos"]
        self.dl = a["dl"]  # tokens per row, all fields: bm25()'s D
        self.n = n = len(self.chunk_ids)
        ok = (len(self.indptr) == len(self.terms) + 1 and self.indptr[0] == 0 and self.indptr[-1] == len(self.indices)
              == len(self.scores) == len(self.tf) and bool(np.all(np.diff(self.indptr) >= 0))
              and len(self.chunk_doc) == n == len(self.dl)
              and len(self.acl_ptr) == len(self.acl_tokens) + 1 and self.acl_ptr[-1] == len(self.acl_pos)
              and (not len(self.indices) or 0 <= self.indices.min() and self.indices.max() < n)
              and (not n or 0 <= self.chunk_doc.min() and self.chunk_doc.max() <= len(self.doc_ids))
              and (not len(self.acl_pos) or 0 <= self.acl_pos.min() and self.acl_pos.max() < n))
        if not ok:
            raise ValueError("keyword index arrays are inconsistent")
        self.term_ids = {t: i for i, t in enumerate(self.terms)}
        self.doc_pos = {d: i for i, d in enumerate(self.doc_ids)}  # position len(doc_ids): chunks without a row
        self._bits: dict[str, np.ndarray] = {}
        self._lists: dict[str, np.ndarray] = {}
        self._chunk_pos: dict[str, int] | None = None  # built on first use by the dense search's check
        for i, tok in enumerate(self.acl_tokens):
            pos = self.acl_pos[self.acl_ptr[i]:self.acl_ptr[i + 1]]
            if len(pos) >= BITSET_SHARE * n:
                bits = np.zeros(n, bool)
                bits[pos] = True
                self._bits[tok] = bits
            else:
                self._lists[tok] = pos
        self._zero_weight = min(self.weights) == 0  # a row matching only a zero-weight field scores 0 but matches

    # -- building and persisting ---------------------------------------------------------------------
    @classmethod
    def build(cls, store: SqliteStore, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> "KeywordIndex":
        """Read one registry snapshot and compute FTS5's bm25() contribution of every (term, chunk)."""
        from scipy import sparse

        t0 = time.perf_counter()
        with store.keyword_corpus() as corpus:
            docs, grants = corpus.documents(), corpus.grants()
            doc_pos = {d: i for i, (d, _, _) in enumerate(docs)}
            vocab: dict[str, int] = {}

            def ids(text: str) -> list[int]:
                ws = _words(text)
                known = [vocab.get(w, -1) for w in ws]
                if -1 in known:
                    return [vocab.setdefault(w, len(vocab)) for w in ws]
                return known

            title_ids: dict[int, list[int]] = {}
            chunk_ids: list[str] = []
            chunk_doc = array("i")
            occ = [array("i") for _ in range(3)]  # word ids per field (title, section, body), chunk after chunk
            lens = [array("i") for _ in range(3)]
            for cid, did, section, text in corpus.chunks():
                d = doc_pos.get(did, len(docs))
                chunk_ids.append(cid)
                chunk_doc.append(d)
                if d not in title_ids:
                    title_ids[d] = ids(docs[d][1]) if d < len(docs) else []
                for f, got in enumerate((title_ids[d], ids(section), ids(text))):
                    occ[f].extend(got)
                    lens[f].append(len(got))
            generation = corpus.generation
        n = len(chunk_ids)
        words = list(vocab)
        toks = _tokens(words)
        term_of: dict[str, int] = {}
        wlen = np.fromiter((len(t) for t in toks), np.int64, len(toks))
        wflat = np.fromiter((term_of.setdefault(x, len(term_of)) for t in toks for x in t), np.int32, int(wlen.sum()))
        wstart = np.cumsum(wlen) - wlen
        simple = bool(np.all(wlen == 1))  # the usual case: every word is one token
        rows, cols, vals = [], [], []
        dl = np.zeros(n, np.float64)
        for f, w in enumerate(weights):
            occ_w = _np(occ[f])
            chunk = np.repeat(np.arange(n, dtype=np.int32), _np(lens[f]))
            if simple:
                term = wflat[occ_w]
            else:  # a word may be several FTS5 tokens (or none)
                reps = wlen[occ_w]
                chunk = np.repeat(chunk, reps)
                first = np.repeat(wstart[occ_w], reps)
                term = wflat[first + np.arange(len(first)) - np.repeat(np.cumsum(reps) - reps, reps)]
            occ[f] = lens[f] = array("i")
            dl += np.bincount(chunk, minlength=n)  # FTS5's row length counts every column, unweighted
            rows.append(term)
            cols.append(chunk)
            vals.append(np.full(len(term), w, np.float32))
        coo = [np.concatenate(x) for x in (vals, rows, cols)]
        del rows, cols, vals
        nterms = len(term_of)
        m = sparse.csr_matrix((coo[0], (coo[1], coo[2])), shape=(nterms, n))
        del coo
        m.sum_duplicates()
        df = np.diff(m.indptr)
        avgdl = dl.sum() / n if n else 1.0
        scores = contributions(m.data, dl[m.indices], np.repeat(idf(df, n), df), avgdl)
        grants_by_token: dict[str, list[int]] = {}
        for did, tok in grants:
            if tok != DEFAULT_ACL_MARK and did in doc_pos:  # a stored marker is malformed: it grants nothing
                grants_by_token.setdefault(tok, []).append(doc_pos[did])
        no_acl = [i for i, (_, _, empty) in enumerate(docs) if empty]
        if no_acl:
            grants_by_token[DEFAULT_ACL_MARK] = no_acl
        cd = _np(chunk_doc)
        order = np.argsort(cd, kind="stable").astype(np.int32)
        bounds = np.searchsorted(cd[order], np.arange(len(docs) + 1))
        acl_tokens = sorted(grants_by_token)
        acl_lists = [np.sort(np.concatenate([order[bounds[d]:bounds[d + 1]] for d in grants_by_token[t]]))
                     for t in acl_tokens]
        acl_ptr = np.concatenate([[0], np.cumsum([len(x) for x in acl_lists], dtype=np.int64)]).astype(np.int64)
        arrays = {"indptr": m.indptr.astype(np.int64), "indices": m.indices.astype(np.int32),
                  "scores": scores.astype(np.float32), "chunk_doc": cd.copy(), "acl_ptr": acl_ptr,
                  "tf": m.data.astype(np.float32), "dl": dl.astype(np.float32),
                  "acl_pos": np.concatenate(acl_lists).astype(np.int32) if acl_lists else np.zeros(0, np.int32)}
        strings = {"terms": list(term_of), "chunk_ids": chunk_ids, "doc_ids": [d for d, _, _ in docs],
                   "acl_tokens": acl_tokens}
        meta = {"format": FORMAT, "store_id": store.store_id, "generation": generation, "weights": list(weights),
                "chunks": n, "docs": len(docs), "terms": nterms, "postings": int(m.nnz)}
        idx = cls(meta, arrays, strings)
        log.info("keyword index: %d chunks, %d terms, %d postings built in %.1f s (generation %d)",
                 n, nterms, m.nnz, time.perf_counter() - t0, generation)
        return idx

    @staticmethod
    def folder_name(store_id: str, generation: int, weights: Sequence[float]) -> str:
        key = hashlib.sha256(json.dumps([FORMAT, [float(w) for w in weights]]).encode()).hexdigest()[:8]
        return f"{store_id}-g{generation}-{key}"

    def save(self, root: Path) -> Path:
        """Write under `root` (a temp folder renamed into place, so readers never see half an index)."""
        final = root / self.folder_name(self.store_id, self.generation, self.weights)
        if final.exists():
            return final
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            files = {}
            for name in ("indptr", "indices", "scores", "chunk_doc", "acl_ptr", "acl_pos", "tf", "dl"):
                arr = np.ascontiguousarray(getattr(self, name))
                _write(tmp / f"{name}.npy", lambda fh: np.save(fh, arr, allow_pickle=False))
                files[name] = [str(arr.dtype), list(arr.shape), zlib.crc32(arr.view(np.uint8).data)]
            blob = json.dumps({"terms": self.terms, "chunk_ids": self.chunk_ids, "doc_ids": self.doc_ids,
                               "acl_tokens": self.acl_tokens}).encode()
            _write(tmp / "strings.json", lambda fh: fh.write(blob))
            manifest = {**self.meta, "files": files, "strings_crc": zlib.crc32(blob)}
            _write(tmp / "manifest.json", lambda fh: fh.write(json.dumps(manifest).encode()))
            os.rename(tmp, final)
            _fsync_dir(root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not final.exists():  # else another process saved the same index first: fine
                raise
        return final

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        """Read a saved index; raises ValueError or OSError when any part is missing, torn or altered."""
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')} is not {FORMAT}")
        arrays = {}
        for name, (dtype, shape, crc) in manifest["files"].items():
            arr = np.load(folder / f"{name}.npy", allow_pickle=False)
            if str(arr.dtype) != dtype or list(arr.shape) != shape or zlib.crc32(arr.view(np.uint8).data) != crc:
                raise ValueError(f"{name}.npy does not match the manifest")
            arrays[name] = arr
        blob = (folder / "strings.json").read_bytes()
        if zlib.crc32(blob) != manifest["strings_crc"]:
            raise ValueError("strings.json does not match the manifest")
        meta = {k: v for k, v in manifest.items() if k not in ("files", "strings_crc")}
        return cls(meta, arrays, json.loads(blob))

    # -- searching -----------------------------------------------------------------------------------
    def positions(self, chunk_ids: Sequence[str]) -> np.ndarray:
        """Index positions of chunk ids; -1 for an id this generation does not hold (superseded, deleted)."""
        if self._chunk_pos is None:
            self._chunk_pos = {c: i for i, c in enumerate(self.chunk_ids)}
        get = self._chunk_pos.get
        return np.fromiter((get(c, -1) for c in chunk_ids), dtype=np.int64, count=len(chunk_ids))

    def permitted(self, access: Access, doc_ids: Sequence[str] | None = None) -> np.ndarray:
        """Chunk mask: readable through one of the principal's tokens and, if given, in one of `doc_ids`."""
        mask = np.zeros(self.n, bool)
        for tok in access.tokens:  # includes the default-ACL marker when the default admits the principal
            if (bits := self._bits.get(tok)) is not None:
                mask |= bits
            elif (pos := self._lists.get(tok)) is not None:
                mask[pos] = True
        if doc_ids is not None:
            docs = np.zeros(len(self.doc_ids) + 1, bool)
            docs[[p for d in doc_ids if (p := self.doc_pos.get(d)) is not None]] = True
            mask &= docs[self.chunk_doc]
        return mask

    def search(self, query: str, k: int, allowed: np.ndarray,
               readable: np.ndarray | None = None) -> list[tuple[str, float]] | None:
        """The k best allowed chunks for FTS5's OR query of the query terms, as (chunk id, -bm25), best first.

        BM25's statistics (row count, document frequencies, average row length) are those of the
        `readable` chunks (retriever/bm25.py), or of every chunk when None (FTS5's own bm25()).
        None when the query holds a term FTS5 would match as a phrase (several tokens): FTS5 answers it.
        """
        terms = query_terms(query)
        tids = []
        for toks in _tokens(terms):
            if len(toks) > 1:
                return None
            if toks and (t := self.term_ids.get(toks[0])) is not None:
                tids.append(t)  # twice if two query words share a stem: FTS5 scores each phrase
        if not tids or not self.n:
            return []
        spans = [slice(self.indptr[t], self.indptr[t + 1]) for t in tids]
        rows = np.concatenate([self.indices[s] for s in spans])
        scores = np.concatenate([self.scores[s] for s in spans])
        if readable is not None:  # the reader's statistics: integer counts and sums, so exact in any order
            n = int(np.count_nonzero(readable))
            if not n:
                return []
            lens = np.array([s.stop - s.start for s in spans])
            df = np.array([np.count_nonzero(readable[self.indices[s]]) for s in spans], np.float64)
            avgdl = float(self.dl[readable].sum(dtype=np.float64)) / n
            tf = np.concatenate([self.tf[s] for s in spans])
            scores = contributions(tf, self.dl[rows].astype(np.float64), np.repeat(idf(df, n), lens), avgdl)
        acc = np.bincount(rows, scores, self.n)
        if self._zero_weight:
            cand = np.flatnonzero((np.bincount(rows, minlength=self.n) > 0) & allowed)
        else:
            acc *= allowed  # the mask comes before the top k: a forbidden chunk scores 0 and never competes
            cand = np.flatnonzero(acc)  # every allowed matching row scores > 0 (IDF >= 1e-6)
        if len(cand) > k:
            cand = cand[np.argpartition(-acc[cand], k - 1)[:k]]
        cand = cand[np.lexsort((cand, -acc[cand]))]
        return [(self.chunk_ids[i], float(acc[i])) for i in cand]


class KeywordAccelerator:
    """Serves keyword searches from a KeywordIndex while it matches the registry's generation.

    Modes: `memory` always keeps an index, `fts5` never does, `auto` only once the registry holds
    `min_chunks` chunks. A stale index is never used: the search returns None and the caller asks FTS5,
    while a new index is loaded from `folder` (saved by any process) or built, inside the search for a
    small registry, else in one background thread.

    >>> acc = KeywordAccelerator(store, data_dir / "keyword-index", mode="memory")
    >>> acc.search("pto carry over", 100, access)  # -> [(chunk_id, score), ...] or None
    """

    def __init__(self, store: SqliteStore, folder: Path | None = None,
                 weights: tuple[float, float, float] = (1.0, 1.0, 1.0), mode: Mode = "auto",
                 min_chunks: int = 5_000, sync_max_chunks: int = SYNC_BUILD_MAX_CHUNKS) -> None:
        if mode not in ("auto", "memory", "fts5"):
            raise ConfigError(f"keyword index mode must be auto, memory or fts5, got {mode!r}")
        if min_chunks < 0 or sync_max_chunks < 0:
            raise ConfigError(f"keyword index min_chunks and sync_max_chunks must be >= 0, got {min_chunks}, "
                              f"{sync_max_chunks}")
        self.store, self.folder, self.mode = store, folder, mode
        self.weights: tuple[float, float, float] = weights
        self.min_chunks, self.sync_max_chunks = min_chunks, sync_max_chunks
        self.served: Counter[str] = Counter()  # searches answered per backend: memory, fts5
        self._index: KeywordIndex | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._skip: int | None = None  # a generation not to index: below min_chunks in auto mode, or a failed build

    def search(self, query: str, k: int, scope: Scope) -> list[tuple[str, float]] | None:
        """The k best chunks `scope` admits, scored with the statistics of what its access reads, or None:
        answer with FTS5 (index stale or building, or a phrase).

        Permissions are the index's own mask; filters beyond them come from the registry as the documents
        the scope admits (the store compiles the Scope).
        """
        idx = self.current()
        got = None
        if idx is not None:
            readable = idx.permitted(scope.access)
            allowed = idx.permitted(scope.access, self.store.doc_ids_in(scope)) if scope.narrowed else readable
            got = idx.search(query, k, allowed, readable)
        self.served["memory" if got is not None else "fts5"] += 1
        return got

    def current(self) -> KeywordIndex | None:
        """The index of the registry's current generation, or None (and a load or rebuild gets under way)."""
        if self.mode == "fts5":
            return None
        gen = self.store.generation()
        idx = self._index
        if idx is not None and idx.generation == gen and idx.store_id == self.store.store_id:
            return idx
        return self._refresh(gen, wait=False)

    def prepare(self) -> KeywordIndex | None:
        """Load or build the index for the current generation now, whatever the size (warm-up, benchmarks)."""
        if self.mode == "fts5":
            return None
        self._refresh(self.store.generation(), wait=True)
        return self.current()

    def _refresh(self, gen: int, wait: bool) -> KeywordIndex | None:
        with self._lock:
            idx = self._index
            if idx is not None and idx.generation == gen and idx.store_id == self.store.store_id:
                return idx
            if gen == self._skip:
                return None
            busy = self._thread is not None and self._thread.is_alive()
            if not busy:
                n = self.store.counts()[1]
                if self.mode == "auto" and n < self.min_chunks:
                    self._skip = gen
                    return None
                if (idx := self._load(gen)) is not None:
                    self._index = idx
                    return idx
                if wait or n <= self.sync_max_chunks:
                    self._build(gen)
                    idx = self._index
                    return idx if idx is not None and idx.generation == gen else None
                self._thread = threading.Thread(target=self._build, args=(gen,), name="keyword-index", daemon=True)
                self._thread.start()
                _BUILDS[:] = [t for t in _BUILDS if t.is_alive()] + [self._thread]
            thread = self._thread
        if wait and thread is not None:
            thread.join()
        return None

    def _build(self, gen: int) -> None:
        try:
            idx = KeywordIndex.build(self.store, self.weights)
        except Exception:  # an accelerator must never break search: FTS5 answers instead
            log.exception("keyword index build failed at generation %d; searches use FTS5", gen)
            self._skip = gen
            return
        if self._index is None or self._index.generation <= idx.generation:
            self._index = idx
        if self.folder is not None:
            try:
                idx.save(self.folder)
                self._prune(keep=self.folder / KeywordIndex.folder_name(idx.store_id, idx.generation, self.weights))
            except OSError as exc:
                log.warning("could not save the keyword index under %s (%s); it is rebuilt next process", self.folder, exc)

    def _load(self, gen: int) -> KeywordIndex | None:
        if self.folder is None:
            return None
        path = self.folder / KeywordIndex.folder_name(self.store.store_id, gen, self.weights)
        if not path.is_dir():
            return None
        try:
            idx = KeywordIndex.load(path)
            if (idx.store_id, idx.generation, idx.weights) != (self.store.store_id, gen, self.weights):
                raise ValueError("it belongs to another registry state")
        except Exception as exc:  # torn, truncated, altered, or of another format: never trusted
            log.warning("ignoring the saved keyword index %s (%s); rebuilding", path, exc)
            shutil.rmtree(path, ignore_errors=True)
            return None
        self._prune(keep=path)
        return idx

    def _prune(self, keep: Path) -> None:
        """Remove saved indexes older than `keep` or of another registry, and temp folders of crashed writers."""
        store_id, gen = keep.name.split("-")[0], int(keep.name.split("-")[1][1:])
        for p in keep.parent.iterdir() if keep.parent.is_dir() else ():
            parts = p.name.split("-")
            try:
                if p.name.startswith(".tmp-"):
                    old = time.time() - p.stat().st_mtime > 3600
                else:
                    old = (parts[0] != store_id or len(parts) != 3 or not parts[1][1:].isdigit()
                           or int(parts[1][1:]) < gen)
                if old:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:  # removed meanwhile by another process
                continue


def _np(a: array) -> np.ndarray:
    return np.frombuffer(a, np.int32) if len(a) else np.zeros(0, np.int32)


def _write(path: Path, put) -> None:
    with open(path, "wb") as fh:
        put(fh)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
