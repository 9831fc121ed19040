"""Core types: frozen dataclasses with typed provenance fields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.errors import ConfigError

DEFAULT_ACL_MARK = "@default"  # stored for documents without an ACL: the retriever applies the configured default

DOC_TYPES = ("policy", "spec", "incident", "other")
PUBLIC = "public"
_ACL_TOKEN = re.compile(r"^(public|(user|group):[A-Za-z0-9._@+\-]{1,128})\Z")


def validate_acl(tokens: tuple[str, ...] | list[str], where: str = "--acl") -> tuple[str, ...]:
    """Return sorted, de-duplicated ACL tokens; raise ConfigError naming the bad one."""
    out = set()
    for tok in tokens:
        t = str(tok).strip()
        if not _ACL_TOKEN.match(t):
            raise ConfigError(
                f"{where}: invalid ACL token {tok!r}; use 'public', 'user:ID' or 'group:NAME' "
                "(letters, digits and . _ @ + - only)"
            )
        out.add(t)
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class Block:
    """One structural element of a parsed document, in reading order."""

    kind: str  # title | text | list | table | code
    text: str
    level: int = 0  # heading depth for titles (1 = top), 0 otherwise
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedDoc:
    """What a parser extracts from one file before chunking."""

    blocks: tuple[Block, ...]
    title: str | None = None
    front_matter: dict = field(default_factory=dict)
    has_pages: bool = False


@dataclass(frozen=True, slots=True)
class SourceDoc:
    """A stored document version with its provenance."""

    id: str
    uri: str
    title: str
    doc_type: str
    version: str  # sha256 of the content's bytes
    updated_at: str  # ISO 8601: front matter, else the source's time (last commit, page version), else mtime
    ingested_at: str
    acl: tuple[str, ...]  # empty = the configured default ACL applies
    size: int = 0
    chunk_count: int = 0
    owners: tuple[str, ...] = ()  # who keeps it: user:/group: tokens or emails (source, front matter, --owner)
    source: str = ""  # the configured source it was synced from; "" = ingested from files
    external_id: str = ""  # its id inside that source (stable across renames)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage: an exact span [start, end) of its document's normalized text."""

    id: str
    doc_id: str
    version: str
    ordinal: int
    text: str
    section: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    start: int
    end: int
    content_hash: str
    token_count: int

    @property
    def section_path(self) -> str:
        return " > ".join(self.section)
