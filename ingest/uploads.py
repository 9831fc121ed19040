"""Uploaded files and ingest paths, checked before anything is written: names, types, the ingest roots.

Also the repair of DATA_DIR/uploads after a killed upload (`reconcile_folder`); `ingest.jobs.Jobs` holds
the locks these run under.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
import uuid
import zipfile
from pathlib import Path
from typing import Sequence

from ingest.discover import discover
from ingest.errors import ConfigError, UnsupportedFormat
from ingest.formats import SUPPORTED, format_of

MAX_NAME = 120  # characters of an uploaded file's stored name
ROOTS_VAR = "LORE_SERVER__INGEST_ROOTS"
_ALLOWED = f"allowed types: {', '.join(SUPPORTED)}"
_MAGIC = ((b"%PDF", "a PDF"), (b"PK\x03\x04", "a ZIP archive"), (b"\x7fELF", "an executable"),
          (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\xd0\xcf\x11\xe0", "a legacy Office file"), (b"\x1f\x8b", "a gzip archive"), (b"Rar!", "a RAR archive"),
          (b"7z\xbc\xaf", "a 7z archive"))
_OFFICE_PART = {"docx": "word/document.xml", "pptx": "ppt/presentation.xml"}


def resolve_in_roots(raw: str, roots: Sequence[Path]) -> Path:
    """The absolute path `raw` names, refused unless it exists inside an ingest root, links followed."""
    where = f"paths: {raw!r}"
    try:
        os.fsencode(raw)  # a lone surrogate has no file name
    except UnicodeEncodeError:
        raise ConfigError(f"{where} is not a usable path") from None
    if not raw.strip() or any(ord(ch) < 32 for ch in raw):
        raise ConfigError(f"{where} is not a usable path")
    p = Path(raw)
    if ".." in p.parts:
        raise ConfigError(f"{where} contains '..'; give the path inside {ROOTS_VAR} without it")
    real_roots = [(Path(os.path.abspath(r)), _real(r)) for r in roots]
    tries = [p] if p.is_absolute() else [lex / p for lex, _ in real_roots]
    escapes = False
    for t in tries:
        lexical, real = Path(os.path.abspath(t)), _real(t)
        if not any(_inside(lexical, lex) or _inside(lexical, rr) for lex, rr in real_roots):
            continue
        if real is None or not any(_inside(real, rr) for _, rr in real_roots):
            escapes = True  # a link (or a loop) leads out of the roots
        elif real.exists():
            return lexical
    if escapes:
        raise ConfigError(f"{where} links outside the folders {ROOTS_VAR} allows; ingest the target's own "
                          "folder or add it to the setting")
    if p.is_absolute() and not any(_inside(p, lex) or _inside(p, rr) for lex, rr in real_roots):
        raise ConfigError(f"{where} is not inside the folders {ROOTS_VAR} allows "
                          f"({', '.join(str(lex) for lex, _ in real_roots)}); use a path under one of them")
    raise ConfigError(f"{where} does not exist inside the folders {ROOTS_VAR} allows; check the path")


def _real(p: Path) -> Path | None:
    try:
        return Path(p).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None


def _inside(p: Path, root: Path | None) -> bool:
    return root is not None and (p == root or p.is_relative_to(root))


def _no_escapes(paths: Sequence[str], exclude: Sequence[str], roots: Sequence[Path]) -> None:
    """Refuse a folder holding a link to a file or folder outside the roots: the walk would follow it."""
    real_roots = [r for r in (_real(x) for x in roots) if r is not None]
    for cand in discover(paths, exclude).candidates:
        real = _real(cand.path)
        if real is None or not any(_inside(real, r) for r in real_roots):
            raise ConfigError(f"paths: {cand.path} links outside the folders {ROOTS_VAR} allows; remove the link or "
                              "exclude it (exclude: [...])")


def safe_filename(raw: str | None) -> str:
    """An uploaded file's name, safe to store: the last path part, no control characters, no leading dots, capped."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = re.sub(r"[^\w.\- ()+,@]", "_", name)
    name = re.sub(r"\.{2,}", ".", re.sub(r"\s+", " ", name)).strip(" .")
    stem, ext = os.path.splitext(name)
    if len(name) > MAX_NAME:
        name = stem[:MAX_NAME - len(ext)].rstrip(" .") + ext
        stem = os.path.splitext(name)[0]
    if not stem or format_of(name) is None:
        raise UnsupportedFormat(name or "(no name)", f"the file name needs a supported extension; {_ALLOWED}")
    return name


def upload_key(raw: str | None) -> str:
    """The name a file was uploaded as, for telling uploads apart: its last path part, in NFC."""
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", raw or ""))[-1]
    return name.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate cannot be stored


def stored_name(names: dict[str, str], original: str, plain: str, folder: Path) -> str:
    """The file name for an upload named `original` whose sanitized name is `plain` (see Jobs.upload).

    `names` maps stored names to the names they were uploaded as; a file without an entry (uploaded
    before names were recorded) counts as uploaded under its own name.
    """
    for stored, orig in names.items():
        if orig == original:
            return stored
    owner = names.get(plain) or (plain if (folder / plain).exists() else None)
    if owner in (None, original):
        return plain
    stem, ext = os.path.splitext(plain)
    tag = "~" + hashlib.sha256(original.encode()).hexdigest()[:10]
    return stem[:MAX_NAME - len(ext) - len(tag)] + tag + ext


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename gives it its final name


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def reconcile_folder(folder: Path, store, quarantine: Path) -> dict[str, list[str]]:
    """Jobs.reconcile_uploads on one folder: returns the names removed, restored and quarantined."""
    done: dict[str, list[str]] = {"removed": [], "restored": [], "quarantined": []}
    docs = store.get_documents(store.doc_ids_with_prefix(str(folder) + os.sep))
    tracked = {Path(d.uri).name: d.version for d, _ in docs.values() if Path(d.uri).parent == folder}
    backups = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith(".") and name.endswith(".part"):  # cut short before its rename: never a document
            entry.unlink(missing_ok=True)
            done["removed"].append(name)
        elif name.startswith(".") and name.endswith(".previous"):
            backups.append(entry)
        elif name not in tracked:
            quarantine.mkdir(parents=True, exist_ok=True)
            dest = quarantine / name
            if dest.exists():
                dest = quarantine / f"{name}.{uuid.uuid4().hex[:8]}"
            os.replace(entry, dest)
            done["quarantined"].append(name)
    for b in backups:  # the version a killed re-upload moved aside: back if the registry still holds it
        digest = _sha256(b)
        home = next((n for n, v in tracked.items() if v == digest and _sha256(folder / n) != v), None)
        if home is not None:
            os.replace(b, folder / home)
            done["restored"].append(home)
        else:
            b.unlink(missing_ok=True)
            done["removed"].append(b.name)
    stale = [n for n in store.upload_names() if n not in tracked]
    if stale:
        store.drop_upload_names(stale)
    return done


def check_type(name: str, data: bytes) -> None:
    """Refuse content that is not what the extension says (415); an empty file is left to the parser (422)."""
    fmt = format_of(name)
    if not data:
        return
    if fmt == "pdf":
        if b"%PDF-" not in data[:1024]:
            raise UnsupportedFormat(name, f"is not a PDF (no %PDF header); {_ALLOWED}")
    elif fmt in _OFFICE_PART:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                ok = _OFFICE_PART[fmt] in z.namelist()
        except (zipfile.BadZipFile, ValueError, OSError):
            ok = False
        if not ok:
            raise UnsupportedFormat(name, f"is not a {fmt.upper()} document; {_ALLOWED}")
    else:
        kind = next((what for magic, what in _MAGIC if data.startswith(magic)), None)
        if kind or b"\x00" in data[:8192]:
            raise UnsupportedFormat(name, f"is {kind or 'binary data'}, not text; {_ALLOWED}")
