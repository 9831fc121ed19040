"""Quantities in text: numbers with units, money, percentages and dates, normalized for comparison."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_UNITS = {  # surface form -> canonical unit; longer forms first so "business days" wins over "days"
    "business days": "business day", "business day": "business day", "working days": "business day",
    "working day": "business day", "calendar days": "day", "calendar day": "day",
    "milliseconds": "ms", "millisecond": "ms", "ms": "ms", "seconds": "second", "second": "second",
    "secs": "second", "sec": "second", "minutes": "minute", "minute": "minute", "mins": "minute", "min": "minute",
    "hours": "hour", "hour": "hour", "hrs": "hour", "hr": "hour", "days": "day", "day": "day", "weeks": "week",
    "week": "week", "months": "month", "month": "month", "years": "year", "year": "year",
    "percent": "percent", "per cent": "percent", "%": "percent",
    "kb": "KB", "mb": "MB", "gb": "GB", "tb": "TB", "kib": "KiB", "mib": "MiB", "gib": "GiB",
    "requests": "request", "request": "request", "attempts": "attempt", "attempt": "attempt",
    "retries": "retry", "retry": "retry", "times": "times", "devices": "device", "device": "device",
    "characters": "character", "users": "user", "seats": "seat", "nights": "night", "night": "night",
    "miles": "mile", "km": "km", "kilometers": "km", "kilometres": "km",
}
_CURRENCY = {"$": "USD", "usd": "USD", "dollars": "USD", "€": "EUR", "eur": "EUR", "euros": "EUR", "£": "GBP",
             "gbp": "GBP", "pounds": "GBP"}
_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())}, sept=9)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s?(?:k|m|bn|thousand|million|billion)\b)?"
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_PATTERNS = [
    ("date", re.compile(r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d-])")),
    ("date", re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?(?:\s+(\d{{4}}))?\b", re.I)),
    ("date", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH_RE})\.?,?(?:\s+(\d{{4}}))?\b", re.I)),
    ("money", re.compile(rf"([$€£])\s?({_NUM}){_SCALE}|\b(USD|EUR|GBP)\s?({_NUM}){_SCALE}", re.I)),
    ("money", re.compile(rf"(?<![\w.,])({_NUM}){_SCALE}\s?(USD|EUR|GBP|dollars|euros|pounds)\b", re.I)),
    ("unit", re.compile(rf"(?<![\w.,$€£-])({_NUM})(?:\s?-\s?|\s)?({_UNIT_RE})(?![\w])", re.I)),
]
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}


@dataclass(frozen=True, slots=True)
class Quantity:
    """One quantity found in a text: its canonical unit, normalized value and exact surface text."""

    unit: str  # hour, day, percent, USD, date, ...
    value: str  # normalized: "40", "1.5", "2026-03-01", "--03-01" (a date without year)
    text: str  # as written, a substring of the source text
    start: int
    end: int


def _number(raw: str, scale: str | None = None) -> str:
    x = float(raw.replace(",", ""))
    if scale:
        x *= _SCALES[scale.strip().lower()]
    return f"{x:g}" if x != int(x) else str(int(x))


def _scale_of(text: str) -> str | None:
    m = re.search(r"(k|m|bn|thousand|million|billion)$", text.strip(), re.I)
    return m.group(1) if m else None


def _date(y: str | None, m: int, d: str) -> str | None:
    try:
        day = int(d)
        date(int(y) if y else 2000, m, day)  # validates (2000 is a leap year, so Feb 29 passes without one)
    except ValueError:
        return None
    return f"{int(y):04d}-{m:02d}-{day:02d}" if y else f"--{m:02d}-{day:02d}"


def quantities(text: str) -> list[Quantity]:
    """Every quantity in `text`, left to right, overlaps resolved in favour of the first pattern."""
    taken: list[tuple[int, int]] = []
    out: list[Quantity] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            s, e = m.span()
            if any(s < b and a < e for a, b in taken):
                continue
            q = _parse(kind, m)
            if q is not None:
                taken.append((s, e))
                out.append(Quantity(q[0], q[1], text[s:e], s, e))
    return sorted(out, key=lambda q: q.start)


def _parse(kind: str, m: re.Match) -> tuple[str, str] | None:
    g = m.groups()
    if kind == "date":
        if g[0].isdigit() and len(g) == 3 and len(g[0]) == 4:
            value = _date(g[0], int(g[1]), g[2]) if 1 <= int(g[1]) <= 12 else None
        elif g[0].isdigit():
            value = _date(g[2], _MONTHS[g[1].lower()], g[0])
        else:
            value = _date(g[2], _MONTHS[g[0].lower()], g[1])
        return ("date", value) if value else None
    if kind == "money":
        if len(g) == 2:  # amount then currency
            return _CURRENCY[g[1].lower()], _number(g[0], _scale_of(m.group(0)[:m.start(2) - m.start()]))
        sym, amount = (g[0], g[1]) if g[0] else (g[2], g[3])
        return _CURRENCY[sym.lower()], _number(amount, _scale_of(m.group(0)))
    return _UNITS[g[1].lower()], _number(g[0])
