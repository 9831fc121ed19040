"""Split a passage into quotable units (sentences, list items, table rows) with their exact offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (optionally closed by a quote or bracket) followed by space and a capital,
# digit or opening mark; common abbreviations and decimals do not end one.
_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[`])")
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|Mr|Ms|Mrs|Dr|No|Inc|Ltd|Co|approx|cf|Fig|Sec|St)\.|\b[A-Z]\.)$")
_LIST = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_ROW = re.compile(r"^[^:.\n]{1,60}: \S")  # a table row as ingest renders it: "City: London, Nightly cap: $250"
_FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$|^```[^\n]*\n.*\Z", re.M | re.S)  # fenced code, maybe cut by a chunk end


@dataclass(frozen=True, slots=True)
class Unit:
    text: str
    start: int  # offset in the passage
    end: int
    kind: str  # sentence | item | row | header (a table's first row) | heading | code
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
    """Units in reading order; `text[u.start:u.end] == u.text` for every unit.

    A fenced code block is one `code` unit; list items and table rows are units of their own, a list
    item's text without its bullet."""
    units: list[Unit] = []
    pos = 0
    for f in _FENCE.finditer(text):
        units += _prose(text, pos, f.start())
        units.append(Unit(f.group(0), f.start(), f.end(), "code"))
        pos = f.end()
    return units + _prose(text, pos, len(text))


def _prose(text: str, lo: int, hi: int) -> list[Unit]:
    units: list[Unit] = []
    for m in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", text[lo:hi]):  # blocks separated by blank lines
        block, base = m.group(0), lo + m.start()
        lines = block.split("\n")
        real = [ln for ln in lines if ln.strip()]
        if (len(real) > 1 or _LIST.match(block)) and (all(" | " in ln or _LIST.match(ln) for ln in real)
                              or all(_ROW.match(ln.strip()) or _LIST.match(ln) for ln in real)):
            off = 0
            header = ""
            for ln in lines:
                if ln.strip():
                    lead = len(ln) - len(ln.lstrip())
                    bullet = _LIST.match(ln)
                    if bullet:
                        kind = "item"
                        lead = bullet.end()
                    else:
                        kind = "row" if header or " | " not in ln else "header"
                    if kind == "header":
                        header = ln.strip()
                    body = ln[lead:].strip()
                    units.append(Unit(body, base + off + lead, base + off + lead + len(body), kind,
                                      header if kind == "row" else ""))
                off += len(ln) + 1
            continue
        if len(lines) == 1 and not re.search(r"[.!?:]$", block.strip()) and len(block.split()) <= 12:
            units.append(Unit(block.strip(), base, base + len(block.strip()), "heading"))
            continue
        units.extend(_sentences(block, base))
    return units
