"""Find the files an ingest covers: folders walked safely (symlink loops, unreadable entries)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pathspec

from ingest.errors import ConfigError, IngestError, UnreadableFile

log = logging.getLogger(__name__)

IGNORE_FILE = ".loreignore"  # gitignore syntax, read from the top of each folder argument


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
    excluded: tuple[Path, ...] = ()  # files and folders an exclude pattern matched (a folder counts once)


def exclude_spec(patterns: Sequence[str], where: str = "--exclude") -> pathspec.PathSpec:
    """Compile gitignore-style patterns; raise ConfigError naming where the bad one came from and the fix."""
    for pattern in patterns:
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except (ValueError, TypeError, re.error) as exc:  # GitWildMatchPatternError is a ValueError; [z-a] a re.error
            raise ConfigError(f"{where}: invalid exclude pattern {pattern!r} ({exc}); fix or remove it. Patterns use "
                              "gitignore syntax, e.g. 'SOURCES.md', 'drafts/' or '*.tmp'; a range in brackets "
                              "goes up, as in [a-z]") from exc
    return pathspec.GitIgnoreSpec.from_lines(patterns)


def _root_spec(root: Path, patterns: Sequence[str], failures: list[IngestError]) -> pathspec.PathSpec:
    """The argument patterns plus the root's .loreignore (its lines come later, so '!' can re-include)."""
    lines = list(patterns)
    ignore = root / IGNORE_FILE
    if ignore.is_file():
        try:
            own = ignore.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            failures.append(UnreadableFile(str(ignore), f"cannot be read ({exc}); its patterns were not applied"))
            own = []
        exclude_spec(own, str(ignore))  # its own bad line is named as the file's, not the flag's
        lines += own
    return exclude_spec(lines)


def discover(paths: Sequence[str | Path], exclude: Sequence[str] = (),
             confine: Sequence[str | Path] | None = None) -> Discovery:
    """Expand files and folders into candidates; report what cannot be read instead of raising.

    `exclude` holds gitignore-style patterns matched against paths relative to each folder argument
    (a folder's own .loreignore adds to them); a file argument is matched by its name alone.
    `confine`, when given, lists the only folders the walk may reach: a file or folder whose real path
    (links followed) lies outside all of them is skipped and reported, even when the link appeared after
    the caller checked the paths.
    """
    arg_spec = exclude_spec(exclude)
    inside = confiner(confine)
    cands: dict[Path, Candidate] = {}
    failures: list[IngestError] = []
    roots: list[Path] = []
    excluded: list[Path] = []
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
        if inside and not inside(real):  # not walked, so not a root: nothing under it is removed
            failures.append(outside_roots(p))
            continue
        if real.is_file():
            if arg_spec.match_file(p.name):
                excluded.append(p)
            else:
                cands.setdefault(real, Candidate(p, None))
        elif real.is_dir():
            complete = _walk(p, _root_spec(p, exclude, failures), cands, failures, excluded, inside)
            if complete:
                roots.append(p)
        else:
            failures.append(UnreadableFile(str(p), "is not a regular file or folder"))
    return Discovery(tuple(cands.values()), tuple(failures), tuple(roots), tuple(excluded))


def _loops(d: Path, root: Path, ident: tuple[int, int]) -> bool:
    """Whether folder `d` is one of its own ancestors on the walked path (a real loop, not a second route)."""
    for parent in d.relative_to(root).parents:
        try:
            st = (root / parent).stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ident:
            return True
    return False


def confiner(confine: Sequence[str | Path] | None) -> Callable[[Path], bool] | None:
    """Whether a real path lies inside one of the confine folders; None when the walk is not confined."""
    if confine is None:
        return None
    roots = []
    for r in confine:
        try:
            roots.append(Path(os.path.abspath(Path(r).expanduser())).resolve())
        except (OSError, RuntimeError):  # a folder that is a symlink loop holds nothing
            continue
    return lambda real: any(real == r or real.is_relative_to(r) for r in roots)


def outside_roots(p: Path) -> UnreadableFile:
    return UnreadableFile(str(p), "links outside the allowed folders; skipped: remove the link or exclude it")


def _entered(d: Path, inside: Callable[[Path], bool], failures: list[IngestError]) -> bool:
    """Check each folder as the walk enters it, so a link made after the paths were checked is caught too."""
    try:
        real = d.resolve(strict=True)
    except (OSError, RuntimeError):
        failures.append(UnreadableFile(str(d), "changed while it was walked (now a dangling link or a loop); skipped"))
        return False
    if not inside(real):
        failures.append(outside_roots(d))
        return False
    return True


def _walk(root: Path, spec: pathspec.PathSpec, cands: dict[Path, Candidate], failures: list[IngestError],
          excluded: list[Path], inside: Callable[[Path], bool] | None = None) -> bool:
    """Walk a folder following symlinks once each; False when part of it could not be listed."""
    complete = True
    seen: set[tuple[int, int]] = set()

    def onerror(err: OSError) -> None:
        nonlocal complete
        complete = False
        failures.append(UnreadableFile(err.filename or str(root), f"cannot be listed ({err.strerror}); check permissions"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        d = Path(dirpath)
        if inside and not _entered(d, inside, failures):
            dirnames[:] = []
            complete = complete and d != root  # the folder argument itself was swapped: keep its documents
            continue
        st = d.stat()
        if (st.st_dev, st.st_ino) in seen:
            if _loops(d, root, (st.st_dev, st.st_ino)):
                failures.append(UnreadableFile(str(d), "is a symlink loop back into a folder that contains it; "
                                               "skipped: remove the link"))
            else:  # the same folder reached twice (a link beside its target): its files are already candidates
                log.debug("skipped %s: the same folder was already walked through another path", d)
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        rel = d.relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        keep = []
        for n in sorted(dirnames):
            if n.startswith("."):
                continue
            if spec.match_file(f"{prefix}{n}/"):  # pruned, as git does: nothing below can be re-included
                excluded.append(d / n)
            else:
                keep.append(n)
        dirnames[:] = keep
        for name in sorted(filenames):
            f = d / name
            if name.startswith("."):
                continue
            if spec.match_file(prefix + name):
                excluded.append(f)
                continue
            try:
                real = f.resolve(strict=True)
            except RuntimeError:
                failures.append(UnreadableFile(str(f), "is a symlink loop; fix or remove the link"))
                continue
            except OSError:
                failures.append(UnreadableFile(str(f), "is a dangling symlink; fix or remove the link"))
                continue
            if inside and not inside(real):
                failures.append(outside_roots(f))
                continue
            if not real.is_file():
                failures.append(UnreadableFile(str(f), "is not a regular file"))
                continue
            cands.setdefault(real, Candidate(f, root))
    return complete
