"""Every supported format parses to structured blocks; bad input fails with path and reason."""

import io

import pytest

from ingest.errors import EmptyDocument, EncryptedDocument, ParseFailed, UnsupportedFormat
from ingest.formats import parse_file, split_front_matter, table_rows

from tests.support import SAMPLES


def _parse(rel):
    p = SAMPLES / rel
    return parse_file(str(p), p.read_bytes())


def test_markdown_front_matter_headings_and_title():
    doc = _parse("policies/pto-policy.md")
    assert doc.title == "Paid Time Off (PTO) Policy"
    assert doc.front_matter["doc_type"] == "policy"
    titles = [(b.text, b.level) for b in doc.blocks if b.kind == "title"]
    assert ("Carry-over", 2) in titles and titles[0] == ("Paid Time Off (PTO) Policy", 1)
    assert not any("doc_type" in b.text for b in doc.blocks)  # front matter is not content


def test_html_table_kept_as_text_rows():
    doc = _parse("policies/expense-policy.html")
    tables = [b.text for b in doc.blocks if b.kind == "table"]
    # parse-v3: a table with a header row reads "Header: cell" per data row
    assert tables == ["City: New York, Nightly cap: $320\nCity: London, Nightly cap: GBP 240\n"
                      "City: Lisbon, Nightly cap: EUR 180"]


def test_pdf_has_pages_and_drops_running_headers():
    doc = _parse("policies/remote-work-policy.pdf")
    assert doc.has_pages
    assert {b.page for b in doc.blocks} == {1, 2}
    text = " ".join(b.text for b in doc.blocks)
    assert "up to 20 working days per calendar year" in text
    assert "Internal" not in text.split("Remote Work Policy")[0]


def test_docx_headings_and_table():
    doc = _parse("policies/information-security-policy.docx")
    assert any(b.kind == "title" and b.text == "Passwords" for b in doc.blocks)
    assert any(b.kind == "table" and "Confidential | customer payment data" in b.text for b in doc.blocks)


def test_pptx_slides_are_pages():
    doc = _parse("incidents/q3-2025-incident-review.pptx")
    assert doc.has_pages and max(b.page for b in doc.blocks) == 4
    assert any("38 minutes" in b.text for b in doc.blocks)


def test_text_email_and_rst(tmp_path):
    assert "90 days" in " ".join(b.text for b in _parse("specs/data-retention.txt").blocks)
    eml = _parse("incidents/2025-06-02-eu-latency.eml")
    assert "4,000 open connections" in " ".join(b.text for b in eml.blocks)
    rst = tmp_path / "a.rst"
    rst.write_text("Title\n=====\n\nSection\n-------\n\nSome *body* text.\n")
    doc = parse_file(str(rst), rst.read_bytes())
    assert [b.text for b in doc.blocks if b.kind == "title"][:2] == ["Title", "Section"]


def test_wrong_encoding_is_decoded(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("Café policy: the café opens at 08:00 and closes at 18:00 for all employees.".encode("cp1252"))
    doc = parse_file(str(p), p.read_bytes())
    assert "Café" in doc.blocks[0].text


@pytest.mark.parametrize("name,data,exc,words", [
    ("empty.md", b"", EmptyDocument, "empty"),
    ("blank.txt", b"   \n\n  ", EmptyDocument, "empty"),
    ("garbage.txt", bytes(range(256)) * 40, ParseFailed, "binary"),
    ("corrupt.pdf", b"%PDF-1.7\n this is not really a pdf", ParseFailed, "PDF"),
    ("corrupt.docx", b"PK\x03\x04 not a zip at all", ParseFailed, "docx"),
    ("image.png", b"\x89PNG\r\n\x1a\n", UnsupportedFormat, "unsupported"),
    ("only-front-matter.md", b"---\ntitle: x\n---\n", EmptyDocument, "front matter"),
])
def test_bad_input_names_path_and_reason(tmp_path, name, data, exc, words):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(exc) as info:
        parse_file(str(p), data)
    assert str(p) in str(info.value) and words in str(info.value)


def test_truncated_and_encrypted_pdf(tmp_path):
    good = (SAMPLES / "policies/remote-work-policy.pdf").read_bytes()
    with pytest.raises(ParseFailed):
        parse_file("t.pdf", good[: len(good) // 3])
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter(clone_from=PdfReader(io.BytesIO(good)))
    w.encrypt("secret")
    buf = io.BytesIO()
    w.write(buf)
    with pytest.raises(EncryptedDocument, match="password"):
        parse_file("locked.pdf", buf.getvalue())


def test_front_matter_and_table_helpers():
    meta, body = split_front_matter("+++\ntitle = 'T'\n+++\nbody")
    assert meta == {"title": "T"} and body == "body"
    assert split_front_matter("---\n: [bad\n---\nbody") == ({}, "body")
    assert table_rows("<table><tr><td>a &amp; b</td><td> c </td></tr></table>") == "a & b | c"


def test_ingest_errors_survive_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(ParseFailed("a.pdf", "is corrupt")))
    assert type(err) is ParseFailed and (err.path, err.reason) == ("a.pdf", "is corrupt")


def test_fast_html_text_path_gives_the_same_blocks_as_unstructured_default():
    """The spaCy-free text classifier used for HTML-based formats changes nothing Lore keeps."""
    from ingest import formats
    from unstructured.partition.html import parser

    shared = SAMPLES.parents[1].parent / "shared" / "corpora" / "enterprise"
    files = sorted(SAMPLES.rglob("*.md")) + sorted(SAMPLES.rglob("*.html")) + sorted(shared.rglob("*.rst"))[:2] \
        + sorted(shared.rglob("*.md"))[:12] + sorted(shared.rglob("*.html"))[:2]
    assert len(files) > 15
    original = parser.derive_element_type_from_text
    for path in files:
        data = path.read_bytes()
        text = formats.decode_text(str(path), data)
        if path.suffix == ".md":
            text = formats.split_front_matter(text)[1]
        fmt = formats.format_of(path)
        fast, _ = formats._blocks(formats._partition(fmt, str(path), data, text))
        slow, _ = formats._blocks(formats._partition_any(fmt, str(path), data, text))
        assert fast == slow, path
    assert parser.derive_element_type_from_text is original  # restored after every parse
