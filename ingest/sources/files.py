"""Files and folders as a source: what `lore ingest` reads, and a configured `files` source too.

    src = FilesSource("shared-drive", ["/srv/policies"], exclude=["drafts/"])

The external id is the file's absolute path as found (links not resolved), the version the sha256 of its
bytes, `updated_at` its mtime (front matter's date still wins at ingest). A file is one document whichever
files listing stores it: its id is `doc_id_for(path)`, the id folder ingest has always given it, so
`lore ingest` and a files source over the same folder share their documents. Files have no readers or
owners of their own: the configured ones (--acl, --owner) apply, else front matter, else the stored ones.

Two ways to list: `inventory()` for a sync, where a path that is gone or a file that cannot be read makes
the listing incomplete (SourceUnavailable: the sync deletes nothing); and `scan()` + `read()` for
`lore ingest`, which reports such files one by one and stores the rest.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ingest.discover import Candidate, Discovery, confiner, discover, outside_roots
from ingest.errors import ConfigError, FileTooLarge, IngestError, UnreadableFile
from ingest.sources.base import ItemUnavailable, SourceItem, SourceUnavailable

FILES = "files"  # the source of what `lore ingest` and uploads store; no configured source may take the name


def doc_id_for(path: Path) -> str:
    """Stable id from the file's absolute path: a readable slug plus a short hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:48] or "doc"
    return f"{slug}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


class FilesSource:
    """`confine` (see `discover`) keeps the walk inside those folders; `max_file_bytes` makes `read` refuse
    larger files (a sync applies its own limit after `fetch`)."""

    def __init__(self, name: str, paths: Sequence[str | Path], *, exclude: Sequence[str] = (),
                 confine: Sequence[str | Path] | None = None, max_file_bytes: int | None = None) -> None:
        if not paths:
            raise ConfigError(f"files source {name!r} needs at least one file or folder")
        self.name, self.paths, self.exclude = name, [Path(p) for p in paths], tuple(exclude)
        self.confine, self.max_file_bytes = confine, max_file_bytes
        self._inside: Callable[[Path], bool] | None = confiner(confine)

    @staticmethod
    def doc_id(item: SourceItem) -> str:
        return doc_id_for(Path(item.external_id))

    def folders(self) -> list[Path]:
        """The folder arguments, spelled as discovery spells them (a document's uri starts with one)."""
        got = [Path(os.path.abspath(p.expanduser())) for p in self.paths]
        return [p for p in got if p.is_dir()]

    # -- `lore ingest`: failures one by one ------------------------------------------------------
    def scan(self) -> Discovery:
        """The files to read, the walk's failures, the folders walked completely, what was excluded;
        a bad exclude pattern raises ConfigError before anything is read."""
        return discover(self.paths, self.exclude, self.confine)

    def read(self, cand: Candidate) -> tuple[SourceItem, bytes]:
        """One found file as an item with its bytes; IngestError says why it cannot be."""
        try:
            st = cand.path.stat()
            if self.max_file_bytes is not None and st.st_size > self.max_file_bytes:
                raise FileTooLarge(str(cand.path), f"is {st.st_size / 2**20:.1f} MiB, over the "
                                   f"{self.max_file_bytes / 2**20:.0f} MiB limit; split it or raise "
                                   "LORE_INGEST__MAX_FILE_MB")
            data = cand.path.read_bytes() if self._inside is None else _read_confined(cand.path, self._inside)
        except IngestError:
            raise
        except OSError as exc:
            raise UnreadableFile(str(cand.path), f"cannot be read ({exc.strerror}); check permissions") from None
        return _item(cand.path, data, st.st_mtime), data

    # -- the Source protocol: a complete listing or none -------------------------------------------
    def inventory(self) -> Iterator[SourceItem]:
        found = self.scan()
        if found.failures:
            first = found.failures[0]
            raise SourceUnavailable(f"{self.name}: {len(found.failures)} paths cannot be read (e.g. {first}); "
                                    "nothing was changed")
        items = []
        for c in found.candidates:
            try:
                data, st = c.path.read_bytes(), c.path.stat()
            except OSError as exc:
                raise SourceUnavailable(f"{self.name}: {c.path} cannot be read ({exc.strerror}); check "
                                        "permissions; nothing was changed") from None
            items.append(_item(c.path, data, st.st_mtime))
        yield from items

    def fetch(self, item: SourceItem) -> bytes:
        try:
            data = Path(item.external_id).read_bytes()
        except OSError as exc:
            raise ItemUnavailable(item.external_id, f"cannot be read ({exc.strerror})") from None
        if hashlib.sha256(data).hexdigest() != item.version:
            raise ItemUnavailable(item.external_id, "changed since it was listed; the next sync stores it")
        return data


def _item(path: Path, data: bytes, mtime: float) -> SourceItem:
    where = str(path)
    return SourceItem(external_id=where, name=path.name, version=hashlib.sha256(data).hexdigest(),
                      updated_at=datetime.fromtimestamp(mtime, tz=timezone.utc).isoformat(), uri=where, path=where)


def _read_confined(path: Path, inside: Callable[[Path], bool]) -> bytes:
    """Read a file only if it still lies inside the confine folders: a file swapped for a link after the
    walk is refused, and O_NOFOLLOW refuses a link swapped in between this check and the open."""
    real = path.resolve(strict=True)
    if not inside(real):
        raise outside_roots(path)
    fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()
