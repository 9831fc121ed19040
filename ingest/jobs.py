"""Writes to a knowledge base, one at a time: background ingest jobs, uploads and deletions.

Job records outlive the process in DATA_DIR/jobs.db (written on each state change and about once a
second with progress; the latest MAX_JOBS are kept). A job that was queued or running when its service
died is marked `interrupted` on the next start: ingest is crash-safe, so starting it again finishes it.
Each write uses its own registry connection, so readers on the shared one never see a half-written
transaction. The background walk is confined to the ingest roots, so a link made after the check is
skipped, not followed. The HTTP service runs these (api/routes/documents.py); nothing here reads settings.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from filelock import FileLock, Timeout

from ingest.discover import exclude_spec
from ingest.errors import ConfigError, FileTooLarge, IngestError, LoreError, NotFound, StoreLocked
from ingest.formats import ZIP_EXPANSION, check_archive
from ingest.joblog import JobLog
from ingest.pipeline import doc_id_for
from ingest.types import SourceDoc, validate_acl
from ingest.uploads import (ROOTS_VAR, _no_escapes, _write_synced, check_type, reconcile_folder, resolve_in_roots,
                            safe_filename, stored_name, upload_key)

if TYPE_CHECKING:
    from ingest.pipeline import Ingestor
    from ingest.sqlite_store import SqliteStore

OnEvent = Callable[[str, dict], None]
log = logging.getLogger(__name__)
MAX_JOBS = 50
JOBS_DB = "jobs.db"  # in the data dir, beside the registry (lore.db) but a file of its own
SNAPSHOT_EVERY = 1.0  # seconds between progress writes to JOBS_DB
UPLOAD_WAIT = 30.0  # seconds an upload or deletion waits for another one (never for an ingest job)


class Busy(StoreLocked):
    """Another write (an ingest job, an upload or a deletion) is under way in this service."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """One background ingest; mutated only by its own thread, read through `to_dict`."""

    id: str
    paths: tuple[str, ...]
    doc_type: str | None
    acl: tuple[str, ...]
    exclude: tuple[str, ...]
    status: str = "queued"
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    report: dict | None = None
    error: str | None = None
    progress: dict = field(default_factory=lambda: {
        "files_total": None, "files_todo": None, "files_done": 0, "unchanged": 0, "failed": 0, "chunks": 0,
        "embedded": 0, "deleted": 0, "excluded": 0, "current": None})
    sink: Callable[[dict], None] | None = field(default=None, repr=False, compare=False)  # persists to_dict()
    _saved: float = field(default=0.0, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        """A job as `to_dict` (or the job log) gave it: a record only, not running here."""
        return cls(d["job_id"], tuple(d["paths"]), d["doc_type"], tuple(d["acl"]), tuple(d["exclude"]),
                   status=d["status"], created_at=d["created_at"], started_at=d["started_at"],
                   finished_at=d["finished_at"], report=d["report"], error=d["error"], progress=d["progress"])

    def on_event(self, kind: str, data: dict) -> None:
        """The ingestor's progress callback (api/cli.py's progress bar reads the same events)."""
        with self._lock:
            p = self.progress
            if kind == "plan":  # what is not to do is done: unchanged, or failed to read
                p["files_total"], p["files_todo"] = data["files"], data["todo"]
                p["files_done"] = data["files"] - data["todo"]
            elif kind == "stored":
                p["files_done"] += 1
                p["chunks"] += data["chunks"]
                p["current"] = data["path"]
            elif kind == "failed":
                p["failed"] += 1
                if p["files_total"] is not None:  # a parse failure of a planned file
                    p["files_done"] += 1
            elif kind in ("unchanged", "deleted", "excluded"):
                p[kind] += 1
            elif kind == "embedded":
                p["embedded"] += data["chunks"]
        if self.sink is not None and time.monotonic() - self._saved >= SNAPSHOT_EVERY:
            self._save()

    def set(self, **changes) -> None:
        """Change state: recorded first, so a status seen over HTTP is also the one a restart finds."""
        if self.sink is not None:
            self._save(changes)
        with self._lock:
            for k, v in changes.items():
                setattr(self, k, v)

    def _save(self, changes: dict | None = None) -> None:
        self._saved = time.monotonic()
        if self.sink is not None:
            self.sink({**self.to_dict(), **(changes or {})})

    def to_dict(self) -> dict:
        with self._lock:
            return {"job_id": self.id, "status": self.status, "paths": list(self.paths), "doc_type": self.doc_type,
                    "acl": list(self.acl), "exclude": list(self.exclude), "progress": dict(self.progress),
                    "report": self.report, "error": self.error, "created_at": self.created_at,
                    "started_at": self.started_at, "finished_at": self.finished_at}


class Jobs:
    """The service's writer: at most one write at a time in this process, and the ingest file lock across processes."""

    def __init__(self, data_dir: str | Path, open_store: Callable[[], SqliteStore],
                 ingestor: Callable[[SqliteStore, OnEvent | None], Ingestor], *, roots: Sequence[Path] = (),
                 exclude: Sequence[str] = (), max_file_mb: float, on_change: Callable[[bool], None] = lambda wait: None
                 ) -> None:
        """`open_store()` opens a registry connection of the write's own; `ingestor(store, on_event)` builds an
        ingestor writing through it; `on_change(wait)` runs after a write changed the knowledge base (the
        service brings its keyword index up to date); `roots` are the folders an ingest job may read."""
        if max_file_mb <= 0:
            raise ValueError(f"Jobs max_file_mb must be positive, got {max_file_mb}")
        self.data_dir, self.roots, self.exclude, self.max_file_mb = Path(data_dir), list(roots), list(exclude), max_file_mb
        self._open_store, self._build_ingestor, self._on_change = open_store, ingestor, on_change
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()  # guards _jobs and _active
        self._writing = threading.Lock()  # held by the one write under way
        self._active: Job | None = None
        self._records: JobLog | None = None
        self._opening = threading.Lock()
        self._reconciled = False  # uploads are reconciled before the first write (reconcile_uploads)

    @property
    def records(self) -> JobLog:
        """The job log, opened on first use (which marks the jobs of a service that died interrupted)."""
        with self._opening:
            if self._records is None:
                self._records = JobLog(self.data_dir / JOBS_DB, keep=MAX_JOBS)
            return self._records

    def close(self) -> None:
        if self._records is not None:
            self._records.close()

    @property
    def uploads(self) -> Path:
        # abspath, as discovery spells a file argument: the uri and the id of an upload derive from it
        return Path(os.path.abspath(self.data_dir)) / "uploads"

    def is_upload(self, doc: SourceDoc) -> bool:
        return Path(doc.uri).parent == self.uploads

    # -- jobs ----------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        records = self.records
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:  # started here: fresher than its last progress snapshot
            return job
        rec = records.load(job_id)
        if rec is None:
            raise NotFound(f"no ingest job with id {job_id!r}; GET /v1/jobs lists the latest {MAX_JOBS} jobs")
        return Job.from_dict(rec)

    def recent(self) -> list[Job]:
        recs = self.records.recent(MAX_JOBS)
        with self._lock:
            live = dict(self._jobs)
        return [live.get(rec["job_id"]) or Job.from_dict(rec) for rec in recs]

    def start(self, paths: Sequence[str], doc_type: str | None = None, acl: Sequence[str] = (),
              exclude: Sequence[str] = ()) -> Job:
        """Check the paths against the ingest roots, then ingest them in a background thread."""
        acl_tokens = validate_acl(list(acl), "acl")
        exclude_spec(list(exclude), "exclude")
        roots = self._roots()
        targets = tuple(dict.fromkeys(str(resolve_in_roots(p, roots)) for p in paths))
        _no_escapes(targets, [*self.exclude, *exclude], roots)
        records = self.records  # opened before taking the write slot: a log that cannot open refuses the job
        self._acquire(0)
        try:
            self.reconcile_once()
            job = Job(uuid.uuid4().hex, targets, doc_type, acl_tokens, tuple(exclude), sink=records.save)
            ingestor, store = self._ingestor(job.on_event)
            try:
                _probe(ingestor.lock_path)
                with self._lock:
                    self._jobs[job.id] = job
                    while len(self._jobs) > MAX_JOBS:
                        self._jobs.popitem(last=False)
                    self._active = job
                records.add(job.to_dict())
                threading.Thread(target=self._run, args=(job, ingestor, store, roots), name=f"ingest-{job.id[:8]}",
                                 daemon=True).start()
            except BaseException:
                store.close()
                raise
        except BaseException:
            self._release()
            raise
        log.info("ingest job %s started for %d paths", job.id, len(targets))
        return job

    def _run(self, job: Job, ingestor, store, roots: list[Path]) -> None:
        job.set(status="running", started_at=_now())
        try:
            # confined: a link made inside a root since start() checked the paths is skipped, not followed
            report = ingestor.ingest(list(job.paths), doc_type=job.doc_type, acl=job.acl,
                                     exclude=[*self.exclude, *job.exclude], confine=roots)
            if report.added or report.updated or report.deleted:
                self._on_change(True)  # a background job: done when searches see it
            job.set(status="succeeded", report=report.to_dict(), finished_at=_now())
            log.info("ingest job %s succeeded: %s", job.id, report.to_dict())
        except LoreError as exc:
            job.set(status="failed", error=str(exc), finished_at=_now())
            log.warning("ingest job %s failed: %s", job.id, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must end the job, not leave it running forever
            log.exception("ingest job %s crashed", job.id)
            job.set(status="failed", error=f"internal error ({type(exc).__name__}); see the server log",
                    finished_at=_now())
        finally:
            store.close()
            self._release()

    def _roots(self) -> list[Path]:
        roots = self.roots
        if not roots:
            raise ConfigError(f"no ingest roots are configured, so POST /v1/ingest may read nothing; set {ROOTS_VAR} "
                              "to the folders it may read, e.g. '[\"/srv/kb\"]'")
        return list(roots)

    # -- uploads and deletions -----------------------------------------------------------------
    def upload(self, filename: str | None, data: bytes, doc_type: str | None = None,
               acl: Sequence[str] = ()) -> tuple[SourceDoc, dict]:
        """Store an uploaded file under DATA_DIR/uploads and ingest it; a failure leaves everything as it was.

        Each name an upload arrives under is its own document, even where two sanitize alike ("a b.md",
        "a#b.md"): the first keeps the sanitized name, a later one gets a '~hash' of its own name added
        ('~' is never left in a sanitized name). Uploading the same name again replaces the document.
        """
        name, original = safe_filename(filename), upload_key(filename)
        check_type(name, data)
        limit = self.max_file_mb
        if len(data) > limit * 2**20:
            raise FileTooLarge(name, f"is {len(data) / 2**20:.1f} MiB, over the {limit:g} MiB ingest limit "
                               "(LORE_INGEST__MAX_FILE_MB)")
        check_archive(name, data, int(ZIP_EXPANSION * limit * 2**20))  # a zip bomb is refused before it is stored
        acl_tokens = validate_acl(list(acl), "acl")
        with self.writing(), self._uploads_lock(UPLOAD_WAIT):
            self.uploads.mkdir(parents=True, exist_ok=True)
            ingestor, store = self._ingestor()
            try:
                names = store.upload_names()
                name = stored_name(names, original, name, self.uploads)
                target = self.uploads / name
                report = self._place(ingestor, store, target, data, doc_type, acl_tokens,
                                     None if names.get(name) == original else original)
                doc = store.require_document(doc_id_for(target))  # as stored by this write
            finally:
                store.close()
            if report.added or report.updated:
                self._on_change(False)
        log.info("upload %s as %s: %s", original, name, report.to_dict())
        return doc, report.to_dict()

    def _place(self, ingestor, store, target: Path, data: bytes, doc_type, acl_tokens, new_name: str | None):
        """Write `data` to `target` through a temporary file and an atomic rename, then ingest it; on any
        failure put back what was there (file and name)."""
        part = self.uploads / f".{uuid.uuid4().hex}.part"
        backup = self.uploads / f".{uuid.uuid4().hex}.previous"
        moved = placed = False
        try:
            if new_name is not None:  # recorded first: a start-up after a kill finds the name with its file
                store.set_upload_name(target.name, new_name)
            _write_synced(part, data)
            if target.exists():
                os.replace(target, backup)
                moved = True
            os.replace(part, target)
            placed = True
            report = ingestor.ingest([target], doc_type=doc_type, acl=acl_tokens)
            if report.failed:
                raise IngestError(target.name, report.failed[0]["error"])
        except BaseException:
            part.unlink(missing_ok=True)
            if placed:
                target.unlink(missing_ok=True)
            if moved:  # the stored version is still the previous one: so is the file again
                os.replace(backup, target)
            elif new_name is not None:
                store.drop_upload_names([target.name])
            raise
        backup.unlink(missing_ok=True)
        return report

    def delete(self, doc_id: str) -> SourceDoc:
        """Remove a document from the registry and vectors, and its file when it was uploaded."""
        with self.writing(), self._uploads_lock(UPLOAD_WAIT):
            ingestor, store = self._ingestor()
            try:
                doc = ingestor.remove(doc_id)
                if self.is_upload(doc):
                    Path(doc.uri).unlink(missing_ok=True)
                    store.drop_upload_names([Path(doc.uri).name])
            finally:
                store.close()
            self._on_change(False)
        log.info("deleted %s (%s)", doc.id, doc.uri)
        return doc

    def reconcile_uploads(self) -> dict[str, list[str]]:
        """Make DATA_DIR/uploads hold exactly the files documents reference, after a killed upload.

        Half-written temporary files are removed; a replaced version kept aside is put back when the
        registry still holds it, else removed; a file no document references is moved to
        DATA_DIR/orphaned-uploads (kept, in case someone put it there by hand) and logged. Skipped while
        another process writes uploads. Runs once, before this service's first write.
        """
        done: dict[str, list[str]] = {"removed": [], "restored": [], "quarantined": []}
        if not self.uploads.is_dir():
            return done
        try:
            with self._uploads_lock(0):
                store = self._open_store()
                try:
                    done = reconcile_folder(self.uploads, store, self.data_dir / "orphaned-uploads")
                finally:
                    store.close()
        except Busy:
            log.info("uploads are being written by another process; not reconciled now")
            return done
        if any(done.values()):
            log.warning("uploads reconciled after an interrupted write: %s", done)
        return done

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the service's write slot: refused at once while an ingest job runs, else waits a little."""
        self._acquire(UPLOAD_WAIT)
        try:
            self.reconcile_once()
            yield
        finally:
            self._release()

    def reconcile_once(self) -> None:
        """`reconcile_uploads` once per service; a failure is logged and tried again at the next write."""
        if self._reconciled:
            return
        try:
            self.reconcile_uploads()
            self._reconciled = True
        except (OSError, LoreError) as exc:  # the write goes on; the next one tries again
            log.warning("could not reconcile %s: %s", self.uploads, exc)

    @contextmanager
    def _uploads_lock(self, wait: float) -> Iterator[None]:
        """DATA_DIR/uploads.lock: one process at a time writes or reconciles the uploads folder."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.data_dir / "uploads.lock"))
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise Busy("another process is writing uploads in this data directory; retry in a moment") from None
        try:
            yield
        finally:
            lock.release()

    # -- internals -----------------------------------------------------------------------------
    def _acquire(self, wait: float) -> None:
        if self._active is None and self._writing.acquire(timeout=wait):
            return
        active = self._active
        if active is not None:
            raise Busy(f"ingest job {active.id} is running; wait until GET /v1/jobs/{active.id} says it is done, "
                       "then retry")
        raise Busy("another upload or deletion is being written; retry in a moment")

    def _release(self) -> None:
        with self._lock:
            self._active = None
        self._writing.release()

    def _ingestor(self, on_event: OnEvent | None = None) -> tuple[Ingestor, SqliteStore]:
        store = self._open_store()
        return self._build_ingestor(store, on_event), store


def _probe(lock_path: Path) -> None:
    """Refuse now, not in the background, when another process (lore ingest) holds the ingest lock."""
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreLocked(f"another ingest is writing to {lock_path.parent.name}; wait for it to finish") from None
    lock.release()
