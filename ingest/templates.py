"""Render away Liquid ({% %}, {{ }}) and ERB (<% %>) tags left in Markdown sources, before parsing.

Static-site sources (Jekyll, Middleman, Eleventy) keep template tags the site generator would have
replaced. Left in, they end up in passages and headings ("<%= current_page.data.title %>"). Rendering
happens on the source text, before blocks are built, so every stored span still indexes the stored
document text. Code (fenced blocks and inline spans) is left exactly as written.
"""

from __future__ import annotations

import re

_SPAN = r"(?:(?!\n[ \t]*\n).)*?"  # a tag or code span never crosses a blank line (an unclosed one is left)
_CODE = (r"(?P<fence>^[ \t]{0,3}(?P<f>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}(?P=f)[ \t]*$|\Z))"
         rf"|(?P<inline>(?P<b>`+)[^`\n]{_SPAN}(?P=b))")
_RAW = r"(?P<raw>\{%-?\s*raw\s*-?%\}(?P<raw_body>.*?)\{%-?\s*endraw\s*-?%\})"
_COMMENT = r"(?P<comment>\{%-?\s*comment\s*-?%\}.*?\{%-?\s*endcomment\s*-?%\}|<%#.*?%>)"
_TAGS = (rf"(?P<liquid>\{{%-?(?P<l>{_SPAN})-?%\}})|(?P<output>\{{\{{-?(?P<o>{_SPAN})-?\}}\}})"
         rf"|(?P<erb><%(?P<eq>=?)-?(?P<e>{_SPAN})-?%>)")
_TOKEN = re.compile("|".join([_CODE, _RAW, _COMMENT, _TAGS]), re.S | re.M)
_STRING = re.compile(r"""(?P<q>["'])(?P<s>(?:\\.|(?!(?P=q)).)*)(?P=q)""", re.S)
# Tags and helpers whose output is control flow, another file or markup: nothing Lore can know or use
_SILENT = {"assign", "capture", "endcapture", "if", "elsif", "else", "endif", "unless", "endunless", "case",
           "when", "endcase", "for", "endfor", "break", "continue", "cycle", "tablerow", "endtablerow",
           "include", "include_relative", "render", "layout", "increment", "decrement", "liquid", "echo",
           "highlight", "endhighlight", "link", "post_url", "seo", "feed_meta",
           "partial", "yield", "content_for", "image_tag", "javascript_include_tag", "stylesheet_link_tag"}
# page variables the generator fills from the page's own front matter
_PAGE_VAR = re.compile(r"\A(?:current_page\.data|current_page|page\.data|page)\.([A-Za-z_]\w*)\Z")
_PATH_LIKE = re.compile(r"\A\S*(?:/|\.[A-Za-z0-9]{2,4}\Z)\S*\Z")
_NAME = re.compile(r"[\w.]*")


def _head(text: str) -> str:
    """A tag's leading name (`_NAME` always matches, perhaps empty)."""
    m = _NAME.match(text)
    return m.group(0) if m else ""
_HAS_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|<%.*?%>", re.S)
_CLOSING = (",", ".", ";", ":", "!", "?", ")")  # a removed tag leaves no space before these


def has_template_tags(text: str) -> bool:
    """Whether text holds a Liquid or ERB tag."""
    return bool(_HAS_TAG.search(text))


def _literal(args: str) -> str:
    """The first string argument when it reads as text; a path or URL (a link target, an image) is dropped."""
    m = _STRING.search(args)
    if not m:
        return ""
    value = m.group("s").replace("\\" + m.group("q"), m.group("q"))
    return "" if _PATH_LIKE.match(value) else value


def _expression(expr: str, front_matter: dict) -> str:
    """What an output tag prints: a page variable from front matter, else a leading string literal."""
    expr = expr.strip()
    if _head(expr) in _SILENT:
        return ""
    var = _PAGE_VAR.match(expr.split("|", 1)[0].strip())
    if var:
        value = front_matter.get(var.group(1))
        return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    return _literal(expr) if re.match(r"""\A(?:["']|[\w.]+[ (])""", expr) else ""


def _render(m: re.Match, fm: dict) -> str:
    """What one token becomes: code and raw blocks as written, a tag as what it prints (often nothing)."""
    if m.group("fence") or m.group("inline"):
        return m.group(0)
    if m.group("raw"):
        return m.group("raw_body")
    if m.group("comment"):
        return ""
    if m.group("liquid") is not None:
        body = m.group("l").strip()
        name = _head(body)
        return "" if name in _SILENT or name.startswith("end") else _literal(body[len(name):])
    if m.group("output") is not None:
        return _expression(m.group("o"), fm)
    return _expression(m.group("e"), fm) if m.group("eq") else ""


def render_templates(text: str, front_matter: dict | None = None) -> str:
    """Replace template tags with what they would print as far as the page itself tells; else remove them.

    >>> render_templates("# <%= current_page.data.title %>", {"title": "Alerts"})  # '# Alerts'
    """
    fm = front_matter or {}
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos:m.start()])
        got = _render(m, fm)
        if not got and text[m.end():m.end() + 1] in _CLOSING:  # 'Hello {{ name }}, ...' -> 'Hello, ...'
            out[-1] = out[-1].rstrip(" \t")
        out.append(got)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)
