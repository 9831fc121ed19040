"""Files and folders as a source: the same selection as `lore ingest` (discover, .loreignore, excludes).

    src = FilesSource("shared-drive", ["/srv/policies"], exclude=["drafts/"])

The external id is the file's absolute path, the version the sha256 of its bytes, `updated_at` its mtime
(front matter's date still wins at ingest). Files have no readers or owners of their own: the sync's
configured ones apply, else front matter, else the stored ones. A path argument that is gone, or a file
that cannot be read, makes the listing incomplete: SourceUnavailable, and the sync deletes nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from ingest.discover import discover
from ingest.errors import ConfigError
from ingest.sources.base import ItemUnavailable, SourceItem, SourceUnavailable


class FilesSource:
    def __init__(self, name: str, paths: Sequence[str | Path], *, exclude: Sequence[str] = ()) -> None:
        if not paths:
            raise ConfigError(f"files source {name!r} needs at least one file or folder")
        self.name, self.paths, self.exclude = name, [Path(p) for p in paths], tuple(exclude)

    def inventory(self) -> Iterator[SourceItem]:
        found = discover(self.paths, self.exclude)
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
            items.append(SourceItem(
                external_id=str(c.path), name=c.path.name, version=hashlib.sha256(data).hexdigest(),
                updated_at=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc).isoformat(), uri=str(c.path),
                path=str(c.path)))
        yield from items

    def fetch(self, item: SourceItem) -> bytes:
        try:
            data = Path(item.external_id).read_bytes()
        except OSError as exc:
            raise ItemUnavailable(item.external_id, f"cannot be read ({exc.strerror})") from None
        if hashlib.sha256(data).hexdigest() != item.version:
            raise ItemUnavailable(item.external_id, "changed since it was listed; the next sync stores it")
        return data
