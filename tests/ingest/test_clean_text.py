"""Stored chunk text is free of markup: tables read as rows, code stays fenced code, admonitions and
footnotes become sentences, HTML and template remnants are gone (real parser and chunker)."""

import re
import time

import pytest

from ingest.chunking import Chunker
from ingest.discover import discover
from ingest.embedders import HashEmbedder
from ingest.formats import format_of, parse_file
from ingest.pipeline import HEADER_TOKENS, _title

from tests.support import ENTERPRISE

# Debris that must not survive outside code. HTML tags: elements by name, any tag with attributes and any
# closing tag; a bare `<host>`, `<none>` or `<benjamin@python.org>` is the documents' own text.
_ELEMENTS = ("a|abbr|b|big|blockquote|br|caption|center|code|col|colgroup|dd|del|details|div|dl|dt|em|font|"
             "h[1-6]|hr|i|img|ins|kbd|li|mark|ol|p|pre|s|small|span|strike|strong|sub|summary|sup|table|tbody|"
             "td|tfoot|th|thead|tr|tt|u|ul|wbr")
DEBRIS = {
    "footnote": re.compile(r"\[\^"),
    "alert": re.compile(r"\[!"),
    "mkdocs admonition": re.compile(r"^\s*!!!", re.M),
    "html tag": re.compile(rf"</?(?:{_ELEMENTS})(?:\s[^<>]*)?/?>|<[A-Za-z][\w-]*\s+[\w-]+\s*=\s*[\"'][^<>]*>"
                           r"|</[A-Za-z][\w-]*\s*>", re.I),
    "entity": re.compile(r"&[a-z]+;"),
    "emphasis": re.compile(r"\*\*"),
    "link": re.compile(r"\]\("),
    "template": re.compile(r"\{\{|\{%"),
    "comment": re.compile(r"<!--"),
}
# a fenced block, or one a chunk end cut (its closing fence is then in the next chunk)
FENCED = re.compile(r"^(`{3,})[^\n]*\n.*?^\1[ \t]*$|^`{3,}[^\n]*\n.*\Z", re.M | re.S)


def _debris(text: str) -> list[tuple[str, str]]:
    prose = FENCED.sub("", text)
    return [(name, prose[max(0, m.start() - 40):m.end() + 40]) for name, rx in DEBRIS.items()
            for m in rx.finditer(prose)]


def _ingest(tmp_path, name: str, source: str, max_tokens: int = 256):
    """Parse and chunk one file as ingest does; check that chunks index the stored text."""
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    doc = parse_file(str(path), path.read_bytes())
    norm, chunks = Chunker(HashEmbedder(), max_tokens=max_tokens).chunk("d", "0" * 64, doc, _title(doc, path))
    for c in chunks:
        assert norm.text[c.start:c.end] == c.text
    return doc, norm.text, chunks


def _kinds(doc, kind):
    return [b.text for b in doc.blocks if b.kind == kind]


def test_markdown_table_rows_read_header_cell(tmp_path):
    doc, text, _ = _ingest(tmp_path, "hotels.md", "# Hotels\n\n| City | Nightly cap | Notes |\n|---|---|---|\n"
                                                   "| London | $250 | |\n| Paris | $200 | Book **early** [^1] |\n"
                                                   "| Lisbon | | |\n\n[^1]: Spring fairs.\n")
    assert _kinds(doc, "table") == ["City: London, Nightly cap: $250\nCity: Paris, Nightly cap: $200, Notes: Book early"
                                    "\nCity: Lisbon"]
    assert "City | Nightly cap" not in text and "City: London, Nightly cap: $250" in text


def test_html_tables_read_header_cell(tmp_path):
    html = ("<html><body><h1>Expenses</h1><table><thead><tr><th></th><th>Cap</th></tr></thead>"
            "<tbody><tr><td>Hotel</td><td>$250</td></tr><tr><td>Meals</td><td/></tr>"
            "<tr><td colspan='2'>Receipts are required.</td></tr></tbody></table>"
            "<table><tr><td>Owner</td><td>Finance</td></tr><tr><td>Review</td><td>Yearly</td></tr></table>"
            "</body></html>")
    doc, _, _ = _ingest(tmp_path, "expenses.html", html)
    # an empty header cell leaves its column's value unnamed; a table without <th>/<thead> keeps ' | '
    assert _kinds(doc, "table") == ["Hotel, Cap: $250\nMeals\nReceipts are required.",
                                    "Owner | Finance\nReview | Yearly"]


def test_raw_html_table_inside_markdown(tmp_path):
    md = ("# Contacts\n\nIntro.\n\n<table class=\"custom\" id=\"c\">\n<thead><tr><th>Channel</th><th>Link</th></tr>"
          "</thead>\n<tbody><tr><td><a href=\"#\">#incident-chat</a></td><td>Slack<br>only</td></tr></tbody>\n"
          "</table>\n\n| One column |\n|---|\n| value |\n")
    doc, text, chunks = _ingest(tmp_path, "contacts.md", md)
    assert _kinds(doc, "table") == ["Channel: #incident-chat, Link: Slack only", "One column\nvalue"]
    assert not any(_debris(c.text) for c in chunks), [_debris(c.text) for c in chunks]


def test_code_blocks_are_stored_fenced_and_verbatim(tmp_path):
    code = ('  // keep <b>this</b> **as is** [^1] [!NOTE] {{ value }} &amp;\n'
            '  if (a && b) { return "<br>"; }\n\n  <!-- not a comment here -->')
    md = f"# Build\n\nRun this:\n\n```js\n{code}\n```\n\nThen:\n\n    $ make **all** [docs](x) <br>\n\nDone.\n"
    doc, text, chunks = _ingest(tmp_path, "build.md", md)
    assert _kinds(doc, "code") == [f"```\n{code}\n```", "```\n$ make **all** [docs](x) <br>\n```"]
    assert f"```\n{code}\n```" in text
    assert any(f"```\n{code}\n```" in c.text for c in chunks)


def test_html_pre_is_fenced(tmp_path):
    doc, _, _ = _ingest(tmp_path, "api.html", "<html><body><h1>API</h1><p>Send:</p>"
                                            "<pre>GET /a HTTP/1.1\n  Host: &lt;host&gt;</pre></body></html>")
    assert _kinds(doc, "code") == ["```\nGET /a HTTP/1.1\n  Host: <host>\n```"]


def test_long_code_block_is_split_into_fenced_pieces(tmp_path):
    lines = [f"step_{i} = run(step_{i - 1}, retries={i})  # line {i}" for i in range(1, 41)]
    md = "# Script\n\nIntro text.\n\n```\n" + "\n".join(lines) + "\n```\n\nAfter the script.\n"
    doc, text, chunks = _ingest(tmp_path, "script.md", md, max_tokens=64)
    with_code = [c for c in chunks if "step_" in c.text]
    assert len(with_code) > 2
    pieces = []
    for c in with_code:
        fenced = FENCED.findall(c.text)
        assert fenced and c.text.count("```") % 2 == 0, c.text  # every piece opens and closes its fence
        pieces += [m.group(0) for m in FENCED.finditer(c.text)]
    assert [ln for p in pieces for ln in p.split("\n") if ln != "```"] == lines
    assert text.count("```") == 2 * len(pieces)


def test_admonitions_become_labelled_sentences(tmp_path):
    md = ("# Incidents\n\n!!! warning \"Security Incident?\"\n"
          "    If this is a security incident, follow the process.\n\n!!! note\n    Keep the bridge open.\n\n"
          "> [!NOTE]\n> Spending over $300 needs approval.\n\n> [!WARNING] Never share the PIN.\n")
    doc, text, chunks = _ingest(tmp_path, "incidents.md", md)
    texts = _kinds(doc, "text")
    assert "Warning: Security Incident?" in texts
    assert "If this is a security incident, follow the process." in texts
    assert "Note: Keep the bridge open." in texts
    assert "Note: Spending over $300 needs approval." in texts
    assert "Warning: Never share the PIN." in texts
    assert "!!!" not in text and "[!" not in text


def test_footnotes_references_dropped_definitions_plain(tmp_path):
    md = ("# Postmortem\n\nThe crates were typosquatted[^typo] and deleted[^deletion].\n"
          "Recovery took 279 minutes [^3].\n\n| Time | Event |\n|---|---|\n| 14:33 | Diagnosis (USE method)[^1] |\n\n"
          "[^typo]: A dependency confusion attack.\n[^deletion]: Crates were preserved.\n[^3]: Three incidents.\n"
          "[^1]: Utilization, Saturation, Errors.\n")
    doc, text, _ = _ingest(tmp_path, "pm.md", md)
    assert "The crates were typosquatted and deleted. Recovery took 279 minutes." in text
    assert "Time: 14:33, Event: Diagnosis (USE method)" in text
    for line in ["Footnote typo: A dependency confusion attack.", "Footnote deletion: Crates were preserved.",
                 "Footnote 3: Three incidents.", "Footnote 1: Utilization, Saturation, Errors."]:
        assert line in _kinds(doc, "text")
    assert "[^" not in text and "[1]" not in text and " ." not in text


def test_html_remnants_links_emphasis_and_templates_removed(tmp_path):
    md = ("# Leave\n\n<!-- editor note: remove before publishing -->\n\n"
          "<div class=\"callout\">**PEO Teammates: **The People Team will help &amp; advise. "
          "See [the form](https://example.com/form).</div>\n\n"
          "- **All Teammates:** take care of yourself <br> and rest.\n- Keep `__init__` and 5 * 3 = 15 as written.\n")
    doc, text, chunks = _ingest(tmp_path, "leave.md", md)
    assert "PEO Teammates: The People Team will help & advise. See the form." in text
    assert _kinds(doc, "list") == ["All Teammates: take care of yourself and rest.",
                                   "Keep __init__ and 5 * 3 = 15 as written."]
    assert "editor note" not in text
    doc, text, _ = _ingest(tmp_path, "welcome.txt", "Welcome\n\nHello {{ user.name }}, your quota is 20 GB."
                                                     "{% if admin %}\n\nLine one<br>line two &amp; more.\n")
    assert "Hello, your quota is 20 GB." in text and "Line one line two & more." in text
    doc, text, _ = _ingest(tmp_path, "welcome.html", "<html><body><h1>Welcome</h1>"
                                                      "<p>The HTML &lt;meta&gt; element is text here.</p></body></html>")
    assert "The HTML <meta> element is text here." in text  # written escaped: the page's own words


def test_prose_numbers_and_lists_unchanged(tmp_path):
    md = ("# Policy\n\nEmployees accrue 1.5 days per month (18 days a year); unused days carry over: max 5.\n\n"
          "- First item: 20% off\n- Second item\n\n1. Step one\n2. Step two\n\nSee the table.\n\n"
          "| Level | Days |\n|---|---|\n| Junior | 20 |\n| Senior | 25 |\n")
    doc, text, _ = _ingest(tmp_path, "policy.md", md)
    assert "Employees accrue 1.5 days per month (18 days a year); unused days carry over: max 5." in text
    assert _kinds(doc, "list") == ["First item: 20% off", "Second item", "Step one", "Step two"]
    assert "See the table.\n\nLevel: Junior, Days: 20\nLevel: Senior, Days: 25" in text


def _corpus_files():
    return sorted(c.path for c in discover([ENTERPRISE]).candidates if format_of(c.path))


@pytest.mark.skipif(not ENTERPRISE.is_dir(), reason="the enterprise corpus is not on this machine")
def test_enterprise_corpus_chunks_have_no_markup_debris(embedder):
    files = _corpus_files()
    assert len(files) >= 140
    chunker = Chunker(embedder, max_tokens=embedder.max_tokens - HEADER_TOKENS - 2)
    found = []
    started = time.perf_counter()
    for path in files:
        doc = parse_file(str(path), path.read_bytes())
        norm, chunks = chunker.chunk("d", "0" * 64, doc, _title(doc, path))
        for c in chunks:
            assert norm.text[c.start:c.end] == c.text
            found += [(path.name, name, where) for name, where in _debris(c.text)]
    elapsed = time.perf_counter() - started
    assert not found, f"{len(found)} debris hits, e.g. {found[:10]}"
    assert elapsed < 120, f"parsing and chunking {len(files)} files took {elapsed:.0f}s"
