"""Small text helpers shared by the analytics: content terms with a light stemmer."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")
_IDENT = re.compile(r"\w[/@]\w|\w\.\w")  # a path, an address, a domain or a dotted version
_EDGE = "\"'`()[]{}<>,;:!?*_|."
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each either else every few for from further get gets got had
has have having he her here hers him his how i if in into is it its itself just let me might more most must my
no nor not now of off on once only or other our ours out over own per same shall she should so some such than
that the their theirs them then there these they this those through to too under until up upon us very via was
we were what when where which while who whom why will with within without would yes yet you your yours one two
three four five six seven eight nine ten may many much need needs new next following use used using well
""".split())


def stem(word: str) -> str:
    """A light suffix stripper: enough to match 'carried'/'carry' and 'limits'/'limit', never a real stemmer."""
    w = word.lower().strip("'-")
    if len(w) <= 3:
        return w
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            if suffix == "es" and not w.endswith(("ches", "shes", "sses", "xes", "zes")):
                return w[:-1]  # 'leaves' -> 'leave', but 'boxes' -> 'box'
            if suffix == "s" and w.endswith("ss"):
                return w
            return w[: len(w) - len(suffix)] + repl
    return w


def words(text: str, drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(term, word as written) in order: stemmed, lowercased, without stop words, numbers or `drop` terms.
    Paths, addresses and versions (k8s.io/pkg/cronjob, ops@acme.com, 3.14.0) are one term each: their
    parts ('pkg', 'io') say little, the whole says what it is about."""
    out = []
    for token in text.split():
        core = token.strip(_EDGE)
        if _IDENT.search(core):
            if core.lower() not in ("e.g", "i.e", "etc"):
                out.append((core.lower(), core))
            continue
        for m in _WORD.finditer(token):
            w = m.group().lower()
            if w in STOPWORDS or len(w) < 2:
                continue
            s = stem(w)
            if s not in drop and s not in STOPWORDS:
                out.append((s, m.group().strip("'-")))
    return out


def terms(text: str, drop: frozenset[str] = frozenset()) -> list[str]:
    """Content terms in order: lowercased, stemmed, without stop words, numbers or the words in `drop`."""
    return [t for t, _ in words(text, drop)]
