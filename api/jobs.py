"""Writes from the HTTP service, one at a time: background ingest jobs, uploads and deletions.

Job records outlive the process in DATA_DIR/jobs.db (written on each state change and about once a
second with progress; the latest MAX_JOBS are kept). A job that was queued or running when its service
died is marked `interrupted` on the next start: ingest is crash-safe, so starting it again finishes it.
Each write uses its own registry connection, so readers on the shared one never see a half-written
transaction. The background walk is confined to the ingest roots, so a link made after the check is
skipped, not followed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
import time
import unicodedata
import uuid
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

from filelock import FileLock, Timeout

from api import wiring
from api.joblog import JobLog
from ingest.discover import discover, exclude_spec
from ingest.errors import ConfigError, FileTooLarge, IngestError, LoreError, NotFound, StoreLocked, UnsupportedFormat
from ingest.formats import SUPPORTED, ZIP_EXPANSION, check_archive, format_of
from ingest.pipeline import doc_id_for
from ingest.types import SourceDoc, validate_acl

log = logging.getLogger(__name__)
MAX_JOBS = 50
JOBS_DB = "jobs.db"  # in the data dir, beside the registry (lore.db) but a file of its own
SNAPSHOT_EVERY = 1.0  # seconds between progress writes to JOBS_DB
MAX_NAME = 120  # characters of an uploaded file's stored name
UPLOAD_WAIT = 30.0  # seconds an upload or deletion waits for another one (never for an ingest job)
ROOTS_VAR = "LORE_SERVER__INGEST_ROOTS"
_ALLOWED = f"allowed types: {', '.join(SUPPORTED)}"
_MAGIC = ((b"%PDF", "a PDF"), (b"PK\x03\x04", "a ZIP archive"), (b"\x7fELF", "an executable"),
          (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\xd0\xcf\x11\xe0", "a legacy Office file"), (b"\x1f\x8b", "a gzip archive"), (b"Rar!", "a RAR archive"),
          (b"7z\xbc\xaf", "a 7z archive"))
_OFFICE_PART = {"docx": "word/document.xml", "pptx": "ppt/presentation.xml"}


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

    def __init__(self, services) -> None:
        self._svc = services
        self.settings = services.settings
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
                self._records = JobLog(Path(self.settings.data_dir) / JOBS_DB, keep=MAX_JOBS)
            return self._records

    def close(self) -> None:
        if self._records is not None:
            self._records.close()

    @property
    def uploads(self) -> Path:
        # abspath, as discovery spells a file argument: the uri and the id of an upload derive from it
        return Path(os.path.abspath(self.settings.data_dir)) / "uploads"

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
        _no_escapes(targets, [*self.settings.ingest.exclude, *exclude], roots)
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
                                     exclude=[*self.settings.ingest.exclude, *job.exclude], confine=roots)
            if report.added or report.updated or report.deleted:
                self._svc.keyword_index_changed(wait=True)  # a background job: done when searches see it
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
        roots = self.settings.server.ingest_roots
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
        limit = self.settings.ingest.max_file_mb
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
            finally:
                store.close()
            if report.added or report.updated:
                self._svc.keyword_index_changed()
        log.info("upload %s as %s: %s", original, name, report.to_dict())
        return self._svc.store.require_document(doc_id_for(target)), report.to_dict()

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
            self._svc.keyword_index_changed()
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
                store = wiring.build_store(self.settings)
                try:
                    done = reconcile_folder(self.uploads, store, Path(self.settings.data_dir) / "orphaned-uploads")
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
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(Path(self.settings.data_dir) / "uploads.lock"))
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

    def _ingestor(self, on_event=None):
        store = wiring.build_store(self.settings)
        return wiring.build_ingestor(self.settings, on_event, embedder=self._svc.embedder, store=store), store


def _probe(lock_path: Path) -> None:
    """Refuse now, not in the background, when another process (lore ingest) holds the ingest lock."""
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreLocked(f"another ingest is writing to {lock_path.parent.name}; wait for it to finish") from None
    lock.release()


def resolve_in_roots(raw: str, roots: Sequence[Path]) -> Path:
    """The absolute path `raw` names, refused unless it exists inside an ingest root, links followed."""
    where = f"paths: {raw!r}"
    try:
        os.fsencode(raw)  # a lone surrogate has no file name
    except UnicodeEncodeError:
        raise ConfigError(f"{where} is not a usable path") from None
    if not raw.strip() or any(ord(ch) < 32 for ch in raw):
        raise ConfigError(f"{where} is not a usable path")
    p = Path(raw)
    if ".." in p.parts:
        raise ConfigError(f"{where} contains '..'; give the path inside {ROOTS_VAR} without it")
    real_roots = [(Path(os.path.abspath(r)), _real(r)) for r in roots]
    tries = [p] if p.is_absolute() else [lex / p for lex, _ in real_roots]
    escapes = False
    for t in tries:
        lexical, real = Path(os.path.abspath(t)), _real(t)
        if not any(_inside(lexical, lex) or _inside(lexical, rr) for lex, rr in real_roots):
            continue
        if real is None or not any(_inside(real, rr) for _, rr in real_roots):
            escapes = True  # a link (or a loop) leads out of the roots
        elif real.exists():
            return lexical
    if escapes:
        raise ConfigError(f"{where} links outside the folders {ROOTS_VAR} allows; ingest the target's own "
                          "folder or add it to the setting")
    if p.is_absolute() and not any(_inside(p, lex) or _inside(p, rr) for lex, rr in real_roots):
        raise ConfigError(f"{where} is not inside the folders {ROOTS_VAR} allows "
                          f"({', '.join(str(lex) for lex, _ in real_roots)}); use a path under one of them")
    raise ConfigError(f"{where} does not exist inside the folders {ROOTS_VAR} allows; check the path")


def _real(p: Path) -> Path | None:
    try:
        return Path(p).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None


def _inside(p: Path, root: Path | None) -> bool:
    return root is not None and (p == root or p.is_relative_to(root))


def _no_escapes(paths: Sequence[str], exclude: Sequence[str], roots: Sequence[Path]) -> None:
    """Refuse a folder holding a link to a file or folder outside the roots: the walk would follow it."""
    real_roots = [r for r in (_real(x) for x in roots) if r is not None]
    for cand in discover(paths, exclude).candidates:
        real = _real(cand.path)
        if real is None or not any(_inside(real, r) for r in real_roots):
            raise ConfigError(f"paths: {cand.path} links outside the folders {ROOTS_VAR} allows; remove the link or "
                              "exclude it (exclude: [...])")


def safe_filename(raw: str | None) -> str:
    """An uploaded file's name, safe to store: the last path part, no control characters, no leading dots, capped."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = re.sub(r"[^\w.\- ()+,@]", "_", name)
    name = re.sub(r"\.{2,}", ".", re.sub(r"\s+", " ", name)).strip(" .")
    stem, ext = os.path.splitext(name)
    if len(name) > MAX_NAME:
        name = stem[:MAX_NAME - len(ext)].rstrip(" .") + ext
        stem = os.path.splitext(name)[0]
    if not stem or format_of(name) is None:
        raise UnsupportedFormat(name or "(no name)", f"the file name needs a supported extension; {_ALLOWED}")
    return name


def upload_key(raw: str | None) -> str:
    """The name a file was uploaded as, for telling uploads apart: its last path part, in NFC."""
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", raw or ""))[-1]
    return name.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate cannot be stored


def stored_name(names: dict[str, str], original: str, plain: str, folder: Path) -> str:
    """The file name for an upload named `original` whose sanitized name is `plain` (see Jobs.upload).

    `names` maps stored names to the names they were uploaded as; a file without an entry (uploaded
    before names were recorded) counts as uploaded under its own name.
    """
    for stored, orig in names.items():
        if orig == original:
            return stored
    owner = names.get(plain) or (plain if (folder / plain).exists() else None)
    if owner in (None, original):
        return plain
    stem, ext = os.path.splitext(plain)
    tag = "~" + hashlib.sha256(original.encode()).hexdigest()[:10]
    return stem[:MAX_NAME - len(ext) - len(tag)] + tag + ext


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename gives it its final name


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def reconcile_folder(folder: Path, store, quarantine: Path) -> dict[str, list[str]]:
    """Jobs.reconcile_uploads on one folder: returns the names removed, restored and quarantined."""
    done: dict[str, list[str]] = {"removed": [], "restored": [], "quarantined": []}
    docs = store.get_documents(store.doc_ids_with_prefix(str(folder) + os.sep))
    tracked = {Path(d.uri).name: d.version for d, _ in docs.values() if Path(d.uri).parent == folder}
    backups = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith(".") and name.endswith(".part"):  # cut short before its rename: never a document
            entry.unlink(missing_ok=True)
            done["removed"].append(name)
        elif name.startswith(".") and name.endswith(".previous"):
            backups.append(entry)
        elif name not in tracked:
            quarantine.mkdir(parents=True, exist_ok=True)
            dest = quarantine / name
            if dest.exists():
                dest = quarantine / f"{name}.{uuid.uuid4().hex[:8]}"
            os.replace(entry, dest)
            done["quarantined"].append(name)
    for b in backups:  # the version a killed re-upload moved aside: back if the registry still holds it
        digest = _sha256(b)
        home = next((n for n, v in tracked.items() if v == digest and _sha256(folder / n) != v), None)
        if home is not None:
            os.replace(b, folder / home)
            done["restored"].append(home)
        else:
            b.unlink(missing_ok=True)
            done["removed"].append(b.name)
    stale = [n for n in store.upload_names() if n not in tracked]
    if stale:
        store.drop_upload_names(stale)
    return done


def check_type(name: str, data: bytes) -> None:
    """Refuse content that is not what the extension says (415); an empty file is left to the parser (422)."""
    fmt = format_of(name)
    if not data:
        return
    if fmt == "pdf":
        if b"%PDF-" not in data[:1024]:
            raise UnsupportedFormat(name, f"is not a PDF (no %PDF header); {_ALLOWED}")
    elif fmt in _OFFICE_PART:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                ok = _OFFICE_PART[fmt] in z.namelist()
        except (zipfile.BadZipFile, ValueError, OSError):
            ok = False
        if not ok:
            raise UnsupportedFormat(name, f"is not a {fmt.upper()} document; {_ALLOWED}")
    else:
        kind = next((what for magic, what in _MAGIC if data.startswith(magic)), None)
        if kind or b"\x00" in data[:8192]:
            raise UnsupportedFormat(name, f"is {kind or 'binary data'}, not text; {_ALLOWED}")
