"""Sync a source into the knowledge base: its whole inventory, compared with what is stored, every time.

    report = Syncer(ingestor).sync(GitSource("handbook", "/srv/handbook", cache_dir=...))

Added, changed (content, readers, owners, place) and vanished items all take effect in the same sync;
unchanged ones cost only their line of the inventory. A source that cannot be listed completely changes
nothing, and one that lists nothing where documents are stored is refused (a broken listing must never
empty the knowledge base). Each document is stored with ingest's crash safety, so a sync killed at any
point and run again ends as one clean sync.

The engine is ingest's own (`Ingestor.plan`, then its batches): `lore ingest` is the files source run
through it. A files source shares its documents with `lore ingest` (a file's id is its path's), and a sync
of it also removes the documents under its folders that it no longer lists, as `lore ingest` does.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from ingest.errors import ConfigError, IngestError
from ingest.formats import format_of
from ingest.pipeline import IngestReport, Ingestor
from ingest.sources.base import ItemUnavailable, Source, SourceError, SourceItem, source_doc_id
from ingest.sources.files import FILES, FilesSource
from ingest.types import DOC_TYPES, validate_acl

log = logging.getLogger(__name__)
__all__ = ["SyncReport", "Syncer", "source_doc_id"]


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
        if source.name == FILES:
            raise ConfigError(f"the source name {FILES!r} is kept for what `lore ingest` stores; remove this source "
                              "and add it again under another name")
        report, t0 = SyncReport(source.name), time.monotonic()
        ing = self.ingestor
        folders = source.folders() if isinstance(source, FilesSource) else []
        with ing._locked():
            ing.reconcile()
            try:
                items = list(source.inventory())
            except SourceError as exc:
                return self._done(report, t0, f"the inventory could not be listed, so nothing changed: {exc}")
            stored = ing.store.source_documents(source.name)
            report.listed = len(items)
            held = len(stored) or sum(len(ing.store.doc_ids_under(str(f) + os.sep)) for f in folders)
            if not items and held and not allow_empty:
                return self._done(report, t0, f"{source.name} listed nothing where {held} documents are "
                                  "stored, so nothing was deleted; check the source's settings and access, or "
                                  "sync with --allow-empty if it really is empty now")
            ing.store.set_dirty(True)
            ingested = IngestReport()
            # a files source looks documents up by id: one another files listing stored is the same document
            todo = ing.plan(source, ((item, None) for item in items), doc_type, acl_tokens, tuple(owners), ingested,
                            None if folders else stored, lambda item: self._fetch(source, item))
            ing.on_event("plan", {"files": len(items), "todo": len(todo)})
            ing._run(todo, doc_type, acl_tokens, ingested)
            seen = {item.external_id for item in items}
            for ext_id in sorted(set(stored) - seen):  # gone from the source: gone from the knowledge base
                ing._remove(stored[ext_id][0].id)
                ingested.deleted += 1
                ing.on_event("deleted", {"doc_id": stored[ext_id][0].id, "uri": stored[ext_id][0].uri})
            ing.remove_unlisted(folders, {item.uri for item in items}, ingested)
            ing.store.set_dirty(False)
        report.added, report.updated, report.chunks = ingested.added, ingested.updated, ingested.chunks
        report.unchanged, report.deleted = ingested.unchanged, ingested.deleted
        report.acl_changed = ingested.acl_changed
        report.failed += [{"item": f["path"], "reason": f["error"]} for f in ingested.failed]
        return self._done(report, t0)

    # -- steps ---------------------------------------------------------------------------------
    def _fetch(self, source: Source, item: SourceItem) -> bytes:
        """The item's bytes, or IngestError naming it and why not (the sync reports it and goes on)."""
        where = item.path or item.name
        if format_of(item.name) is None:
            raise IngestError(where, f"{item.name} is not a format Lore reads; exclude it at the source")
        try:
            data = source.fetch(item)
        except ItemUnavailable as exc:
            raise IngestError(where, exc.reason) from None
        except SourceError as exc:
            raise IngestError(where, str(exc)) from None
        if len(data) > self.ingestor.max_file_bytes:
            raise IngestError(where, f"is {len(data) / 2**20:.1f} MiB, over the "
                              f"{self.ingestor.max_file_bytes / 2**20:.0f} MiB limit (LORE_INGEST__MAX_FILE_MB)")
        return data

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

