"""What the branch's history says about each file at its head: identity, last change, recent authors.

One `git log` walks the first-parent chain oldest first, each commit diffed against its first parent with
rename detection (-M), so a merge counts as one change made when it landed on the branch. A file's
identity is the path where it was first added; a rename git detects carries it. The walk from the
empty tree and the walk of `old..new` on top of a saved state apply the same steps, so a long-lived cache
and a fresh one give the same ids.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ingest.sources.git.runner import Git

log = logging.getLogger(__name__)

MAX_AUTHORS = 3
STATE_FORMAT = 1
_LOG = ("log", "--first-parent", "--diff-merges=first-parent", "--root", "-M", "--name-status", "-z",
        "--reverse", "--format=%x1e%H%x1f%P%x1f%cI%x1f%ae")


@dataclass(slots=True)
class Entry:
    """One path at the head: its external id and what the history says about its content."""

    id: str
    updated_at: str  # committer date of the last commit that changed the content (a pure rename does not)
    commit: str  # the last commit that touched the path, renames included: where a link to it points
    authors: list[str] = field(default_factory=list)  # most recent first, distinct, lower-cased emails

    def to_json(self) -> list:
        return [self.id, self.updated_at, self.commit, self.authors]

    @classmethod
    def from_json(cls, row: list) -> Entry:
        ident, updated_at, commit, authors = row
        return cls(str(ident), str(updated_at), str(commit), [str(a) for a in authors])


@dataclass(slots=True)
class Change:
    status: str  # A, M, D, T, R<score>, C<score>
    path: str
    old: str = ""  # the source path of a rename or copy


@dataclass(slots=True)
class Commit:
    sha: str
    parents: list[str]
    date: str
    author: str
    changes: list[Change]


class Files:
    """Path -> Entry at one commit, with the set of ids in use so a new file never takes a live id."""

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries: dict[str, Entry] = entries if entries is not None else {}
        self.ids = {e.id for e in self.entries.values()}

    def new_id(self, path: str, commit: str) -> str:
        """The path, unless a file renamed away from it still carries that id (then path@commit)."""
        ident = path if path not in self.ids else f"{path}@{commit[:12]}"
        self.ids.add(ident)
        return ident

    def apply(self, c: Commit) -> None:
        """One commit's changes. Removals go first and renames are placed before additions, so a path
        freed by a rename and re-added in the same commit gets a new id, never the renamed file's."""
        moved: dict[str, Entry] = {}
        for ch in c.changes:
            if ch.status[0] in "DR":
                gone = self.entries.pop(ch.old or ch.path, None)
                if gone is not None and ch.status[0] == "R":
                    moved[ch.path] = gone  # its id stays in use
                elif gone is not None:
                    self.ids.discard(gone.id)
        for ch in sorted(c.changes, key=lambda ch: ch.status[0] != "R"):
            if ch.status[0] == "D":
                continue
            entry = moved.pop(ch.path, None) if ch.status[0] == "R" else self.entries.get(ch.path)
            if entry is None:
                entry = Entry(self.new_id(ch.path, c.sha), c.date, c.sha)
            entry.commit = c.sha
            if ch.status != "R100":  # a pure rename keeps the content, so its date and authors
                entry.updated_at = c.date
                if c.author:
                    entry.authors = [c.author] + [a for a in entry.authors if a != c.author][:MAX_AUTHORS - 1]
            self.entries[ch.path] = entry


def parse_changes(raw: bytes) -> list[Change]:
    """`--name-status -z` output (paths decoded losslessly: undecodable bytes survive a round trip)."""
    tokens = [t.decode("utf-8", "surrogateescape") for t in raw.lstrip(b"\n").split(b"\0")]
    changes, i = [], 0
    while i < len(tokens) and tokens[i]:
        status = tokens[i]
        if status[0] in "RC":
            changes.append(Change(status, tokens[i + 2], tokens[i + 1]))
            i += 3
        else:
            changes.append(Change(status, tokens[i + 1]))
            i += 2
    return changes


def parse_log(raw: bytes) -> list[Commit]:
    """Records of `git log -z --name-status --format=%x1e%H%x1f%P%x1f%cI%x1f%ae`."""
    commits = []
    for rec in raw.split(b"\x1e")[1:]:
        head, _, rest = rec.partition(b"\0")
        sha, parents, date, author = head.decode("utf-8", "replace").split("\x1f")
        commits.append(Commit(sha, parents.split(), date, author.strip().lower(), parse_changes(rest)))
    return commits


def walk(git: Git, head: str, files: Files | None = None, base: str | None = None) -> Files | None:
    """Apply `base..head` (or all of head's history) to `files`; None when base is not on head's first-parent
    chain (a force push or a merge that left the old head as a second parent): the caller walks it all."""
    commits = parse_log(git.out(*_LOG, f"{base}..{head}" if base else head))
    files = files if files is not None else Files()
    if base and (not commits or commits[0].parents[:1] != [base]):
        return None
    for c in commits:
        files.apply(c)
    return files


def carry_ids(git: Git, walked: Files, old: Files, old_commit: str, head: str) -> Files:
    """Keep the ids `old` gave at `old_commit` for the same files at `head`, matched through a tree diff
    (renames included) when that commit is still in the mirror, else by path alone; other files keep
    the walk's id unless it is taken, then path@head."""
    renamed: dict[str, str] = {}
    added: set[str] = set()
    if git.run("cat-file", "-e", f"{old_commit}^{{commit}}", ok=(0, 1, 128)).returncode == 0:
        for ch in parse_changes(git.out("diff", "--name-status", "-z", "-M", old_commit, head)):
            if ch.status[0] == "R":
                renamed[ch.path] = ch.old
            elif ch.status[0] in "AC":
                added.add(ch.path)
    out: dict[str, Entry] = {}
    pending = []
    for path, entry in walked.entries.items():
        src = renamed.get(path, path if path not in added else None)
        before = old.entries.get(src) if src else None
        if before is not None:
            entry.id = before.id
            out[path] = entry
        else:
            pending.append((path, entry))
    taken = {e.id for e in out.values()}
    for path, entry in pending:
        if entry.id in taken:
            entry.id = f"{path}@{head[:12]}"
        taken.add(entry.id)
        out[path] = entry
    return Files(out)


def load_state(path: Path, branch: str) -> tuple[str, Files] | None:
    """The saved head commit and files, or None when there is none or it cannot be used (then: a full walk)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STATE_FORMAT or data.get("branch") != branch:
            return None
        return str(data["commit"]), Files({p: Entry.from_json(row) for p, row in data["files"].items()})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring the unreadable git source state %s (%s); walking the whole history", path, exc)
        return None


def save_state(path: Path, repo: str, branch: str, commit: str, files: Files) -> None:
    """Write the state atomically: a crash leaves the old state or the new one, never half of one."""
    data = {"format": STATE_FORMAT, "repo": repo, "branch": branch, "commit": commit,
            "files": {p: e.to_json() for p, e in sorted(files.entries.items())}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
