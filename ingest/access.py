"""Who is asking (Principal), what they narrow a search to (Filters), and the ACL tokens that admits (Access).

The neutral permission and filter vocabulary: the stores below compile it into their own query language,
the layers above pass it down unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

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
