"""Sync a source into the knowledge base: its whole inventory, compared with what is stored, every time.

    report = Syncer(ingestor).sync(GitSource("handbook", "/srv/handbook", cache_dir=...))

Added, changed (content, readers, owners, place) and vanished items all take effect in the same sync;
unchanged ones cost only their line of the inventory. A source that cannot be listed completely changes
nothing, and one that lists nothing where documents are stored is refused (a broken listing must never
empty the knowledge base). Each document is stored with ingest's crash safety, so a sync killed at any
point and run again ends as one clean sync.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from ingest.discover import Candidate
from ingest.errors import ConfigError
from ingest.formats import format_of
from ingest.pipeline import IngestReport, Ingestor, _Pending, _same_pipeline
from ingest.sources.base import ItemUnavailable, Source, SourceError, SourceItem
from ingest.types import DOC_TYPES, validate_acl

log = logging.getLogger(__name__)


def source_doc_id(source: str, external_id: str) -> str:
    """Stable id of a source's item: a readable slug of its id plus a hash of (source, id)."""
    tail = external_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", Path(tail).stem.lower()).strip("-")[:40] or "doc"
    digest = hashlib.sha256(f"{source}\0{external_id}".encode()).hexdigest()[:12]
    return f"{slug}-{digest}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class SyncReport:
    """What one sync did. status: ok, partial (some items failed, the rest took effect), failed (nothing
    changed: the inventory could not be listed, or listed nothing where documents are stored)."""

    source: str
    started_at: str = field(default_factory=_now)
    finished_at: str = ""
    duration_s: float = 0.0
    status: str = "running"
    error: str | None = None
    listed: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    failed: list[dict] = field(default_factory=list)  # {item, reason}
    acl_changed: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class Syncer:
    """Runs syncs through one Ingestor (its write lock, parsers, model and stores)."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor

    def sync(self, source: Source, *, doc_type: str | None = None, acl: Sequence[str] = (),
             owners: Sequence[str] = (), allow_empty: bool = False) -> SyncReport:
        """`acl` and `owners` apply to items whose source states none (Git states none)."""
        if doc_type is not None and doc_type not in DOC_TYPES:
            raise ConfigError(f"doc type {doc_type!r} is not one of {', '.join(DOC_TYPES)}")
        acl_tokens = validate_acl(list(acl), "source acl")
        report, t0 = SyncReport(source.name), time.monotonic()
        ing = self.ingestor
        with ing._locked():
            ing.reconcile()
            try:
                items = list(source.inventory())
            except SourceError as exc:
                return self._done(report, t0, f"the inventory could not be listed, so nothing changed: {exc}")
            stored = ing.store.source_documents(source.name)
            report.listed = len(items)
            if not items and stored and not allow_empty:
                return self._done(report, t0, f"{source.name} listed nothing where {len(stored)} documents are "
                                  "stored, so nothing was deleted; check the source's settings and access, or "
                                  "sync with --allow-empty if it really is empty now")
            ing.store.set_dirty(True)
            seen: set[str] = set()
            todo: list[tuple[_Pending, bytes]] = []
            fp = ing._fingerprint(doc_type)
            for item in items:
                if item.external_id in seen:
                    continue
                seen.add(item.external_id)
                prev = stored.get(item.external_id)
                if prev is not None and self._unchanged(prev[0], prev[1], fp, item, acl_tokens, owners):
                    report.unchanged += 1
                    continue
                got = self._fetch(source, item, report)
                if got is not None:
                    todo.append((self._pending(source.name, item, got, fp, prev, owners), got))
            ingested = IngestReport()
            ing._run(todo, doc_type, acl_tokens, ingested)
            for ext_id in sorted(set(stored) - seen):  # gone from the source: gone from the knowledge base
                ing._remove(stored[ext_id][0].id)
                report.deleted += 1
                ing.on_event("deleted", {"doc_id": stored[ext_id][0].id, "uri": stored[ext_id][0].uri})
            ing.store.set_dirty(False)
        report.added, report.updated, report.chunks = ingested.added, ingested.updated, ingested.chunks
        report.acl_changed = ingested.acl_changed
        report.failed += [{"item": f["path"], "reason": f["error"]} for f in ingested.failed]
        return self._done(report, t0)

    # -- steps ---------------------------------------------------------------------------------
    @staticmethod
    def _unchanged(doc, fingerprint: str, fp: str, item: SourceItem, acl: tuple[str, ...],
                   owners: Sequence[str]) -> bool:
        want_acl = item.acl or acl
        want_owners = tuple(item.owners or owners)
        return (doc.version == item.version and _same_pipeline(fingerprint, fp) and doc.uri == item.uri
                and (not item.title or doc.title == item.title) and (not want_acl or doc.acl == want_acl)
                and (not want_owners or doc.owners == want_owners))

    def _fetch(self, source: Source, item: SourceItem, report: SyncReport) -> bytes | None:
        where = item.path or item.name
        if format_of(item.name) is None:
            self._failed(report, where, f"{item.name} is not a format Lore reads; exclude it at the source")
            return None
        try:
            data = source.fetch(item)
        except ItemUnavailable as exc:
            self._failed(report, where, exc.reason)
            return None
        except SourceError as exc:
            self._failed(report, where, str(exc))
            return None
        if len(data) > self.ingestor.max_file_bytes:
            self._failed(report, where, f"is {len(data) / 2**20:.1f} MiB, over the "
                         f"{self.ingestor.max_file_bytes / 2**20:.0f} MiB limit (LORE_INGEST__MAX_FILE_MB)")
            return None
        return data

    def _failed(self, report: SyncReport, where: str, reason: str) -> None:
        report.failed.append({"item": where, "reason": reason})
        log.warning("sync: skipped %s: %s", where, reason)
        self.ingestor.on_event("failed", {"path": where, "error": reason})
        return None

    @staticmethod
    def _pending(source: str, item: SourceItem, data: bytes, fp: str, prev, owners: Sequence[str]) -> _Pending:
        doc_id = source_doc_id(source, item.external_id)
        where = Path(item.path).parent / item.name if item.path else Path(item.name)  # the name picks the parser
        return _Pending(Candidate(where, None), doc_id, item.version, len(data), 0.0, fp,
                        prev[0].acl if prev is not None else None, item=item, source=source,
                        owners=tuple(owners))

    @staticmethod
    def _done(report: SyncReport, t0: float, error: str | None = None) -> SyncReport:
        report.finished_at, report.duration_s = _now(), round(time.monotonic() - t0, 3)
        report.error = error
        report.status = "failed" if error else "partial" if report.failed else "ok"
        if error:
            log.error("sync %s failed: %s", report.source, error)
        else:
            log.info("sync %s: %d listed, %d added, %d updated, %d deleted, %d unchanged, %d failed in %.1f s",
                     report.source, report.listed, report.added, report.updated, report.deleted,
                     report.unchanged, len(report.failed), report.duration_s)
        return report

