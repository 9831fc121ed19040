"""A document's title: declared metadata first, then a heading that names the document, then its file name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ingest.templates import has_template_tags, render_templates
from ingest.types import Block

# Section names that say what a part of a document is, never which document it is.
GENERIC_HEADINGS = frozenset({
    "abstract", "about", "background", "contents", "table of contents", "toc", "context", "introduction",
    "intro", "overview", "summary", "executive summary", "preface", "foreword", "synopsis", "motivation",
    "purpose", "scope", "description", "notes", "tl;dr", "tldr", "status",
})
_NUMBERING = re.compile(r"\A(?:\d+(?:\.\d+)*\.?|[IVXivx]+\.|[A-Za-z]\.)\s+")
_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*):(?:[ \t]+(.*))?")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^>`]+>`_{1,2}")  # `19-Jun-2009 <https://...>`__ -> 19-Jun-2009
_RST_ROLE = re.compile(r":[\w-]+:`([^`]+)`")  # :pep:`8` -> 8
_SEPARATOR = re.compile(r"(?<!\d)[-_]+|[-_]+(?!\d)")  # kept between digits: dates, versions


def split_header_block(text: str) -> tuple[list[tuple[str, str]], str]:
    """An RFC 822 style header opening the text (PEPs: `PEP: 8`, `Title: ...`) as fields, and the text after it.

    Only a block of `Field: value` lines (indented lines continue a value) ending at a blank line and
    holding a Title field counts; anything else returns ([], text) unchanged.
    """
    fields: list[list[str]] = []
    lines = text.splitlines(keepends=True)
    end = len(lines)
    for i, line in enumerate(lines):
        raw = line.rstrip("\r\n")
        if not raw.strip():
            end = i
            break
        m = _FIELD.fullmatch(raw)
        if m:
            fields.append([m.group(1), (m.group(2) or "").strip()])
        elif raw[:1] in " \t" and fields:
            fields[-1][1] = f"{fields[-1][1]} {raw.strip()}".strip()
        else:
            return [], text
    if len(fields) < 2 or not any(k.lower() == "title" and v for k, v in fields):
        return [], text
    return [(k, _RST_ROLE.sub(r"\1", _RST_LINK.sub(r"\1", v))) for k, v in fields], "".join(lines[end:])


def header_title(header: Sequence[tuple[str, str]]) -> str | None:
    """The Title field, numbered as the series cites it when the header says so ('PEP 8 \u2013 Style Guide ...')."""
    fields = {k.lower(): v for k, v in reversed(header)}  # the first of repeated fields wins
    title = fields.get("title")
    if title and fields.get("pep"):
        return f"PEP {fields['pep']} \u2013 {title}"
    return title


def render_header(header: Sequence[tuple[str, str]]) -> str:
    """The header as passage text: one field per line."""
    return "\n".join(f"{k}: {v}" for k, v in header)


def _clean(text: object) -> str:
    if not isinstance(text, str):
        return ""
    if has_template_tags(text):
        text = render_templates(text)
    return " ".join(text.split())


def _names_document(heading: str) -> bool:
    words = _NUMBERING.sub("", heading).strip().rstrip(":.").strip().lower()
    return bool(words) and words not in GENERIC_HEADINGS


def choose_title(blocks: Sequence[Block], *declared: object) -> str | None:
    """The first usable declared title (front matter, header fields), else a heading that names the document.

    A heading names the document when it opens it (no passage text before it) or when it is the
    only top-level heading; generic section names (Abstract, Background:, ...) never do.
    """
    for value in declared:
        title = _clean(value)
        if title:
            return title
    headings = [b for b in blocks if b.kind == "title"]
    for b in blocks:
        if b.kind != "title":
            break  # text came first: later headings name sections of the document
        title = _clean(b.text)
        if _names_document(title):
            return title
    tops = [b for b in headings if b.level == 1]
    if len(tops) == 1 and _names_document(_clean(tops[0].text)):
        return _clean(tops[0].text)
    return None


def title_from_path(path: Path) -> str:
    """A readable title from a file name: 'pagerduty-being-on-call' -> 'Pagerduty being on call'."""
    words = " ".join(_SEPARATOR.sub(" ", path.stem).split()) or path.name
    return words[:1].upper() + words[1:]
