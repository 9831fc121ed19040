"""Who is asking (Principal), what they narrow a search to (Filters), the ACL tokens that admits (Access),
and all of it together for one search (Scope).

The neutral permission and filter vocabulary: the stores below compile a Scope into their own query
language (`ingest.chroma_store.chroma_where`, `ingest.sqlite_store.scope_sql`), the layers above pass it
down unchanged. `Scope.admits` is the same rule in Python: the last, fail-closed check on every hit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Iterable

from ingest.errors import ConfigError, InvalidInput
from ingest.types import DEFAULT_ACL_MARK, DOC_TYPES, PUBLIC, SourceDoc

_NAME = re.compile(r"^[A-Za-z0-9._@+\-]{1,128}\Z")
_META_KEY = re.compile(r"^[A-Za-z0-9_]{1,40}\Z")
Scalar = str | int | float | bool
INT64 = (-2**63, 2**63 - 1)  # what front matter values are stored as, in Chroma and in SQLite


@dataclass(frozen=True, slots=True)
class Principal:
    """A reader: user id plus groups. Reads what is `public`, `user:<id>` or `group:<g>` for its groups."""

    user_id: str | None = None
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.user_id is not None and not _NAME.match(self.user_id):
            raise ConfigError(f"user id {self.user_id!r} is not valid; use letters, digits and . _ @ + - only")
        for g in self.groups:
            if not _NAME.match(g):
                raise ConfigError(f"group {g!r} is not valid; use letters, digits and . _ @ + - only")

    @classmethod
    def of(cls, user: str | None, groups: str | list[str] | tuple[str, ...] | None = None) -> "Principal":
        """Build from CLI/API input: groups as a list or a comma-separated string."""
        if isinstance(groups, str):
            groups = [g for g in (x.strip() for x in groups.split(",")) if g]
        return cls(user or None, tuple(sorted(set(groups or ()))))

    def tokens(self) -> tuple[str, ...]:
        toks = [PUBLIC, *(f"group:{g}" for g in self.groups)]
        if self.user_id:
            toks.append(f"user:{self.user_id}")
        return tuple(sorted(set(toks)))


@dataclass(frozen=True, slots=True)
class Filters:
    """Narrow a search. Every field is optional; all given fields must hold (AND); lists are OR within.

    >>> Filters(doc_types=("policy",), updated_after=datetime(2025, 1, 1, tzinfo=timezone.utc))
    """

    doc_types: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    path_prefix: str | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    metadata: tuple[tuple[str, Scalar], ...] = ()  # front matter key = value, as stored at ingest

    def __post_init__(self) -> None:
        for name in ("doc_types", "doc_ids"):
            v = getattr(self, name)
            if isinstance(v, str) or not isinstance(v, (tuple, list)):
                raise InvalidInput(f"filter {name.replace('_', ' ')[:-1]} list ({name}) must be a list of strings, got {v!r}")
            object.__setattr__(self, name, tuple(v))
        if isinstance(self.metadata, dict):
            object.__setattr__(self, "metadata", tuple(self.metadata.items()))
        for name in ("updated_after", "updated_before"):
            v = getattr(self, name)
            if isinstance(v, str):
                try:
                    object.__setattr__(self, name, datetime.fromisoformat(v))
                except ValueError:
                    raise InvalidInput(f"filter {name} {v!r} is not a date; use YYYY-MM-DD or ISO 8601") from None
            elif v is not None and not isinstance(v, datetime):
                raise InvalidInput(f"filter {name} must be a datetime or ISO 8601 string, got {v!r}")
        for t in self.doc_types:
            if t not in DOC_TYPES:
                raise InvalidInput(f"filter doc type {t!r} is not one of {', '.join(DOC_TYPES)}")
        for k, v in self.metadata:
            if not _META_KEY.match(k):
                raise InvalidInput(f"metadata filter key {k!r} is not valid; use letters, digits and _ (max 40)")
            if not isinstance(v, (str, int, float, bool)):
                raise InvalidInput(f"metadata filter {k!r} needs a string, number or boolean value, got {v!r}")
            _check_storable(k, v)
        for name in ("updated_after", "updated_before"):
            v = getattr(self, name)
            if v is not None and v.tzinfo is None:
                object.__setattr__(self, name, v.replace(tzinfo=timezone.utc))
        if self.updated_after and self.updated_before and self.updated_after > self.updated_before:
            raise InvalidInput("filter updated_after is later than updated_before; nothing could match")

    @property
    def empty(self) -> bool:
        return self == Filters()


def _check_storable(key: str, v: Scalar) -> None:
    """A value no document can hold (Chroma and SQLite store 64-bit integers, finite floats, UTF-8 text) is
    an input error naming the field, not a storage failure."""
    if isinstance(v, int) and not isinstance(v, bool) and not INT64[0] <= v <= INT64[1]:
        raise InvalidInput(f"metadata filter {key!r}: {v} is outside the 64-bit integer range front matter can "
                          f"hold ({INT64[0]} to {INT64[1]}); quote it to match it as text")
    if isinstance(v, float) and not math.isfinite(v):
        raise InvalidInput(f"metadata filter {key!r}: {v} is not a finite number; use a finite number or a string")
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"metadata filter {key!r}: the value is not valid Unicode text (a lone surrogate); "
                              "send it as UTF-8") from None



@dataclass(frozen=True, slots=True)
class Access:
    """The ACL tokens a principal matches, with the default-ACL marker when the default admits them."""

    tokens: tuple[str, ...]

    @classmethod
    def for_principal(cls, principal: Principal, default_acl: tuple[str, ...]) -> "Access":
        own = principal.tokens()
        extra = (DEFAULT_ACL_MARK,) if set(own) & set(default_acl) else ()
        return cls(tuple(sorted({*own, *extra})))

    def can_read(self, doc: SourceDoc) -> bool:
        # a stored ACL that names the marker itself grants nothing through it: only an empty ACL does
        acl = tuple(t for t in doc.acl if t != DEFAULT_ACL_MARK) if doc.acl else (DEFAULT_ACL_MARK,)
        return bool(set(acl) & set(self.tokens))


@dataclass(frozen=True, slots=True)
class Scope:
    """What one search may see: the reader's access, the filters, and the documents the id and path filters
    resolved to over readable documents (`doc_ids`; None until resolved, () when they name none).

    Resolved ids stand for the id and path filters (a path prefix has no Chroma operator), so a store
    compiles `ids` and applies `path_prefix` only while unresolved.

    >>> Scope(access, Filters(doc_types=("policy",)))  # admits the readable policies
    """

    access: Access
    filters: Filters = field(default_factory=Filters)
    doc_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.doc_ids is not None:
            object.__setattr__(self, "doc_ids", tuple(self.doc_ids))

    def resolved(self, doc_ids: Iterable[str]) -> "Scope":
        """This scope with the id and path filters resolved to `doc_ids` (over readable documents)."""
        return replace(self, doc_ids=tuple(doc_ids))

    @property
    def ids(self) -> tuple[str, ...] | None:
        """The document ids the scope is limited to, or None for no limit."""
        if self.doc_ids is None:
            return self.filters.doc_ids or None
        if self.filters.doc_ids:  # resolved ids come from the id filter: this only guards a hand-made Scope
            named = set(self.filters.doc_ids)
            return tuple(d for d in self.doc_ids if d in named)
        return self.doc_ids

    @property
    def path_prefix(self) -> str | None:
        """The path filter while it is not resolved to ids."""
        return self.filters.path_prefix if self.doc_ids is None else None

    @property
    def narrowed(self) -> bool:
        """Whether anything besides permissions restricts the scope."""
        return self.doc_ids is not None or not self.filters.empty

    def admits(self, doc: SourceDoc, front_matter: dict) -> bool:
        """The last check before a hit is returned: permission and every filter, fail closed."""
        return doc_matches(self.access, self.filters, doc, front_matter) and (
            self.doc_ids is None or doc.id in self.doc_ids)


def doc_matches(access: Access, f: Filters, doc: SourceDoc, front_matter: dict) -> bool:
    """Permission and every filter over a registry row, in Python: what the stores' compiled filters mean."""
    if not access.can_read(doc):
        return False
    if f.doc_types and doc.doc_type not in f.doc_types:
        return False
    if f.doc_ids and doc.id not in f.doc_ids:
        return False
    if f.path_prefix and not doc.uri.startswith(f.path_prefix):
        return False
    if f.updated_after or f.updated_before:
        ts = datetime.fromisoformat(doc.updated_at)
        if (f.updated_after and ts < f.updated_after) or (f.updated_before and ts > f.updated_before):
            return False
    return all(k in front_matter and front_matter[k] == v and type(front_matter[k]) is type(v)
               for k, v in f.metadata)
