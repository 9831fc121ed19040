"""Query-side text handling for the FTS5 keyword index (the index tokenizes with porter unicode61)."""

from __future__ import annotations

import re

# Function words carry no evidence in BM25 and make OR queries match almost every row.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she should
so some such than that the their theirs them themselves then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves
""".split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """Distinct lower-case terms of a query, stopwords removed (all kept if nothing else is left)."""
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(kept))


def fts_match(text: str) -> str | None:
    """An FTS5 MATCH expression that ORs the quoted query terms (BM25 ranks by how many match)."""
    terms = query_terms(text)
    return " OR ".join(f'"{t}"' for t in terms) if terms else None
