"""The source seam: a full inventory of what a source holds, and one item's bytes.

    src = GitSource(repo="/srv/handbook", branch="main")
    for item in src.inventory():          # the whole listing, every sync; never a time window
        data = src.fetch(item)            # bytes a parser reads, chosen by item.name's extension

A sync compares the inventory with the knowledge base: new and changed versions are fetched and
ingested, items no longer listed are removed, changed readers take effect. A source that cannot list
its inventory completely raises `SourceUnavailable` and the sync changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterator, Protocol

from ingest.errors import LoreError


class SourceError(LoreError):
    """A source could not be read; the message names the source, what failed and what to do."""


class SourceUnavailable(SourceError):
    """The inventory could not be listed completely; a sync must not delete anything on it."""


class ItemUnavailable(SourceError):
    """One item could not be fetched; the sync reports it and goes on with the others."""

    def __init__(self, external_id: str, reason: str) -> None:
        super().__init__(f"{external_id}: {reason}")
        self.external_id, self.reason = external_id, reason

    def __reduce__(self):
        return (type(self), (self.external_id, self.reason))


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One document as the source lists it."""

    external_id: str  # stable within the source across edits and renames (a path, a page id)
    name: str  # a file name whose extension picks the parser: "runbook.md", "page-123.html", "spec.pdf"
    version: str  # changes whenever the content changes (blob id, page version, sha256)
    updated_at: str  # ISO 8601 with offset: when the content last changed at the source
    uri: str  # where a person opens it
    title: str = ""  # "" = the parser's title or the file name
    acl: tuple[str, ...] = ()  # Lore tokens (user:, group:, public); () = not stated, the default applies
    owners: tuple[str, ...] = ()  # who keeps it: "user:<id or email>" or "group:<name>"
    path: str = ""  # the item's path inside the source, for display and sub-path filters


class Source(Protocol):
    """A place documents live. `name` is the configured source name ("handbook", "eng-wiki")."""

    name: str

    def inventory(self) -> Iterator[SourceItem]:
        """Every item the source holds now; raises SourceUnavailable if the listing is incomplete."""
        ...

    def fetch(self, item: SourceItem) -> bytes:
        """The item's content at `item.version`; raises ItemUnavailable for this item alone."""
        ...


def source_doc_id(source: str, external_id: str) -> str:
    """Stable id of a source's item: a readable slug of its id plus a hash of (source, id). The files
    source is the exception: a file's id comes from its path alone (`ingest.sources.files.doc_id_for`)."""
    tail = external_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", PurePosixPath(tail).stem.lower()).strip("-")[:40] or "doc"
    digest = hashlib.sha256(f"{source}\0{external_id}".encode()).hexdigest()[:12]
    return f"{slug}-{digest}"
