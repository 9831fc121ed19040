"""The document registry, chunk table, FTS5 keyword index and embedding cache, in one SQLite file.

SQLite is the source of truth: a document version becomes visible in one transaction that swaps its
registry row, chunk rows and keyword postings together, so readers never see half a version.
"""

from __future__ import annotations

import functools
import inspect
import json
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ingest.access import Scope
from ingest.errors import DocumentNotFound, StoreError, sqlite_unusable
from ingest.sqlite_db import Schema, migrate
from ingest.types import DEFAULT_ACL_MARK, Chunk, SourceDoc

SCHEMA_VERSION = 1  # the `meta` row of files from before migrations; ingest/sqlite_db.py counts now
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, uri TEXT NOT NULL, title TEXT NOT NULL, doc_type TEXT NOT NULL,
    version TEXT NOT NULL, updated_at TEXT NOT NULL, ingested_at TEXT NOT NULL, acl TEXT NOT NULL,
    size INTEGER NOT NULL, chunk_count INTEGER NOT NULL, fingerprint TEXT NOT NULL,
    text TEXT NOT NULL, front_matter TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS documents_uri ON documents(uri);
CREATE TABLE IF NOT EXISTS doc_acl (doc_id TEXT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (token, doc_id));
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL,
    version TEXT NOT NULL, ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    section TEXT NOT NULL, page_start INTEGER, page_end INTEGER, content_hash TEXT NOT NULL,
    token_count INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, section, body, tokenize = '@TOKENIZER'
);
CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (name TEXT PRIMARY KEY, original TEXT NOT NULL);
""".replace("@TOKENIZER", FTS_TOKENIZER)
# migration 2 (issue 18): who keeps each document, and which source (and id in it) it was synced from
_OWNERS = """
ALTER TABLE documents ADD COLUMN owners TEXT NOT NULL DEFAULT '[]';
ALTER TABLE documents ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
CREATE INDEX documents_source ON documents(source, external_id);
"""
# migration 3: what folder ingest stored before it became the files source is the files source's
# (ingest/sources/files.py): its ids already were the paths' ids, so only the labels change
_FILES = """
UPDATE documents SET source = 'files', external_id = uri WHERE source = '';
"""
DAMAGED = ("move it aside (keep it for a later restore) and ingest your documents again, or restore lore.db "
           "from a backup")
SCHEMA = Schema("registry", (_SCHEMA, _OWNERS, _FILES), DAMAGED)
_DOC_COLS = ("doc_id, uri, title, doc_type, version, updated_at, ingested_at, acl, size, chunk_count, owners, source, "
             "external_id")
_CHUNK_COLS = 'chunk_id, doc_id, version, ordinal, text, section, page_start, page_end, start, "end", content_hash, token_count'


def _doc(row: sqlite3.Row) -> SourceDoc:
    return SourceDoc(id=row[0], uri=row[1], title=row[2], doc_type=row[3], version=row[4],
                     updated_at=row[5], ingested_at=row[6], acl=tuple(json.loads(row[7])),
                     size=row[8], chunk_count=row[9], owners=tuple(json.loads(row[10])), source=row[11],
                     external_id=row[12])


def _chunk(row: sqlite3.Row) -> Chunk:
    return Chunk(id=row[0], doc_id=row[1], version=row[2], ordinal=row[3], text=row[4],
                 section=tuple(json.loads(row[5])), page_start=row[6], page_end=row[7],
                 start=row[8], end=row[9], content_hash=row[10], token_count=row[11])


def scope_sql(scope: Scope | None) -> tuple[str, list]:
    """The SQL condition over a `documents d` row admitting exactly what `scope` admits (None: every row)."""
    if scope is None:
        return "1", []
    real = [t for t in scope.access.tokens if t != DEFAULT_ACL_MARK]
    conds = [f"(EXISTS (SELECT 1 FROM doc_acl a WHERE a.doc_id = d.doc_id AND a.token IN ({','.join('?' * len(real))}))"
             + (" OR d.acl = '[]')" if DEFAULT_ACL_MARK in scope.access.tokens else ")")]
    params: list = list(real)
    f = scope.filters
    if f.doc_types:
        conds.append(f"d.doc_type IN ({','.join('?' * len(f.doc_types))})")
        params += list(f.doc_types)
    if (ids := scope.ids) is not None:
        conds.append(f"d.doc_id IN ({','.join('?' * len(ids))})" if ids else "0")
        params += list(ids)
    if scope.path_prefix:  # substr, not LIKE: LIKE ignores ASCII case and reads _ and % as wildcards
        conds.append("substr(d.uri, 1, length(?)) = ?")
        params += [scope.path_prefix, scope.path_prefix]
    if f.updated_after:
        conds.append("unixepoch(d.updated_at) >= ?")
        params.append(int(f.updated_after.timestamp()))
    if f.updated_before:
        conds.append("unixepoch(d.updated_at) <= ?")
        params.append(int(f.updated_before.timestamp()))
    for k, v in f.metadata:  # SQLite says true = 1 = 1.0: compare the JSON type too, as Chroma does
        jt = ("'true','false'" if isinstance(v, bool) else "'integer'" if isinstance(v, int)
              else "'real'" if isinstance(v, float) else "'text'")
        conds.append(f"json_type(d.front_matter, ?) IN ({jt}) AND json_extract(d.front_matter, ?) = ?")
        params += [f"$.{k}", f"$.{k}", v]
    return " AND ".join(conds), params


def admitted_doc_ids(db: sqlite3.Connection, scope: Scope) -> list[str]:
    """Ids of the documents `scope` admits, read through `db` (a registry connection, in its snapshot)."""
    cond, params = scope_sql(scope)
    return [r[0] for r in db.execute(f"SELECT d.doc_id FROM documents d WHERE {cond}", params)]


def _translated(cls):
    """Wrap each public method of the store so sqlite3's errors leave it as StoreError (see SqliteStore)."""
    def guard(fn):
        @functools.wraps(fn)
        def call(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise sqlite_unusable(self.path, exc, DAMAGED) from exc
        return call

    for name, fn in list(vars(cls).items()):
        if inspect.isfunction(fn) and not name.startswith("_") and name not in ("close", "keyword_corpus"):
            setattr(cls, name, guard(fn))
    return cls


@_translated
class SqliteStore:
    """Registry + keyword index + embedding cache. One writer at a time; readers see committed state.

    Every public method raises StoreError, never sqlite3's errors: a damaged page can surface at any
    query, and the message says whether the file is damaged or the data directory is read-only.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                       timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc
        try:
            self._open()
        except (OSError, sqlite3.Error) as exc:
            self._db.close()
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc
        except StoreError:
            self._db.close()
            raise

    def _open(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        migrate(self._db, SCHEMA, self.path)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema {row[0]} is not {SCHEMA_VERSION}; re-ingest into a new LORE_DATA_DIR")
        # the registry generation: bumped by every write that changes documents or chunks, so caches built
        # from one generation (the in-memory keyword index) know when they are stale; the id tells
        # registries apart, so a cache of a deleted and re-created database is never taken for current
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        self.store_id: str = self._db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. One that changes documents or chunks must call `_bump` inside it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def generation(self) -> int:
        """How many committed writes have changed documents or chunks (any process)."""
        return int(self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    # -- registry ------------------------------------------------------------------------------
    def get_document(self, doc_id: str) -> SourceDoc | None:
        row = self._db.execute(f"SELECT {_DOC_COLS} FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return _doc(row) if row else None

    def require_document(self, doc_id: str) -> SourceDoc:
        doc = self.get_document(doc_id)
        if doc is None:
            raise DocumentNotFound(f"no document with id {doc_id!r}; list ids with 'lore docs'")
        return doc

    def fingerprint(self, doc_id: str) -> tuple[str, str] | None:
        """(version, pipeline fingerprint) of the stored document, for skipping unchanged files."""
        row = self._db.execute("SELECT version, fingerprint FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def documents(self) -> list[SourceDoc]:
        return [_doc(r) for r in self._db.execute(f"SELECT {_DOC_COLS} FROM documents ORDER BY uri")]

    def source_documents(self, source: str) -> dict[str, tuple[SourceDoc, str]]:
        """A source's stored documents by external id, each with its pipeline fingerprint."""
        rows = self._db.execute(f"SELECT {_DOC_COLS}, fingerprint FROM documents WHERE source=?", (source,))
        return {r[12]: (_doc(r), r[13]) for r in rows}

    def doc_ids_under(self, prefix: str) -> list[str]:
        """Ids of documents whose uri lies under a folder path (prefix ends with a separator)."""
        return self.doc_ids_with_prefix(prefix)

    def doc_ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids of documents whose uri starts with `prefix` (any string, not only a folder)."""
        # substr, not LIKE: LIKE ignores ASCII case, and /KB/Policies is not /kb/policies
        return [r[0] for r in self._db.execute(
            "SELECT doc_id FROM documents WHERE substr(uri, 1, length(?)) = ?", (prefix, prefix))]

    def document_text(self, doc_id: str) -> str:
        row = self._db.execute("SELECT text FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        if row is None:
            raise DocumentNotFound(f"no document with id {doc_id!r}; list ids with 'lore docs'")
        return row[0]

    def chunks(self, doc_id: str) -> list[Chunk]:
        return [_chunk(r) for r in self._db.execute(
            f"SELECT {_CHUNK_COLS} FROM chunks WHERE doc_id=? ORDER BY ordinal", (doc_id,))]

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = f"SELECT {_CHUNK_COLS} FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})"
            out.update((r[0], _chunk(r)) for r in self._db.execute(q, part))
        return out

    def permitted_chunks(self, chunk_ids: Sequence[str], scope: Scope | None = None) -> set[str]:
        """The ids among `chunk_ids` that are current and whose document `scope` admits (None: any)."""
        cond, params = scope_sql(scope)
        out: set[str] = set()
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = (f"SELECT c.chunk_id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
                 f"WHERE c.chunk_id IN ({','.join('?' * len(part))}) AND ({cond})")
            out.update(r[0] for r in self._db.execute(q, (*part, *params)))
        return out

    def chunk_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT chunk_id FROM chunks")}

    def count_chunks(self, scope: Scope) -> int:
        """How many current chunks `scope` admits."""
        cond, params = scope_sql(scope)
        return self._db.execute("SELECT count(*) FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
                                f"WHERE {cond}", params).fetchone()[0]

    def counts(self) -> tuple[int, int]:
        d = self._db.execute("SELECT count(*) FROM documents").fetchone()[0]
        c = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return d, c

    def replace_document(self, doc: SourceDoc, text: str, chunks: Sequence[Chunk], fingerprint: str,
                         front_matter: dict | None = None) -> list[str]:
        """Atomically make `doc` with `chunks` the current version; return the old version's chunk ids."""
        with self._tx() as db:
            self._bump(db)
            old = self._drop(db, doc.id)
            db.execute(
                f"INSERT INTO documents ({_DOC_COLS}, fingerprint, text, front_matter) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (doc.id, doc.uri, doc.title, doc.doc_type, doc.version, doc.updated_at, doc.ingested_at,
                 json.dumps(list(doc.acl)), doc.size, len(chunks), json.dumps(list(doc.owners)), doc.source,
                 doc.external_id, fingerprint, text, json.dumps(front_matter or {}, default=str)))
            db.executemany("INSERT INTO doc_acl VALUES (?,?)", [(doc.id, t) for t in doc.acl])
            for c in chunks:
                cur = db.execute(
                    "INSERT INTO chunks (chunk_id, doc_id, version, ordinal, start, \"end\", section, page_start,"
                    " page_end, content_hash, token_count, text) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (c.id, c.doc_id, c.version, c.ordinal, c.start, c.end, json.dumps(list(c.section)),
                     c.page_start, c.page_end, c.content_hash, c.token_count, c.text))
                db.execute("INSERT INTO chunks_fts (rowid, title, section, body) VALUES (?,?,?,?)",
                           (cur.lastrowid, doc.title, " ".join(c.section), c.text))
        return old

    def delete_document(self, doc_id: str) -> list[str]:
        """Remove a document and its chunks from the registry and keyword index; return chunk ids."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM documents WHERE doc_id=?", (doc_id,)).fetchone() is None:
                raise DocumentNotFound(f"no document with id {doc_id!r}; list ids with 'lore docs'")
            self._bump(db)
            return self._drop(db, doc_id)

    @staticmethod
    def _drop(db: sqlite3.Connection, doc_id: str) -> list[str]:
        rows = db.execute("SELECT rowid, chunk_id FROM chunks WHERE doc_id=?", (doc_id,)).fetchall()
        db.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(r[0],) for r in rows])
        db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM doc_acl WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
        return [r[1] for r in rows]

    # -- keyword index -----------------------------------------------------------------------------
    def keyword_search(self, query: str, k: int, weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                       scope: Scope | None = None) -> list[tuple[str, float]]:
        """BM25 over title, section path and body; returns (chunk_id, score), best first.

        Only chunks `scope` admits (None: every chunk), filtered inside the search so `k` hits come back
        whenever `k` admitted ones exist.
        """
        from ingest.keywords import fts_match

        match = fts_match(query)
        if match is None:
            return []
        cond, params = scope_sql(scope)
        rows = self._db.execute(
            "SELECT c.chunk_id, -bm25(chunks_fts, ?, ?, ?) AS s FROM chunks_fts "
            "JOIN chunks c ON c.rowid = chunks_fts.rowid JOIN documents d ON d.doc_id = c.doc_id "
            f"WHERE chunks_fts MATCH ? AND ({cond}) ORDER BY s DESC LIMIT ?",
            (*weights, match, *params, k)).fetchall()
        return [(r[0], float(r[1])) for r in rows]

    def doc_ids_in(self, scope: Scope) -> list[str]:
        """Ids of the documents `scope` admits."""
        return admitted_doc_ids(self._db, scope)

    @contextmanager
    def keyword_corpus(self) -> Iterator["KeywordCorpus"]:
        """What a keyword index is built from, read in one snapshot on a separate connection.

        WAL readers neither block writers nor see their uncommitted work; the snapshot's generation says
        exactly which registry state the rows belong to.
        """
        try:  # a damaged page met while the caller reads the rows is thrown in at the yield: translated too
            db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            try:
                db.execute("BEGIN")  # deferred: the snapshot starts at the first read and lasts until ROLLBACK
                gen = int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
                yield KeywordCorpus(self.store_id, gen, db)
                db.execute("ROLLBACK")
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise sqlite_unusable(self.path, exc, DAMAGED) from exc

    def get_documents(self, doc_ids: Iterable[str]) -> dict[str, tuple[SourceDoc, dict]]:
        """Current documents by id, each with its front matter."""
        out: dict[str, tuple[SourceDoc, dict]] = {}
        ids = list(dict.fromkeys(doc_ids))
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = f"SELECT {_DOC_COLS}, front_matter FROM documents WHERE doc_id IN ({','.join('?' * len(part))})"
            out.update((r[0], (_doc(r), json.loads(r[13]))) for r in self._db.execute(q, part))
        return out

    # -- crash recovery marker --------------------------------------------------------------------
    def set_dirty(self, dirty: bool) -> None:
        """Mark that vector writes are in flight; a run that finds it set reconciles first."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('dirty', ?)", ("1" if dirty else "0",))

    def is_dirty(self) -> bool:
        row = self._db.execute("SELECT value FROM meta WHERE key='dirty'").fetchone()
        return bool(row and row[0] == "1")

    # -- uploaded files' names ---------------------------------------------------------------------
    def upload_names(self) -> dict[str, str]:
        """Stored file name -> the name it was uploaded as (the HTTP service keeps different names apart)."""
        return dict(self._db.execute("SELECT name, original FROM uploads").fetchall())

    def set_upload_name(self, name: str, original: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?)", (name, original))

    def drop_upload_names(self, names: Iterable[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM uploads WHERE name = ?", [(n,) for n in names])

    # -- embedding cache -----------------------------------------------------------------------
    def cached_vectors(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        ks = list(keys)
        for i in range(0, len(ks), 500):
            part = ks[i:i + 500]
            q = f"SELECT key, vector FROM embeddings WHERE key IN ({','.join('?' * len(part))})"
            out.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in self._db.execute(q, part))
        return out

    def put_vectors(self, items: dict[str, np.ndarray]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                           [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()])


class KeywordCorpus:
    """Rows of one registry snapshot (`SqliteStore.keyword_corpus`): documents, ACL grants, chunks."""

    def __init__(self, store_id: str, generation: int, db: sqlite3.Connection) -> None:
        self.store_id, self.generation, self._db = store_id, generation, db

    def documents(self) -> list[tuple[str, str, bool]]:
        """(doc id, title, has no ACL) per document."""
        return [(r[0], r[1], r[2] == "[]") for r in self._db.execute("SELECT doc_id, title, acl FROM documents")]

    def grants(self) -> list[tuple[str, str]]:
        """(doc id, ACL token) for every token of every document's stored ACL."""
        return self._db.execute("SELECT doc_id, token FROM doc_acl").fetchall()

    def chunks(self) -> Iterator[tuple[str, str, str, str]]:
        """(chunk id, doc id, section path as the FTS5 row holds it, text), in rowid order."""
        for cid, did, section, text in self._db.execute("SELECT chunk_id, doc_id, section, text FROM chunks ORDER BY rowid"):
            yield cid, did, " ".join(json.loads(section)), text


_tokenizer: list = []  # [connection, lock]: a private in-memory FTS5 table with chunks_fts's tokenizer


def fts_tokens(words: Sequence[str]) -> list[tuple[str, ...]]:
    """The tokens chunks_fts makes of each word (case folding, diacritics, porter), asked of SQLite itself."""
    if not _tokenizer:
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        db.execute(f"CREATE VIRTUAL TABLE w USING fts5(t, tokenize = '{FTS_TOKENIZER}')")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(w, 'instance')")
        _tokenizer[:] = [db, threading.Lock()]
    db, lock = _tokenizer
    out: list[list[str]] = [[] for _ in words]
    with lock:
        for i in range(0, len(words), 20000):
            db.execute("BEGIN")
            try:
                db.executemany("INSERT INTO w (rowid, t) VALUES (?, ?)", enumerate(words[i:i + 20000], i))
                for term, row in db.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
                    out[row].append(term)
            finally:
                db.execute("ROLLBACK")  # nothing is kept: the table is empty between calls
    return [tuple(t) for t in out]
