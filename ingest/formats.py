"""Parse one file into structural blocks with unstructured, using the cheapest correct path per format."""

from __future__ import annotations

import importlib
import importlib.util
import io
import logging
import os
import re
import sys
import threading
import types
import zipfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable

from ingest.errors import (
    EmptyDocument,
    EncryptedDocument,
    FileTooLarge,
    IngestError,
    ParseFailed,
    UnsupportedFormat,
)
from ingest.markup import clean_text, code_text, fence, markdown_extensions, table_rows
from ingest.templates import has_template_tags, render_templates
from ingest.titles import choose_title, header_title, render_header, split_header_block
from ingest.types import Block, ParsedDoc

log = logging.getLogger(__name__)

os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

TEXT_FORMATS = {".md": "md", ".markdown": "md", ".txt": "text", ".text": "text", ".rst": "rst",
                ".html": "html", ".htm": "html", ".eml": "eml"}
BINARY_FORMATS = {".pdf": "pdf", ".docx": "docx", ".pptx": "pptx"}
SUPPORTED = tuple(sorted({**TEXT_FORMATS, **BINARY_FORMATS}))
# Elements that are page furniture or carry no passage text.
_SKIP = {"Header", "Footer", "PageBreak", "PageNumber", "Image", "Figure", "FigureCaption_"}
_LANG = ["eng"]  # explicit: skips per-document language detection (a quarter of parse time)
_FRONT_MATTER = re.compile(r"\A(?:\ufeff)?(---|\+\+\+)[ \t]*\r?\n(.*?)\r?\n\1[ \t]*\r?\n", re.S)
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]\u2019\u201d]*\Z")
# ZIP-based files (DOCX, PPTX) are refused from what their directory declares, before a parser unpacks
# anything (zipfile never yields more than a member's declared size, so the declaration is binding)
ZIP_EXPANSION = 4  # an archive may unpack to this many times the file size limit (LORE_INGEST__MAX_FILE_MB)
DEFAULT_MAX_UNPACKED = ZIP_EXPANSION * 50 * 2**20  # for the default 50 MiB limit
MAX_ZIP_RATIO = 100  # unpacked / packed; office files stay far below it, a zip bomb is at ~1000
_RATIO_FLOOR = 8 * 2**20  # the ratio counts from this much unpacked data: smaller archives cannot hurt
MAX_ZIP_MEMBERS = 20_000


def _unsupported(path: str) -> UnsupportedFormat:
    return UnsupportedFormat(path, f"unsupported file type; supported: {', '.join(SUPPORTED)}")


def format_of(path: str | Path) -> str | None:
    """The parser name for a path's extension, or None when unsupported."""
    ext = Path(path).suffix.lower()
    return TEXT_FORMATS.get(ext) or BINARY_FORMATS.get(ext)


def decode_text(path: str, data: bytes) -> str:
    """Decode a text file: UTF-8 (with or without BOM), then Windows-1252 when it reads cleanly, else a
    detected encoding; refuse binary.

    Order matters: a Latin-1/Windows-1252 file also decodes without error as cp1250, cp1257 or cp437, and
    the detector, scoring short texts alike, picked cp1250 ("naïve" became "naďve"). Windows-1252 is by
    far the most common legacy encoding of office text, so it goes first whenever its decoding reads as
    plain language; Cyrillic or Greek bytes read as Windows-1252 become runs of accented capitals that
    the detector's mess measure rejects, and those go on to detection.
    """
    if b"\x00" in data[:8192]:
        raise ParseFailed(path, "contains binary data (NUL bytes), not text; check the file type")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    western = _western(data)
    if western is not None:
        log.info("decoded %s as cp1252", path)
        return western
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.percent_chaos > 0.2:
        raise ParseFailed(path, "is not valid text in any known encoding; re-save it as UTF-8")
    log.info("decoded %s as %s", path, best.encoding)
    return str(best)


_WESTERN_MESS = 0.1  # the detector's mess ratio above which a cp1252 reading is taken for another script
_MESS_SAMPLE = 65536  # characters of non-ASCII lines measured: enough to judge, bounded for big files


def _western(data: bytes) -> str | None:
    """The text as Windows-1252 if it decodes and its non-ASCII lines read as language, else None."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d are unassigned in cp1252
        return None
    from charset_normalizer.md import mess_ratio

    sample = "\n".join(line for line in text.splitlines() if not line.isascii())[:_MESS_SAMPLE]
    return text if mess_ratio(sample, _WESTERN_MESS) < _WESTERN_MESS else None


def split_front_matter(text: str) -> tuple[dict, str]:
    """Separate YAML (---) or TOML (+++) front matter from the body; bad front matter is ignored."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    raw, body = m.group(2), text[m.end():]
    try:
        if m.group(1) == "---":
            import yaml

            meta = yaml.safe_load(raw)
        else:
            import tomllib

            meta = tomllib.loads(raw)
    except Exception:  # noqa: BLE001 - front matter is optional metadata
        log.warning("ignoring unparseable front matter")
        return {}, body
    return (meta if isinstance(meta, dict) else {}), body


_patch_lock = threading.Lock()
_patch_depth = 0
_patch_original = None


@contextmanager
def _plain_html_text():
    """Classify untagged HTML text without spaCy while unstructured parses HTML-based formats.

    unstructured runs a spaCy pipeline on every untagged HTML text node only to choose between
    NarrativeText and Text (plus Address/EmailAddress), a distinction Lore's blocks never use: all
    of them become plain text, and headings and list items come from the tags themselves. That
    classifier is half of Markdown/HTML parse time. List items written as bullets are still
    detected. Restored on exit, so other users of unstructured in this process are unaffected.
    """
    from unstructured.documents.elements import ListItem, NarrativeText
    from unstructured.partition.html import parser
    from unstructured.partition.text_type import is_bulleted_text

    def derive(text: str):
        if is_bulleted_text(text):
            return ListItem
        return NarrativeText if len(text) >= 2 else None

    global _patch_depth, _patch_original
    with _patch_lock:  # reference-counted, so overlapping parses in threads restore correctly
        if _patch_depth == 0:
            _patch_original = parser.derive_element_type_from_text
            parser.derive_element_type_from_text = derive
        _patch_depth += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_depth -= 1
            if _patch_depth == 0:
                parser.derive_element_type_from_text = _patch_original


_defer_lock = threading.RLock()


class _Deferred(types.ModuleType):
    """Stands in for a module in sys.modules until an attribute is first read, then imports it for real."""

    def __getattr__(self, attr: str):
        with _defer_lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
        return getattr(real, attr)


def _defer_spacy() -> None:
    """unstructured imports spaCy, and through it thinc and torch, when its HTML parser loads: about 3 s,
    most of a parser process's start (the embedder waits for the first parse), for a text classifier
    that Markdown, HTML and reST parsing do not call (`_plain_html_text`). spaCy now loads on first use."""
    with _defer_lock:
        if "spacy" not in sys.modules and importlib.util.find_spec("spacy") is not None:
            sys.modules["spacy"] = _Deferred("spacy")


def _partition(fmt: str, path: str, data: bytes, text: str | None) -> list:
    if text is not None and not text.strip():
        return []  # all of it was a header block
    _defer_spacy()
    if fmt in ("md", "html", "rst", "eml"):
        with _plain_html_text():
            return _partition_any(fmt, path, data, text)
    return _partition_any(fmt, path, data, text)


def _partition_any(fmt: str, path: str, data: bytes, text: str | None) -> list:
    if fmt == "md":
        from unstructured.partition.md import partition_md

        return partition_md(text=text, languages=_LANG, extensions=markdown_extensions())
    if fmt == "html":
        from unstructured.partition.html import partition_html

        return partition_html(text=text, languages=_LANG)
    if fmt == "rst":
        from unstructured.partition.rst import partition_rst

        rst = text if text is not None else decode_text(path, data)
        return partition_rst(file=io.BytesIO(rst.encode()), languages=_LANG)
    if fmt == "text":
        from unstructured.partition.text import partition_text

        return partition_text(text=text, languages=_LANG)
    if fmt == "eml":
        from unstructured.partition.email import partition_email

        return partition_email(file=io.BytesIO(data), languages=_LANG)
    if fmt == "pdf":
        _check_pdf(path, data)
        from unstructured.partition.pdf import partition_pdf

        return partition_pdf(file=io.BytesIO(data), strategy="fast", languages=_LANG,
                             infer_table_structure=False)
    if fmt == "docx":
        from unstructured.partition.docx import partition_docx

        return partition_docx(file=io.BytesIO(data), languages=_LANG)
    if fmt == "pptx":
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx(file=io.BytesIO(data), languages=_LANG)
    raise _unsupported(path)


def check_archive(path: str, data: bytes, max_unpacked: int = DEFAULT_MAX_UNPACKED) -> None:
    """Refuse a ZIP-based file (DOCX, PPTX, any zip) that would unpack to more than `max_unpacked` bytes, or
    compresses more than MAX_ZIP_RATIO to 1 (a zip bomb), before any parser opens it."""
    if not data.startswith(b"PK"):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        return  # not a readable archive: the parser reports that
    limit = f"{max_unpacked / 2**20:.0f} MiB"
    if len(members) > MAX_ZIP_MEMBERS:
        raise FileTooLarge(path, f"is an archive of {len(members)} files, over the limit of {MAX_ZIP_MEMBERS}; "
                           "split the document")
    unpacked = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    if unpacked > max_unpacked:
        raise FileTooLarge(path, f"unpacks to {unpacked / 2**20:.0f} MiB, over the {limit} limit for archives "
                           f"({ZIP_EXPANSION} times LORE_INGEST__MAX_FILE_MB); split the document, or raise "
                           "LORE_INGEST__MAX_FILE_MB if it is genuine")
    if unpacked > _RATIO_FLOOR and unpacked > MAX_ZIP_RATIO * max(packed, 1):
        raise FileTooLarge(path, f"unpacks to {unpacked / 2**20:.0f} MiB from {max(packed, 1) / 2**20:.2f} MiB, a "
                           f"compression ratio over the {MAX_ZIP_RATIO}:1 limit (a zip bomb, or padding); re-save "
                           "the document")


def _check_pdf(path: str, data: bytes) -> None:
    """Fail early and clearly on encrypted or structurally broken PDFs."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise EncryptedDocument(path, "is password-protected; remove the password and ingest again")
        if len(reader.pages) == 0:
            raise EmptyDocument(path, "PDF has no pages")
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise ParseFailed(path, f"is not a readable PDF (corrupt or truncated: {exc})") from exc


def _continues(prev: Block, nxt: Block) -> bool:
    """A PDF line wrap split into two elements: the first ends mid-sentence, the next starts lowercase or with a digit."""
    return (prev.kind in ("text", "list") and nxt.kind == "text" and prev.page == nxt.page
            and not _SENTENCE_END.search(prev.text) and (nxt.text[0].islower() or nxt.text[0].isdigit()))


def _cleaner(fmt: str) -> Callable[[str], str] | None:
    """How a format's block text is cleaned: Markdown fully, plain text of HTML remnants; text that a parser
    took from a real document tree (HTML, reST, e-mail, office files) holds no markup, only literal text."""
    if fmt == "md":
        return clean_text
    if fmt == "text":
        return partial(clean_text, markdown=False)
    return None


def _blocks(elements: list, join_wrapped: bool = False, clean: Callable[[str], str] | None = None
            ) -> tuple[list[Block], bool]:
    clean = clean or (lambda text: text)
    blocks: list[Block] = []
    has_pages = False
    for el in elements:
        cat = getattr(el, "category", "")
        if cat in _SKIP:
            continue
        md = el.metadata
        page = getattr(md, "page_number", None)
        has_pages = has_pages or page is not None
        if cat == "Table":
            text = table_rows(md.text_as_html or "", clean) or clean(el.text)
            kind = "table"
        elif cat == "CodeSnippet":
            text = code_text(el.text)
            kind = "code"
        else:
            text = clean(el.text)
            kind = {"Title": "title", "ListItem": "list"}.get(cat, "text")
        text = text.strip() if kind != "code" else text
        if not text:
            continue
        if kind == "code":
            text = fence(text)  # stored fenced, verbatim: answers and pages show it as code
        level = (int(md.category_depth or 0) + 1) if kind == "title" else 0
        block = Block(kind=kind, text=text, level=level, page=page)
        if join_wrapped and blocks and _continues(blocks[-1], block):
            prev = blocks.pop()
            sep = "" if prev.text.endswith("-") else " "  # 'home-' + 'office': keep the hyphen, no space
            block = Block(kind=prev.kind, text=prev.text + sep + text, level=prev.level, page=page)
        blocks.append(block)
    return blocks, has_pages


def parse_file(path: str, data: bytes, max_unpacked: int = DEFAULT_MAX_UNPACKED) -> ParsedDoc:
    """Parse one file's bytes; raise an IngestError subclass naming the path and the fix.

    `max_unpacked`: the most a ZIP-based file may unpack to (ZIP_EXPANSION times the file size limit).
    """
    fmt = format_of(path)
    if fmt is None:
        raise _unsupported(path)
    if not data.strip():
        raise EmptyDocument(path, "is empty; add content or remove the file")
    if fmt in ("docx", "pptx") or data.startswith(b"PK\x03\x04"):
        check_archive(path, data, max_unpacked)
    meta: dict = {}
    header: list[tuple[str, str]] = []
    text = None
    if fmt in ("md", "text", "html", "rst"):
        text = decode_text(path, data)
        if fmt in ("md", "text"):
            meta, text = split_front_matter(text)
        if fmt in ("md", "text") and has_template_tags(text):
            text = render_templates(text, meta)  # on the source, so stored spans still index stored text
        if fmt in ("rst", "text"):
            header, text = split_header_block(text)
        if not text.strip() and not header:
            raise EmptyDocument(path, "has no text after its front matter")
    try:
        elements = _partition(fmt, path, data, text)
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - third-party parsers raise anything on bad input
        raise ParseFailed(path, f"could not be parsed as {fmt} ({type(exc).__name__}: {exc})") from exc
    blocks, has_pages = _blocks(elements, join_wrapped=fmt == "pdf", clean=_cleaner(fmt))
    if header:
        blocks.insert(0, Block(kind="text", text=render_header(header)))
    if not blocks:
        raise EmptyDocument(path, "has no extractable text (scanned images are not supported)")
    title = choose_title(blocks, meta.get("title"), header_title(header))
    return ParsedDoc(blocks=tuple(blocks), title=title, front_matter=meta, has_pages=has_pages)
