"""Markup debris out of passage text: answers quote stored text verbatim, so it is cleaned at ingest.

Two layers. Markdown sources are converted with Python-Markdown extensions that understand admonitions
(`!!! warning "Title"`), GitHub alerts (`> [!NOTE]`) and footnotes (`[^1]`, `[^1]: text`) and render them
as plain sentences. Whatever markup survives the parser (a construct the converter did not recognise, raw
HTML where Markdown is not processed) is then removed from each block's text by `clean_text`, a pure
function. Code is never cleaned: code blocks are stored fenced (`fence`). Template tags are rendered away
on the source (`ingest.templates`), where code spans can still be told from prose.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Callable
from xml.etree import ElementTree as etree

from markdown.extensions import Extension
from markdown.extensions.footnotes import NBSP_PLACEHOLDER
from markdown.treeprocessors import Treeprocessor

FENCE = "```"
_ALERT = re.compile(r"\A\s*\[!([A-Za-z]+)\][ \t]*\n?[ \t]*")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# HTML elements removed wherever their tags appear; others only with attributes or as closing tags, since
# a bare `<title>` or `<input>` in prose is as often a placeholder as a tag.
_ALWAYS = ("a|abbr|b|big|blockquote|br|caption|center|code|col|colgroup|dd|del|details|div|dl|dt|em|font|"
           "h[1-6]|hr|i|img|ins|kbd|li|mark|ol|p|pre|s|small|span|strike|strong|sub|summary|sup|table|tbody|"
           "td|tfoot|th|thead|tr|tt|u|ul|wbr")
_OTHER = ("address|article|aside|audio|body|button|cite|dfn|figcaption|figure|footer|form|head|header|html|"
          "iframe|input|label|link|main|meta|nav|noscript|picture|q|samp|script|section|source|style|"
          "template|textarea|time|title|var|video")
_TAG = re.compile(rf"<(?:/?(?:{_ALWAYS})(?:\s[^<>]*)?/?|/(?:{_OTHER})\s*|(?:{_OTHER})\s[^<>]*)>", re.I)
_BREAKING = re.compile(r"</?(?:br|hr|p|div|li|tr|td|th|table|ul|ol|dl|dd|dt|h[1-6]|blockquote|pre)\b", re.I)
_ANY_TAG = re.compile(r"<[^>]+>")
_INLINE = re.compile(r"</?(?:a|abbr|b|bdi|bdo|big|cite|code|data|del|dfn|em|font|i|ins|kbd|mark|q|s|samp|small|span|"
                     r"strike|strong|sub|sup|time|tt|u|var)\b", re.I)
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_MKDOCS = re.compile(r"^[ \t]*[!?]{3}\+?[ \t]*([A-Za-z][\w-]*)(?:[ \t]+\"([^\"\n]*)\")?[ \t]*", re.M)
_FN_DEF = re.compile(r"\[\^([^\]\s]+)\]:[ \t]*")
_FN_REF = re.compile(r"([ \t]*)\[\^([^\]\s]+)\](?!:)")
_IMAGE = re.compile(r"!\[([^\[\]\n]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:[ \t]+\"[^\"\n]*\")?\)")
_LINK = re.compile(r"\[([^\[\]\n]*)\]\(((?:[^()\s]|\([^()\s]*\))*)(?:[ \t]+\"[^\"\n]*\")?\)")
_STRONG = re.compile(r"\*\*([^\n]*?)\*\*")
_LONE_STARS = re.compile(r"(?<!\S)\*\*(?!\S)")
_UNDERSCORES = re.compile(r"(?<![\w_])__(?=[^\s_])([^\n_]*?\s[^\n_]*?)(?<=[^\s_])__(?![\w_])")
_SPACES = re.compile(r"[ \t]{2,}")
_ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S | re.I)
_CELL = re.compile(r"<(t[hd])\b([^>]*?)(?:/>|>(.*?)</t[hd]\s*>)", re.S | re.I)
_THEAD = re.compile(r"<thead\b.*?</thead\s*>", re.S | re.I)
_COLSPAN = re.compile(r"""colspan\s*=\s*["']?(\d+)""", re.I)


def label(kind: str) -> str:
    """An admonition or alert type as a sentence label: 'warning' -> 'Warning:'."""
    return kind.replace("-", " ").replace("_", " ").strip().capitalize() + ":"


def _drop(m: re.Match) -> str:
    """Drop a match and the space before it, unless a word follows (no space is left before punctuation)."""
    rest = m.string[m.end():m.end() + 1]
    return m.group(1) if rest.isalnum() else ""


def _mkdocs(m: re.Match) -> str:
    """`!!! warning "Title"` -> 'Warning: Title' on a line of its own; without a title the label leads the text."""
    head = label(m.group(1))
    title = (m.group(2) or "").strip()
    if not title:
        return head + " "
    return f"{head} {title}" + ("\n" if m.string[m.end():m.end() + 1] not in ("", "\n") else "")


def clean_text(text: str, markdown: bool = True, html: bool = True) -> str:
    """Text without markup debris: HTML comments, tags and entities (`html`; off for text a parser took from
    a real document tree, where a `<meta>` was written escaped and means the word), and for Markdown
    sources (`markdown`) admonition and alert syntax, footnotes, links and emphasis markers.

    Not for code. Prose, numbers and list bullets are left as they are.
    >>> clean_text('!!! warning "Security Incident?"\\nCall [security](/sec)[^1].')
    'Warning: Security Incident?\\nCall security.'
    """
    if not any(c in text for c in "<&*_[!?"):
        return text
    out = text
    if html:
        out = _COMMENT.sub("", out)
        out = _TAG.sub(lambda m: " " if _BREAKING.match(m.group(0)) else "", out)
        out = _ENTITY.sub(lambda m: unescape(m.group(0)).replace("\xa0", " "), out)
    if markdown:
        out = _MKDOCS.sub(_mkdocs, out)
        out = _ALERT.sub(lambda m: label(m.group(1)) + " ", out)
        out = re.sub(r"(?<=\s)\[!([A-Za-z]+)\][ \t]*", lambda m: label(m.group(1)) + " ", out)
        out = _FN_DEF.sub(lambda m: f"Footnote {m.group(1)}: ", out)
        out = _FN_REF.sub(_drop, out)
        out = _IMAGE.sub(r"\1", out)
        out = _LINK.sub(lambda m: m.group(1) or m.group(2), out)
        out = _STRONG.sub(r"\1", out)
        out = _LONE_STARS.sub("", out)
        out = _UNDERSCORES.sub(r"\1", out)
    if out == text:
        return text
    lines = (_SPACES.sub(" ", line).strip() for line in out.split("\n"))  # what a removal left behind
    return "\n".join(line for line in lines if line)


def html_text(fragment: str) -> str:
    """The text of an HTML fragment (a table cell) on one line: inline tags vanish, others separate words."""
    text = _ANY_TAG.sub(lambda m: "" if _INLINE.match(m.group(0)) else " ", fragment)
    return " ".join(unescape(text).split())


def table_rows(html: str, clean: Callable[[str], str] | None = None) -> str:
    """Render an HTML table as text, one line per row.

    With a header row (`<th>` cells or `<thead>`, at least two columns, one of them named) each data row
    reads 'Header1: cell1, Header2: cell2' (empty cells skipped, a cell under an empty header stands
    alone) and the header is not repeated on a line of its own; otherwise cells are joined by ' | '.
    `clean` is applied to every cell's text.
    """
    head = _THEAD.search(html)
    rows: list[tuple[bool, list[tuple[str, int]]]] = []
    for m in _ROW.finditer(html):
        cells = []
        all_th = True
        for tag, attrs, body in _CELL.findall(m.group(1)):
            text = html_text(body or "")
            text = clean(text) if clean and text else text
            span = _COLSPAN.search(attrs)
            cells.append((" ".join(text.split()), max(1, min(int(span.group(1)), 100)) if span else 1))
            all_th = all_th and tag.lower() == "th"
        in_head = head is not None and head.start() <= m.start() < head.end()
        if cells:
            rows.append((bool(all_th or in_head), cells))
    if not rows:
        return ""
    headers = _header(rows[0]) if rows[0][0] else None
    if headers is None or len(rows) == 1:
        return "\n".join(" | ".join(t for t, _ in cells if t) for _, cells in rows if any(t for t, _ in cells))
    lines = (_row_line(headers, cells) for _, cells in rows[1:])
    return "\n".join(line for line in lines if line)


def _header(row: tuple[bool, list[tuple[str, int]]]) -> list[str] | None:
    """Column names of a header row (spanning cells repeat), or None when it names no columns."""
    names = [text.rstrip(":").strip() for text, span in row[1] for _ in range(span)]
    return names if len(names) >= 2 and any(names) else None


def _row_line(headers: list[str], cells: list[tuple[str, int]]) -> str:
    if len(cells) == 1 and cells[0][1] == 1:  # one cell in a wider table: a caption-like row, not a column value
        return cells[0][0]
    parts, col = [], 0
    for text, span in cells:
        name = headers[col] if col < len(headers) and span < len(headers) else ""
        if text:
            parts.append(f"{name}: {text}" if name else text)
        col += span
    return ", ".join(parts)


def fence(code: str) -> str:
    """Code as stored: between fence lines (longer ones when the code itself holds a fence line)."""
    longest = max((len(m.group(0)) for m in re.finditer(r"^[ \t]*(`{3,})", code, re.M)), default=0)
    mark = "`" * max(3, longest + 1) if longest else FENCE
    return f"{mark}\n{code}\n{mark}"


def unfence(text: str) -> tuple[str, str]:
    """(fence mark, code) of a block made by `fence`; ('', text) for text that is not fenced."""
    m = re.match(r"(`{3,})\n", text)
    if not m or not text.endswith("\n" + m.group(1)) or len(text) < 2 * len(m.group(0)):
        return "", text
    mark = m.group(1)
    return mark, text[len(mark) + 1:len(text) - len(mark) - 1]


def code_text(text: str) -> str:
    """A code block's text verbatim, without the blank lines and trailing spaces around it."""
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()


# --- Markdown: plain sentences for admonitions, alerts and footnotes -----------------------------------

def _text_of(el: etree.Element) -> str:
    return "".join(el.itertext())


def _prefix(el: etree.Element, prefix: str) -> None:
    el.text = prefix + (el.text or "").lstrip() if prefix else el.text


class _PlainTreeprocessor(Treeprocessor):
    """Runs after inline and footnote processing; rewrites the tree Python-Markdown would render."""

    def run(self, root: etree.Element) -> None:
        parents = {child: parent for parent in root.iter() for child in parent}
        for el in list(root.iter()):
            cls = el.get("class") or ""
            if el.tag == "sup" and (el.get("id") or "").startswith("fnref"):
                self._drop_ref(el, parents[el])
            elif el.tag == "div" and cls.split()[:1] == ["admonition"]:
                self._admonition(el, cls.split()[1:])
            elif el.tag == "div" and cls == "footnote":
                self._footnotes(el, parents[el])
            elif el.tag == "p" and el.text and _ALERT.match(el.text):
                el.text = _ALERT.sub(lambda m: label(m.group(1)) + " ", el.text, count=1)

    @staticmethod
    def _drop_ref(sup: etree.Element, parent: etree.Element) -> None:
        tail = sup.tail or ""
        idx = list(parent).index(sup)
        prev = parent[idx - 1] if idx else None
        before = (prev.tail if prev is not None else parent.text) or ""
        if not tail[:1].isalnum():
            before = before.rstrip(" \t")
        joined = before + tail
        if prev is not None:
            prev.tail = joined
        else:
            parent.text = joined
        parent.remove(sup)

    @staticmethod
    def _admonition(div: etree.Element, kinds: list[str]) -> None:
        head = label(kinds[0]) if kinds else ""
        title = div[0] if len(div) and div[0].get("class") == "admonition-title" else None
        if title is not None and _text_of(title).strip() != head.rstrip(":"):
            _prefix(title, head + " ")
            return
        if title is not None:
            div.remove(title)
        body = div[0] if len(div) and div[0].tag == "p" else None
        if body is not None:
            _prefix(body, head + " ")
        else:
            p = etree.Element("p")
            p.text = head
            div.insert(0, p)

    @staticmethod
    def _footnotes(div: etree.Element, parent: etree.Element) -> None:
        at = list(parent).index(div)
        parent.remove(div)
        for li in div.iter("li"):
            name = (li.get("id") or "").split(":", 1)[-1]
            for a in [a for a in li.iter("a") if a.get("class") == "footnote-backref"]:
                holder = next(p for p in li.iter() if a in list(p))
                _PlainTreeprocessor._drop_ref(a, holder)
            for node in li.iter():
                node.text = node.text.replace(NBSP_PLACEHOLDER, "") if node.text else node.text
                node.tail = node.tail.replace(NBSP_PLACEHOLDER, "") if node.tail else node.tail
            children = list(li)
            if not children or children[0].tag != "p":
                p = etree.Element("p")
                children.insert(0, p)
            _prefix(children[0], f"Footnote {name}: ")
            for child in children:
                if len(child) == 0 and not (child.text or "").strip():
                    continue
                parent.insert(at, child)
                at += 1


class PlainMarkdown(Extension):
    """Admonitions, GitHub alerts and footnotes rendered as plain labelled sentences."""

    def extendMarkdown(self, md) -> None:  # noqa: N802 - Python-Markdown's name
        md.treeprocessors.register(_PlainTreeprocessor(md), "lore-plain", 12)


def markdown_extensions() -> list:
    """The Python-Markdown extensions Markdown sources are converted with."""
    return ["tables", "fenced_code", "admonition", "footnotes", PlainMarkdown()]
