"""Find the files an ingest covers: folders walked safely (symlink loops, unreadable entries)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ingest.errors import IngestError, UnreadableFile


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file to consider, with the folder argument it was found under (None for a file argument)."""

    path: Path  # absolute, as found (the document's uri); links are not resolved
    root: Path | None


@dataclass(frozen=True, slots=True)
class Discovery:
    candidates: tuple[Candidate, ...]
    failures: tuple[IngestError, ...]
    roots: tuple[Path, ...]  # folders walked completely: documents under them that vanished are removed


def _excluded(path: Path, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(str(path), p) for p in patterns)


def discover(paths: Sequence[str | Path], exclude: Sequence[str] = ()) -> Discovery:
    """Expand files and folders into candidates; report what cannot be read instead of raising."""
    cands: dict[Path, Candidate] = {}
    failures: list[IngestError] = []
    roots: list[Path] = []
    for arg in paths:
        p = Path(os.path.abspath(Path(arg).expanduser()))
        try:
            real = p.resolve(strict=True)
        except RuntimeError:
            failures.append(UnreadableFile(str(p), "is a symlink loop; fix or remove the link"))
            continue
        except OSError:
            reason = "is a dangling symlink" if p.is_symlink() else "does not exist"
            failures.append(UnreadableFile(str(p), f"{reason}; check the path"))
            continue
        if real.is_file():
            cands.setdefault(real, Candidate(p, None))
        elif real.is_dir():
            complete = _walk(p, exclude, cands, failures)
            if complete:
                roots.append(p)
        else:
            failures.append(UnreadableFile(str(p), "is not a regular file or folder"))
    return Discovery(tuple(cands.values()), tuple(failures), tuple(roots))


def _walk(root: Path, exclude: Sequence[str], cands: dict[Path, Candidate], failures: list[IngestError]) -> bool:
    """Walk a folder following symlinks once each; False when part of it could not be listed."""
    complete = True
    seen: set[tuple[int, int]] = set()

    def onerror(err: OSError) -> None:
        nonlocal complete
        complete = False
        failures.append(UnreadableFile(err.filename or str(root), f"cannot be listed ({err.strerror}); check permissions"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        d = Path(dirpath)
        st = d.stat()
        if (st.st_dev, st.st_ino) in seen:
            failures.append(UnreadableFile(str(d), "is a symlink loop back into a folder already walked; skipped"))
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and not _excluded(d / n, exclude))
        for name in sorted(filenames):
            f = d / name
            if name.startswith(".") or _excluded(f, exclude):
                continue
            try:
                real = f.resolve(strict=True)
            except RuntimeError:
                failures.append(UnreadableFile(str(f), "is a symlink loop; fix or remove the link"))
                continue
            except OSError:
                failures.append(UnreadableFile(str(f), "is a dangling symlink; fix or remove the link"))
                continue
            if not real.is_file():
                failures.append(UnreadableFile(str(f), "is not a regular file"))
                continue
            cands.setdefault(real, Candidate(f, root))
    return complete
