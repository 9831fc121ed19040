"""The ingest pipeline: list a source -> skip unchanged -> parse (overlapped) -> chunk -> embed -> store.

One engine for every source: `Ingestor.ingest(paths)` (`lore ingest`, uploads, ingest jobs) lists the files
source (ingest/sources/files.py) and `ingest.sync.Syncer` lists any configured source; both plan with
`Ingestor.plan` and store with the same batches, so a file's document is the same whichever way it came.

Crash safety: new chunk vectors are written to Chroma first, then one SQLite transaction makes the
version current, then the old version's vectors are deleted. A kill between steps leaves only vectors
that SQLite does not reference; the next run's reconcile removes them (and restores any that are
missing), so a rerun always ends equal to one clean run.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import re
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ingest.chroma_store import ChunkStore
from ingest.chunking import Chunker
from ingest.discover import Candidate
from ingest.embedders import Embedder
from ingest.errors import ConfigError, IngestError, StoreLocked
from ingest.formats import ZIP_EXPANSION, parse_file
from ingest.sources.base import Source, SourceItem, source_doc_id
from ingest.sources.files import FILES, FilesSource, doc_id_for
from ingest.sqlite_store import SqliteStore
from ingest.titles import title_from_path
from ingest.types import DEFAULT_ACL_MARK, DOC_TYPES, Chunk, ParsedDoc, SourceDoc, validate_acl

log = logging.getLogger(__name__)
PARSER_VERSION = "parse-v3"  # v3: markup cleaned (table rows as "Header: cell", fenced code, admonitions, footnotes)
HEADER_TOKENS = 32  # room kept in the model's window for the title/section header embedded with each chunk
HEADER_CHARS = 96  # about HEADER_TOKENS word pieces of English
FIRST_BATCH = 32  # chunks in an ingest's first batch; batches then double up to batch_chunks
_TYPE_RULES = (("incident", ("incident", "incidents", "postmortem", "postmortems", "post-mortems")),
               ("policy", ("policy", "policies", "handbook")),
               ("spec", ("spec", "specs", "rfc", "rfcs", "design", "designs")))
Event = Callable[[str, dict], None]
Listed = tuple[SourceItem, "bytes | None"]  # an item as its source listed it, with its bytes if listing read them
__all__ = ["FILES", "IngestReport", "Ingestor", "doc_id_for", "doc_type_for", "embed_text", "cache_key"]


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: list[dict] = field(default_factory=list)
    chunks: int = 0
    excluded: int = 0  # files and folders skipped by an exclude pattern (a folder counts once)
    # documents whose readers changed, each {doc_id, path, from, to}: only ever by an explicit act
    # (--acl, or the document's own front matter), never because a flag was left out
    acl_changed: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "deleted": self.deleted, "failed": self.failed, "chunks": self.chunks, "excluded": self.excluded,
                "acl_changed": self.acl_changed}


@dataclass
class _Pending:
    cand: Candidate
    doc_id: str
    version: str
    size: int
    mtime: float
    fingerprint: str
    prev_acl: tuple[str, ...] | None  # the stored version's readers; None for a new document
    fm_acl: tuple[str, ...] | None = None  # the readers its front matter names
    item: SourceItem | None = None  # set when a source listed it (then cand.path is the item's path there)
    source: str = ""
    owners: tuple[str, ...] = ()  # --owner, or the source's configured owners
    parsed: ParsedDoc | None = None
    text: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None

    @property
    def doc(self) -> ParsedDoc:
        """The parsed document: set before a pending document is chunked, so always there after."""
        assert self.parsed is not None  # noqa: S101
        return self.parsed

    @property
    def stacked(self) -> np.ndarray:
        """Its vectors, set by `_embed` or `_fill` before it is stored."""
        assert self.vectors is not None  # noqa: S101
        return self.vectors


@dataclass
class _Batch:
    """Documents written together, with their cached vectors and the model's work on the rest."""

    pends: list[_Pending]
    docs: list[SourceDoc]
    cached: dict[str, np.ndarray]
    todo: list[str]  # cache keys of the texts the model embeds, in order
    texts: list[str]
    vectors: Future | None = None  # of embed_documents(texts)


def doc_type_for(path: Path, front_matter: dict, explicit: str | None) -> str:
    """--doc-type, then front matter (type/doc_type), then path folder rules, else 'other'."""
    if explicit:
        return explicit
    fm = str(front_matter.get("doc_type") or front_matter.get("type") or "").lower()
    if fm in DOC_TYPES:
        return fm
    parts = [p.lower() for p in path.parts[:-1]]
    for doc_type, names in _TYPE_RULES:
        if any(p in names for p in parts):
            return doc_type
    return "other"


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).isoformat()
    if isinstance(value, str):
        try:
            return _iso(datetime.fromisoformat(value.strip()))
        except ValueError:
            return None
    return None


def _updated_at(front_matter: dict, mtime: float, listed: str | None = None) -> str:
    """Front matter's date, else the source's (last commit, page version), else the file's mtime."""
    for key in ("updated_at", "updated", "last_updated", "last_modified", "date"):
        got = _iso(front_matter.get(key))
        if got:
            return got
    return _iso(listed) or datetime.fromtimestamp(mtime, tz=timezone.utc).isoformat()


def owners_of(flag: Sequence[str], front_matter: dict) -> tuple[str, ...]:
    """--owner (or the source's owners), else front matter `owners:` / `owner:` (a list or one string)."""
    if flag:
        return tuple(dict.fromkeys(flag))
    got = front_matter.get("owners") or front_matter.get("owner") or ()
    names = [got] if isinstance(got, str) else got if isinstance(got, list) else []
    return tuple(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))


def _title(parsed: ParsedDoc, path: Path) -> str:
    return (parsed.title or title_from_path(path)).strip()[:300]


def _doc_title(pend: _Pending, parsed: ParsedDoc) -> str:
    return (pend.item.title if pend.item else "") or _title(parsed, pend.cand.path)


def _parse_job(path: str, data: bytes, max_unpacked: int) -> ParsedDoc | IngestError:
    try:
        return parse_file(path, data, max_unpacked)
    except IngestError as exc:
        return exc


def _worker_init(parent_pid: int) -> None:
    """Parser processes die with the ingest that started them, even on kill -9 (Linux)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: workers exit when the call queue breaks
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class Ingestor:
    """Turns files into stored, searchable chunks; safe to kill at any point and run again."""

    def __init__(self, store: SqliteStore, vectors: ChunkStore, embedder: Embedder, *,
                 chunker: Chunker | None = None, lock_path: str | Path | None = None,
                 max_file_bytes: int = 50 * 2**20, batch_chunks: int = 256, parse_workers: int = 1,
                 on_event: Event | None = None) -> None:
        if max_file_bytes < 1:
            raise ConfigError(f"max_file_bytes must be positive, got {max_file_bytes}")
        if batch_chunks < 1:
            raise ConfigError(f"batch_chunks must be at least 1, got {batch_chunks}")
        if parse_workers < 0:
            raise ConfigError(f"parse_workers must be 0 (inline) or more, got {parse_workers}")
        self.store, self.vectors, self.embedder = store, vectors, embedder
        self.chunker = chunker or Chunker(embedder, max_tokens=embedder.max_tokens - HEADER_TOKENS - 2)
        self.lock_path = Path(lock_path) if lock_path else store.path.with_suffix(".lock")
        self.max_file_bytes = max_file_bytes
        self.max_unpacked = ZIP_EXPANSION * max_file_bytes  # what a DOCX/PPTX may unpack to (zip bombs)
        self.batch_chunks = batch_chunks
        self.parse_workers = parse_workers
        self.on_event = on_event or (lambda kind, data: None)

    # -- public --------------------------------------------------------------------------------
    def ingest(self, paths: Sequence[str | Path], doc_type: str | None = None, acl: Sequence[str] = (),
               exclude: Sequence[str] = (), confine: Sequence[str | Path] | None = None,
               owners: Sequence[str] = ()) -> IngestReport:
        """Ingest files and folders: the files source listed file by file (one that cannot be read is
        reported, the rest stored), under the source name `files`; documents under a folder walked
        completely that it no longer lists are deleted, whoever stored them.
        `confine` (see `discover`) keeps the walk inside those folders; None follows links anywhere.
        `owners` (--owner) replaces the documents' owners; without it, their front matter names them."""
        if doc_type is not None and doc_type not in DOC_TYPES:
            raise ConfigError(f"--doc-type {doc_type!r} is not one of {', '.join(DOC_TYPES)}")
        acl_tokens = validate_acl(list(acl))
        src = FilesSource(FILES, paths, exclude=exclude, confine=confine, max_file_bytes=self.max_file_bytes)
        report = IngestReport()
        with self._locked():
            self.reconcile()
            found = src.scan()  # bad patterns and paths fail before anything changes
            self.store.set_dirty(True)
            for err in found.failures:
                self._fail(report, err)
            report.excluded = len(found.excluded)
            for path in found.excluded:
                self.on_event("excluded", {"path": str(path)})
            owner_tokens = tuple(dict.fromkeys(o.strip() for o in owners if o.strip()))
            todo = self.plan(src, _read_each(src, found.candidates), doc_type, acl_tokens, owner_tokens, report)
            self.on_event("plan", {"files": len(found.candidates), "todo": len(todo)})
            self._run(todo, doc_type, acl_tokens, report)
            self.remove_unlisted(found.roots, {str(c.path) for c in found.candidates}, report)
            self.store.set_dirty(False)
        return report

    def plan(self, source: Source, listed: Iterable[Listed | IngestError], doc_type: str | None, acl: tuple[str, ...],
             owners: tuple[str, ...], report: IngestReport, stored: Mapping[str, tuple[SourceDoc, str]] | None = None,
             fetch: Callable[[SourceItem], bytes] | None = None) -> list[tuple[_Pending, bytes]]:
        """The listed items that are new or changed (content, pipeline, place, readers, owners), each with
        its bytes (`fetch`ed when listing did not read them); unchanged ones are counted, failures reported.
        `stored` holds the source's documents by external id (one query for a whole inventory); without
        it each item's document is looked up by id, so a file stored by another files listing is found."""
        fp = self._fingerprint(doc_type)
        ident: Callable[[SourceItem], str] = (source.doc_id if isinstance(source, FilesSource)
                                              else lambda item: source_doc_id(source.name, item.external_id))
        todo: list[tuple[_Pending, bytes]] = []
        seen: set[str] = set()
        for entry in listed:
            if isinstance(entry, IngestError):
                self._fail(report, entry)
                continue
            item, data = entry
            if item.external_id in seen:
                continue
            seen.add(item.external_id)
            doc_id = ident(item)
            prev = stored.get(item.external_id) if stored is not None else self._stored(doc_id)
            if prev is not None and _unchanged(prev[0], prev[1], fp, item, acl, owners):
                report.unchanged += 1
                self.on_event("unchanged", {"path": item.path or item.name})
                continue
            if data is None:
                try:
                    data = fetch(item) if fetch is not None else b""
                except IngestError as err:
                    self._fail(report, err)
                    continue
            where = Path(item.path).parent / item.name if item.path else Path(item.name)  # the name picks the parser
            todo.append((_Pending(Candidate(where, None), doc_id, item.version, len(data), 0.0, fp,
                                  prev[0].acl if prev is not None else None, item=item, source=source.name,
                                  owners=owners), data))
        return todo

    def remove_unlisted(self, roots: Iterable[Path], listed: set[str], report: IngestReport) -> None:
        """Documents under folders walked completely whose files were not listed leave the knowledge base:
        vanished or now excluded, whichever files listing stored them."""
        for root in roots:
            for doc_id in self.store.doc_ids_under(str(root) + os.sep):
                doc = self.store.get_document(doc_id)
                if doc and doc.uri not in listed:
                    self._remove(doc_id)
                    report.deleted += 1
                    self.on_event("deleted", {"doc_id": doc_id, "uri": doc.uri})

    def remove(self, doc_id: str) -> SourceDoc:
        with self._locked():
            self.reconcile()
            doc = self.store.require_document(doc_id)
            self.store.set_dirty(True)
            self._remove(doc_id)
            self.store.set_dirty(False)
            return doc

    def reconcile(self) -> tuple[int, int]:
        """Make Chroma hold exactly the chunks SQLite references, after an interrupted run."""
        if not self.store.is_dirty():
            return 0, 0
        live = self.store.chunk_ids()
        stored = self.vectors.ids()
        extra = sorted(stored - live)
        missing = sorted(live - stored)
        if extra:
            self.vectors.delete(extra)
        restored = 0
        if missing:
            by_doc: dict[str, list[Chunk]] = {}
            for c in self.store.get_chunks(missing).values():
                by_doc.setdefault(c.doc_id, []).append(c)
            docs = self.store.get_documents(by_doc)
            for doc_id, chunks in by_doc.items():
                doc, front_matter = docs[doc_id]
                pend = _Pending(Candidate(Path(doc.uri), None), doc_id, doc.version, doc.size, 0.0, "", doc.acl)
                pend.chunks = sorted(chunks, key=lambda c: c.ordinal)
                self._embed([(pend, doc.title)])
                self.vectors.upsert([c.id for c in pend.chunks], pend.stacked,
                                    [self._meta(doc, c, front_matter) for c in pend.chunks])
                restored += len(chunks)
        log.info("reconciled store: removed %d orphan vectors, restored %d", len(extra), restored)
        self.store.set_dirty(False)
        return len(extra), restored

    # -- steps ---------------------------------------------------------------------------------
    def _locked(self):
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.lock_path))
        try:
            return lock.acquire(timeout=0)  # a context manager that releases the lock
        except Timeout as exc:
            raise StoreLocked(f"another ingest is writing to {self.lock_path.parent}; wait for it to finish") from exc

    def _fail(self, report: IngestReport, err: IngestError) -> None:
        report.failed.append({"path": err.path, "error": err.reason})
        log.warning("skipped %s: %s", err.path, err.reason)
        self.on_event("failed", {"path": err.path, "error": err.reason})

    def _fingerprint(self, doc_type: str | None) -> str:
        """What decides how a file is parsed, chunked and embedded. Readers are not part of it: they are
        compared on their own, so an ingest without --acl never re-stores (and so never re-decides) them."""
        return "|".join([PARSER_VERSION, self.chunker.fingerprint, self.embedder.model_id, doc_type or ""])

    def _stored(self, doc_id: str) -> tuple[SourceDoc, str] | None:
        """A stored document with its pipeline fingerprint, by id."""
        got = self.store.fingerprint(doc_id)
        doc = self.store.get_document(doc_id) if got is not None else None
        return (doc, got[1]) if got is not None and doc is not None else None

    def _parsed(self, todo: list[tuple[_Pending, bytes]]) -> Iterator[tuple[_Pending, ParsedDoc | IngestError]]:
        """Parse in a worker process, a few files ahead, while the caller embeds (overlap)."""
        if self.parse_workers == 0 or len(todo) < 4:
            for pend, data in todo:
                yield pend, _parse_job(str(pend.cand.path), data, self.max_unpacked)
            return
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(self.parse_workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(os.getpid(),)) as pool:
            window: deque[tuple[_Pending, Future]] = deque()
            it = iter(todo)
            for pend, data in it:
                window.append((pend, pool.submit(_parse_job, str(pend.cand.path), data, self.max_unpacked)))
                if len(window) >= 2 * self.parse_workers + 2:
                    break
            while window:
                pend, fut = window.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    window.append((nxt[0], pool.submit(_parse_job, str(nxt[0].cand.path), nxt[1],
                                                         self.max_unpacked)))
                try:
                    yield pend, fut.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker fails one file, not the batch
                    yield pend, IngestError(str(pend.cand.path), f"parser crashed ({type(exc).__name__}: {exc})")

    def _run(self, todo: list[tuple[_Pending, bytes]], doc_type: str | None, acl: tuple[str, ...],
             report: IngestReport) -> None:
        """Chunk here while the previous batch embeds in a thread, then write that batch: the model waits
        neither for Chroma and SQLite nor for chunking (ONNX Runtime and torch release the GIL)."""
        with ThreadPoolExecutor(1, thread_name_prefix="lore-embed") as model:
            ahead: deque[_Batch] = deque()
            try:
                for pends in self._batches(todo, report):
                    ahead.append(self._submit(model, pends, doc_type, acl, report))
                    if len(ahead) > 1:
                        self._flush(ahead.popleft(), report)
                while ahead:
                    self._flush(ahead.popleft(), report)
            finally:
                model.shutdown(cancel_futures=True)

    def _batches(self, todo: list[tuple[_Pending, bytes]], report: IngestReport) -> Iterator[list[_Pending]]:
        """Parsed and chunked documents, about `batch_chunks` chunks at a time. The first batches are smaller
        (FIRST_BATCH, then doubling), so the model starts on the first documents instead of waiting for a
        full batch to be parsed, and each next batch is ready before the model finishes the one before."""
        batch: list[_Pending] = []
        size, limit = 0, min(FIRST_BATCH, self.batch_chunks)
        for pend, result in self._parsed(todo):
            if isinstance(result, IngestError):
                self._fail(report, result)
                continue
            pend.parsed = result
            try:
                pend.fm_acl = front_matter_acl(result.front_matter, pend.cand.path)
            except IngestError as err:
                self._fail(report, err)
                continue
            norm, pend.chunks = self.chunker.chunk(pend.doc_id, pend.version, result, _doc_title(pend, result))
            pend.text = norm.text
            batch.append(pend)
            size += len(pend.chunks)
            if size >= limit:
                yield batch
                batch, size, limit = [], 0, min(2 * limit, self.batch_chunks)
        if batch:
            yield batch

    def _submit(self, model: ThreadPoolExecutor, pends: list[_Pending], doc_type: str | None,
                acl: tuple[str, ...], report: IngestReport) -> _Batch:
        """The batch's document records, and its uncached texts handed to the model thread."""
        now = datetime.now(timezone.utc).isoformat()
        docs = []
        for pend in pends:
            fm = pend.doc.front_matter
            tokens = readers((pend.item.acl if pend.item else ()) or acl, pend.fm_acl, pend.prev_acl)
            if pend.prev_acl is not None and tokens != pend.prev_acl:
                change = {"doc_id": pend.doc_id, "path": str(pend.cand.path), "from": list(pend.prev_acl),
                          "to": list(tokens)}
                report.acl_changed.append(change)
                log.warning("readers of %s changed from %s to %s", pend.cand.path, change["from"] or ["(default)"],
                            change["to"] or ["(default)"])
                self.on_event("acl_changed", change)
            item = pend.item
            title = _doc_title(pend, pend.doc)
            docs.append(SourceDoc(
                id=pend.doc_id, uri=item.uri if item else str(pend.cand.path), title=title,
                doc_type=doc_type_for(pend.cand.path, fm, doc_type), version=pend.version,
                updated_at=_updated_at(fm, pend.mtime, item.updated_at if item else None), ingested_at=now,
                acl=tokens, size=pend.size, chunk_count=len(pend.chunks),
                owners=owners_of((item.owners if item else ()) or pend.owners, fm), source=pend.source,
                external_id=item.external_id if item else ""))
        batch = _Batch(pends, docs, *self._lookup([(pend, doc.title) for pend, doc in zip(pends, docs)]))
        if batch.todo:
            batch.vectors = model.submit(self.embedder.embed_documents, batch.texts)
        return batch

    def _flush(self, batch: _Batch, report: IngestReport) -> None:
        """Write one embedded batch: all its vectors to Chroma, then each document's version in its own
        SQLite transaction, then the replaced versions' vectors go."""
        self._fill(batch, batch.vectors.result() if batch.vectors else None)
        pends, docs = batch.pends, batch.docs
        self.on_event("checkpoint", {"at": "before_vectors", "doc_ids": [d.id for d in docs]})
        self.vectors.upsert([c.id for p in pends for c in p.chunks],
                            np.concatenate([p.stacked for p in pends if p.chunks] or [np.zeros((0, 1), np.float32)]),
                            [self._meta(d, c, p.doc.front_matter) for p, d in zip(pends, docs) for c in p.chunks])
        stale: list[str] = []
        for pend, doc in zip(pends, docs):
            self.on_event("checkpoint", {"at": "before_commit", "doc_id": doc.id})
            old = self.store.replace_document(doc, pend.text, pend.chunks, pend.fingerprint, pend.doc.front_matter)
            self.on_event("checkpoint", {"at": "after_commit", "doc_id": doc.id})
            stale += sorted(set(old) - {c.id for c in pend.chunks})
            report.chunks += len(pend.chunks)
            if pend.prev_acl is None:
                report.added += 1
            else:
                report.updated += 1
            self.on_event("stored", {"doc_id": doc.id, "path": doc.uri, "chunks": len(pend.chunks),
                                     "new": pend.prev_acl is None})
        if stale:
            self.vectors.delete(stale)

    def _embed(self, batch: list[tuple[_Pending, str]]) -> None:
        """Fill each pending doc's vectors in one model call, embedding only texts the cache lacks."""
        b = _Batch([p for p, _ in batch], [], *self._lookup(batch))
        self._fill(b, self.embedder.embed_documents(b.texts) if b.todo else None)

    def _lookup(self, batch: list[tuple[_Pending, str]]) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
        """Each pending doc's cache keys; the vectors cached, and the keys and texts still to embed."""
        texts: dict[str, str] = {}
        for pend, title in batch:
            pend.keys = []
            for c in pend.chunks:
                text = embed_text(title, c)
                key = cache_key(self.embedder.model_id, text)
                pend.keys.append(key)
                texts[key] = text
        cached = self.store.cached_vectors(texts)
        todo = [k for k in texts if k not in cached]
        return cached, todo, [texts[k] for k in todo]

    def _fill(self, batch: _Batch, vecs: np.ndarray | None) -> None:
        """Cache the new vectors and give each pending doc its stack of vectors."""
        cached = batch.cached
        if batch.todo and vecs is not None:
            self.store.put_vectors(dict(zip(batch.todo, vecs)))
            cached.update(zip(batch.todo, vecs))
            self.on_event("embedded", {"chunks": len(batch.todo)})
        for pend in batch.pends:
            pend.vectors = np.stack([cached[k] for k in pend.keys]) if pend.keys else np.zeros((0, 1), np.float32)

    @staticmethod
    def _meta(doc: SourceDoc, c: Chunk, front_matter: dict | None = None) -> dict:
        meta = {"doc_id": doc.id, "doc_type": doc.doc_type, "version": doc.version, "uri": doc.uri,
                "updated_at": int(datetime.fromisoformat(doc.updated_at).timestamp()),
                "acl": list(doc.acl) or [DEFAULT_ACL_MARK], "ordinal": c.ordinal}
        for k, v in (front_matter or {}).items():  # scalar front matter becomes filterable metadata
            if isinstance(v, (date, datetime)):
                v = str(v)  # as the registry's JSON copy stores it, so both searches filter alike
            if isinstance(v, (str, int, float, bool)) and re.fullmatch(r"[A-Za-z0-9_]{1,40}", str(k)):
                meta[f"fm_{k}"] = v
        return meta

    def _remove(self, doc_id: str) -> None:
        ids = self.store.delete_document(doc_id)
        self.vectors.delete(ids)


def _same_pipeline(stored: str, fp: str) -> bool:
    """Fingerprints written before readers left them end in '|<acl tokens>'; the rest still counts."""
    return stored == fp or stored.rsplit("|", 1)[0] == fp


def _unchanged(doc: SourceDoc, fingerprint: str, fp: str, item: SourceItem, acl: tuple[str, ...],
               owners: Sequence[str]) -> bool:
    """Whether the stored document is what storing this item now would give: same content, pipeline and
    place, and the readers and owners asked for (none asked for: the stored ones stay)."""
    want_acl = item.acl or acl
    want_owners = tuple(item.owners or owners)
    return (doc.version == item.version and _same_pipeline(fingerprint, fp) and doc.uri == item.uri
            and (not item.title or doc.title == item.title) and (not want_acl or doc.acl == want_acl)
            and (not want_owners or doc.owners == want_owners))


def _read_each(src: FilesSource, cands: Iterable[Candidate]) -> Iterator[Listed | IngestError]:
    """Each found file with its bytes, read as the plan reaches it; or why it cannot be read."""
    for cand in cands:
        try:
            yield src.read(cand)
        except IngestError as err:
            yield err


def front_matter_acl(front_matter: dict, path: Path) -> tuple[str, ...] | None:
    """The readers a document names itself (`acl: group:hr`, `acl: [group:hr, user:ana]`), or None.

    An empty `acl:` is refused: it could mean nobody or everybody, so the file is reported instead."""
    if "acl" not in front_matter or front_matter["acl"] is None:
        return None
    raw = front_matter["acl"]
    tokens = [t for t in (raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else [raw])
              if str(t).strip()]
    if not tokens:
        raise IngestError(str(path), "front matter `acl:` is empty, which could mean nobody or everybody; list who "
                          "may read it (public, group:NAME, user:ID), or remove the key to keep its current readers "
                          "(new documents get LORE_DEFAULT_ACL)")
    try:
        return validate_acl(tokens, "front matter acl")
    except ConfigError as exc:
        raise IngestError(str(path), str(exc)) from None


def readers(flag: tuple[str, ...], front_matter: tuple[str, ...] | None,
            stored: tuple[str, ...] | None) -> tuple[str, ...]:
    """Who may read a document after this ingest: --acl, else its front matter, else whoever could read
    the stored version (a missing flag never widens access), else () for the configured default."""
    if flag:
        return flag
    if front_matter is not None:
        return front_matter
    return stored or ()


def embed_text(title: str, c: Chunk) -> str:
    """What the model sees for a chunk: title and section path as a short header, then the text."""
    section = [s for s in c.section if s != title]
    header = " > ".join([title, *section])
    if len(header) > HEADER_CHARS:  # keep within HEADER_TOKENS so the passage itself is never truncated
        header = header[:HEADER_CHARS].rsplit(" ", 1)[0]
    return f"{header}\n\n{c.text}"


# Vectors cached before embedders ran each text alone depended on their batch neighbours: a new key
# space leaves them unused, so every vector stored from now on is a function of its text only.
EMBED_CACHE_REVISION = "solo-1"


def cache_key(model_id: str, text: str) -> str:
    """The embedding cache's key for one text: the model, how vectors are computed, the text."""
    return hashlib.sha256(f"{model_id}\x00{EMBED_CACHE_REVISION}\x00{text}".encode()).hexdigest()
