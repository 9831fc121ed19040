"""Confluence storage format (XHTML with `ac:` and `ri:` elements) to plain HTML that `ingest.formats` parses.

Headings, paragraphs, lists, tables and links stay as they are (without attributes); the code and noformat
macros become `<pre><code>`; panel-like macros (info, note, warning, tip, panel, expand, ...) keep their body;
links to pages, attachments and users become their visible text; macros that only render other content or
chrome (table of contents, children, Jira issues, attachments lists, images, emoticons) are dropped.
"""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser

_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
# Plain HTML elements kept (attributes dropped, except a cell's span).
_KEEP = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "table", "thead", "tbody", "tfoot", "tr",
         "th", "td", "pre", "code", "blockquote", "strong", "b", "em", "i", "u", "s", "del", "sub", "sup", "br",
         "hr", "a", "span", "div", "dl", "dt", "dd", "caption", "colgroup", "col", "small", "big", "abbr", "q"}
_VOID = {"br", "hr", "col"}
_SPANS = ("colspan", "rowspan")
_CODE_MACROS = {"code", "noformat"}
# Macros whose output is other pages' content, navigation or chrome: nothing of theirs is kept.
_DROP_MACROS = {"toc", "toc-zone", "children", "pagetree", "pagetreesearch", "attachments", "recently-updated",
                "jira", "jiraissues", "contentbylabel", "content-report-table", "include", "excerpt-include",
                "livesearch", "search", "anchor", "gallery", "viewfile", "view-file", "widget", "profile",
                "contributors", "contributors-summary", "blog-posts", "space-details", "roadmap", "chart",
                "create-from-template", "tasks-report-macro", "page-index", "index", "popular-labels",
                "labels-list", "listlabels", "related-labels", "space-attachments", "multimedia", "iframe",
                "html", "status", "drawio", "gliffy"}
# Elements skipped with everything inside them.
_SKIP = {"ac:parameter", "ac:image", "ac:emoticon", "ac:placeholder", "ac:task-id", "ac:task-status",
         "ac:task-uuid", "ac:inline-comment-marker-ref", "ri:url", "script", "style"}
# Elements whose own text is dropped but children are read (link targets carry no visible text).
_TASK = {"ac:task-list": "ul", "ac:task": "li"}


class _Converter(HTMLParser):
    def __init__(self, shift: int = 0) -> None:
        super().__init__(convert_charrefs=True)
        self.shift = shift  # heading levels added, so the page title is the one top heading
        self.out: list[str] = []
        self.skip = 0  # depth inside an element (or dropped macro) whose content is left out
        self.stack: list[tuple[str, str]] = []  # (tag, what its end tag does): "skip", "code", "link", "emit", ""
        self.code: list[str] | None = None  # text of the code macro being read
        self.link: list[dict] = []  # open ac:link elements: their target text and whether a body was seen

    # -- helpers ------------------------------------------------------------------------------------
    def _open(self, tag: str, action: str) -> None:
        if tag not in _VOID:
            self.stack.append((tag, action))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self.skip:
            self.skip += tag not in _VOID
            return self._open(tag, "skip") if tag not in _VOID else None
        if tag in _SKIP:
            self.skip = 1
            return self._open(tag, "skip")
        if tag == "ac:structured-macro" or tag == "ac:macro":
            name = a.get("ac:name", "").lower()
            if name in _DROP_MACROS:
                self.skip = 1
                return self._open(tag, "skip")
            if name in _CODE_MACROS:
                self.code = []
                return self._open(tag, "code")
            return self._open(tag, "")
        if tag == "ac:plain-text-body":
            if self.code is None:  # a plain-text body outside a code macro: kept as a paragraph
                self.out.append("<p>")
                return self._open(tag, "emit-p")
            return self._open(tag, "")
        if tag == "ac:link":
            self.link.append({"text": "", "body": False})
            return self._open(tag, "link")
        if tag in ("ri:page", "ri:blog-post", "ri:attachment", "ri:space", "ri:content-entity") and self.link:
            self.link[-1]["text"] = a.get("ri:content-title") or a.get("ri:filename") or a.get("ri:space-key", "")
        elif tag == "ri:user" and self.link:
            self.link[-1]["text"] = ""
        if tag in ("ac:link-body", "ac:plain-text-link-body") and self.link:
            self.link[-1]["body"] = True
        if tag in _TASK:
            self.out.append(f"<{_TASK[tag]}>")
            return self._open(tag, "emit-" + _TASK[tag])
        if tag == "time" and a.get("datetime"):
            self.out.append(escape(a["datetime"]))
            return self._open(tag, "")
        if tag in _KEEP:
            out = tag
            if self.shift and re.fullmatch(r"h[1-6]", tag):
                out = f"h{min(6, int(tag[1]) + self.shift)}"
            kept = "".join(f' {k}="{escape(a[k])}"' for k in _SPANS if tag in ("td", "th") and a.get(k, "").isdigit())
            self.out.append(f"<{out}{kept}>")
            return self._open(tag, "emit-" + out)  # matched by the source tag, closed as the emitted one
        self._open(tag, "")  # ac:rich-text-body, layouts, unknown elements: transparent

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not any(t == tag for t, _ in self.stack):
            return  # a stray end tag: ignored, as a browser would
        while self.stack:
            t, action = self.stack.pop()
            self._close(action)
            if t == tag:
                return

    def _close(self, action: str) -> None:
        if action == "skip":
            self.skip -= 1
        elif action == "code" and self.code is not None:
            self.out.append("<pre><code>" + escape("".join(self.code).strip("\n")) + "</code></pre>")
            self.code = None
        elif action == "link" and self.link:
            link = self.link.pop()
            if not link["body"] and link["text"]:
                self.out.append(escape(link["text"]))
        elif action.startswith("emit-"):
            self.out.append(f"</{action[5:]}>")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.code is not None:
            self.code.append(data)
        else:
            self.out.append(escape(data, quote=False))

    def close(self) -> None:
        super().close()
        while self.stack:
            self._close(self.stack.pop()[1])


def storage_to_html(storage: str, title: str = "") -> str:
    """A whole HTML document for one page: its title as the top heading, then the converted body."""
    body = _CDATA.sub(lambda m: escape(m.group(1), quote=False), storage or "")
    conv = _Converter(shift=1 if title else 0)
    conv.feed(body)
    conv.close()
    head = f"<title>{escape(title)}</title>" if title else ""
    top = f"<h1>{escape(title)}</h1>\n" if title else ""
    return f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">{head}</head><body>\n{top}{''.join(conv.out)}\n</body></html>\n"
