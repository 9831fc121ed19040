"""Owners in the analytics: each item (stale document, gap cluster, conflict) lists the owners of its
documents, reports filter on one owner and count their items by owner, so each team sees its own work.

An item's owner keys are the owners of each of its documents, and NO_OWNER for a document that has none,
so `--owner "(no owner)"` lists what nobody keeps.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

NO_OWNER = "(no owner)"


def owner_keys(per_doc: Iterable[Sequence[str]]) -> list[str]:
    """The owners of an item's documents in order, NO_OWNER standing for each document without any (and
    for an item without documents)."""
    keys: dict[str, None] = {}
    for owners in per_doc:
        for o in owners or (NO_OWNER,):
            keys.setdefault(o, None)
    return list(keys) or [NO_OWNER]


def by_owner(keys: Iterable[Sequence[str]]) -> dict[str, int]:
    """Items per owner key, most first (an item with two owners counts for both)."""
    counts = Counter(k for ks in keys for k in dict.fromkeys(ks))
    return dict(sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def owned_by(keys: Sequence[str], owner: str | None) -> bool:
    """Whether an item with these owner keys is in an `owner` filter (None: no filter)."""
    return owner is None or owner.strip() in keys
