"""A short window of a passage around the query's terms, for result lists."""

from __future__ import annotations

import re

from ingest.keywords import query_terms


def snippet(text: str, query: str, width: int = 240) -> str:
    """The `width`-character window holding the most query-term occurrences, cut at word boundaries."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    terms = [t for t in query_terms(query) if len(t) > 2]
    starts = sorted(m.start() for t in terms for m in re.finditer(rf"\b{re.escape(t)}", flat, re.I))
    best, best_n = 0, 0
    for i, s in enumerate(starts):  # densest run of matches fitting in the window
        n = sum(1 for x in starts[i:] if x < s + width)
        if n > best_n:
            best, best_n = max(0, s - width // 4), n
    best = min(best, len(flat) - width)
    if best > 0:
        best = flat.find(" ", best) + 1 or best
    end = flat.rfind(" ", best, best + width)
    end = end if end > best else best + width
    return ("…" if best > 0 else "") + flat[best:end] + ("…" if end < len(flat) else "")
