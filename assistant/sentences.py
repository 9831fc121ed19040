"""Split a passage into quotable units (sentences, list items, table rows) with their exact offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (optionally closed by a quote or bracket) followed by space and a capital,
# digit or opening mark; common abbreviations and decimals do not end one.
_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[`])")
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|Mr|Ms|Mrs|Dr|No|Inc|Ltd|Co|approx|cf|Fig|Sec|St)\.|\b[A-Z]\.)$")
_LIST = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


@dataclass(frozen=True, slots=True)
class Unit:
    text: str
    start: int  # offset in the passage
    end: int
    kind: str  # sentence | item | row | header (a table's first row) | heading
    context: str = ""  # for table rows: the header row, which gives the cells their meaning


def _sentences(block: str, base: int) -> list[Unit]:
    out, pos = [], 0
    for m in _END.finditer(block):
        piece = block[pos:m.start()]
        if _ABBREV.search(piece.rstrip()):
            continue
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(block)))
    units = []
    for s, e in out:
        raw = block[s:e]
        lead = len(raw) - len(raw.lstrip())
        text = raw.strip()
        if text:
            units.append(Unit(text, base + s + lead, base + s + lead + len(text), "sentence"))
    return units


def split_units(text: str) -> list[Unit]:
    """Units in reading order; `text[u.start:u.end] == u.text` for every unit."""
    units: list[Unit] = []
    for m in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", text):  # blocks separated by blank lines
        block, base = m.group(0), m.start()
        lines = block.split("\n")
        if len(lines) > 1 and all(" | " in ln or _LIST.match(ln) for ln in lines if ln.strip()):
            off = 0
            header = ""
            for ln in lines:
                if ln.strip():
                    lead = len(ln) - len(ln.lstrip())
                    kind = "item" if _LIST.match(ln) else "row" if header else "header"
                    if kind == "header":
                        header = ln.strip()
                    units.append(Unit(ln.strip(), base + off + lead, base + off + lead + len(ln.strip()), kind,
                                      header if kind == "row" else ""))
                off += len(ln) + 1
            continue
        if len(lines) == 1 and not re.search(r"[.!?:]$", block.strip()) and len(block.split()) <= 12:
            units.append(Unit(block.strip(), base, base + len(block.strip()), "heading"))
            continue
        flat_units = _sentences(block, base)
        units.extend(flat_units)
    return units
