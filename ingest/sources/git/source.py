"""GitSource: the parseable files of one branch of a git repository, read from a mirror in a cache folder."""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import string
import time
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import quote

import pathspec

from ingest.discover import IGNORE_FILE, exclude_spec
from ingest.errors import ConfigError
from ingest.formats import format_of
from ingest.sources.base import ItemUnavailable, SourceItem, SourceUnavailable
from ingest.sources.git.history import Entry, Files, carry_ids, load_state, save_state, walk
from ingest.sources.git.owners import CODEOWNERS_PATHS, owner_token, owners_of, parse_codeowners
from ingest.sources.git.runner import Git, GitFailed
from ingest.types import validate_acl

log = logging.getLogger(__name__)

DEFAULT_LINK = "{repo}/blob/{commit}/{path}"
LINK_FIELDS = ("repo", "commit", "path", "branch")
_FILE_MODES = ("100644", "100755")  # symlinks (120000) and submodules (160000) are not documents
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_BAD_BRANCH = re.compile(r"^-|^/|/$|\.\.|@\{|//|\.lock$|\.$|[\x00-\x20\x7f~^:?*\[\\]")


class GitSource:
    """The files of one branch of a git repository: a local path or any URL git can reach.

        src = GitSource("handbook", "https://git.example.com/org/handbook.git", branch="main",
                        paths=("docs",), cache_dir="/var/lib/lore/git/handbook",
                        link="https://git.example.com/org/handbook/blob/{commit}/{path}", acl=("group:staff",))

    The repository is mirrored into `cache_dir` (a bare repository that holds one branch), a local path
    too: every read sees one fetched snapshot, never the source's own config or hooks, and a listed
    version stays fetchable after the source moves on. `cache_dir` also keeps a small state (the last
    listed commit and each path's id), so a re-sync walks only the new commits.

    external_id: the path where the file was first added on the branch's first-parent history, carried
    through every rename git detects (-M: `git mv`, or a move with edits); a file added where a renamed
    file used to be gets `path@commit`. A fresh cache derives the same ids from the history; after a
    force push the old ids are carried through a tree diff from the last listed commit.
    acl: git has no per-file permissions, so every item carries the readers configured for the source.
    link: a template of {repo} (the URL without credentials or '.git'), {commit} (the last commit that
    touched the file), {path} and {branch} (both URL-quoted); None gives `{repo}@{commit}:{path}`.
    """

    def __init__(self, name: str, repo: str | os.PathLike[str], *, branch: str = "main", paths: Sequence[str] = (),
                 cache_dir: str | Path, link: str | None = DEFAULT_LINK, exclude: Sequence[str] = (),
                 acl: Sequence[str] = (), timeout: float = 600.0) -> None:
        if not name or not str(name).strip():
            raise ConfigError("GitSource name must not be empty; name the source, e.g. 'handbook'")
        repo = os.fspath(repo)
        if not repo or repo.startswith("-"):
            raise ConfigError(f"GitSource {name!r}: repo {repo!r} is not a path or URL of a git repository")
        if not branch or _BAD_BRANCH.search(branch):
            raise ConfigError(f"GitSource {name!r}: branch {branch!r} is not a valid branch name")
        if not timeout > 0:
            raise ConfigError(f"GitSource {name!r}: timeout must be greater than 0, got {timeout!r}")
        self.name, self.branch, self.timeout = name, branch, float(timeout)
        self.paths = tuple(dict.fromkeys(_sub_path(p, name) for p in paths))
        self.exclude = tuple(exclude)
        self._arg_spec = exclude_spec(self.exclude, f"GitSource {name!r} exclude")
        self.acl = validate_acl(list(acl), f"GitSource {name!r} acl")
        self.link = _check_link(link, name)
        self.local = not _is_url(repo)
        self.remote = os.path.abspath(os.path.expanduser(repo)) if self.local else repo  # what git fetches
        self.shown = _public(self.remote)  # for messages and links: no credentials
        self.cache_dir = Path(cache_dir)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", posixpath.basename(self.shown.rstrip("/")))[:40] or "repo"
        key = hashlib.sha256(self.remote.encode()).hexdigest()
        self.mirror = self.cache_dir / f"{slug}-{key[:12]}.git"
        self.state_path = self.cache_dir / f"{slug}-{key[:12]}-{hashlib.sha256(branch.encode()).hexdigest()[:8]}.json"
        self.last_walk = ""  # how the last inventory read the history: unchanged, incremental or full
        self._git = Git(self.mirror, self.timeout)

    def __repr__(self) -> str:
        return f"GitSource({self.name!r}, {self.shown!r}, branch={self.branch!r}, paths={self.paths!r})"

    # -- the Source protocol ------------------------------------------------------------------
    def inventory(self) -> Iterator[SourceItem]:
        """Every parseable file under `paths` at the branch head; all of it or SourceUnavailable."""
        started = time.perf_counter()
        try:
            head = self._update()
            tree = self._tree(head)
            roots = self._roots(tree, head)
            files = self._history(head, tree)
            rules = self._codeowners(tree)
        except GitFailed as exc:
            raise SourceUnavailable(f"{self._where()}: git failed ({exc.detail}); check the repository and "
                                    "the cache folder, then sync again") from exc
        except OSError as exc:
            raise SourceUnavailable(f"{self._where()}: cannot use the cache folder {self.cache_dir} ({exc}); "
                                    "set cache_dir= to a writable folder") from exc
        items = [self._item(path, oid, files.entries[path], rules) for path, oid in self._select(tree, roots)]
        if self.last_walk != "unchanged":
            try:
                save_state(self.state_path, self.shown, self.branch, head, files)
            except OSError as exc:  # the listing is complete; only the next sync's shortcut is lost
                log.warning("git source %s: cannot save %s (%s); the next sync walks the history again",
                            self.name, self.state_path, exc)
        log.info("git source %s: %d items at %s (%s walk, %.0f ms)", self.name, len(items), head[:12],
                 self.last_walk, 1000 * (time.perf_counter() - started))
        return iter(items)

    def fetch(self, item: SourceItem) -> bytes:
        """The blob `item.version` from the mirror."""
        if not _OID.fullmatch(item.version):
            raise ItemUnavailable(item.external_id, f"version {item.version!r} is not a git blob id")
        try:
            return self._git.out("cat-file", "blob", item.version)
        except GitFailed as exc:
            raise ItemUnavailable(item.external_id, f"blob {item.version} is not in the mirror of {self.shown} "
                                  f"({exc.detail}); sync the source again") from exc

    # -- steps ---------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"git source {self.name!r} ({self.shown}, branch {self.branch!r})"

    def _update(self) -> str:
        """Fetch the branch into the mirror; its head commit."""
        if self.local and not os.path.isdir(self.remote):
            raise SourceUnavailable(f"{self._where()}: there is no folder {self.remote}; set repo= to a git "
                                    "repository's folder or URL")
        if not (self.mirror / "HEAD").is_file():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            Git(None, self.timeout).run("init", "--bare", "-q", str(self.mirror))
        ref = f"refs/heads/{self.branch}"
        try:
            self._git.run("fetch", "--no-tags", "--no-write-fetch-head", "-q", "--", self.remote, f"+{ref}:{ref}")
        except GitFailed as exc:
            if "couldn't find remote ref" in exc.detail:
                raise SourceUnavailable(f"{self._where()}: the repository has no branch {self.branch!r}"
                                        f"{self._branches()}; set branch= to one it has") from exc
            raise SourceUnavailable(f"{self._where()}: cannot fetch the repository ({exc.detail}); check that "
                                    "repo= is a git repository this machine can reach and read") from exc
        return self._git.out("rev-parse", "--verify", "-q", f"{ref}^{{commit}}").decode().strip()

    def _branches(self) -> str:
        try:
            raw = self._git.out("ls-remote", "--heads", "--", self.remote).decode("utf-8", "replace")
        except GitFailed:
            return ""
        names = [ln.split("refs/heads/", 1)[1] for ln in raw.splitlines() if "refs/heads/" in ln]
        return f" (it has: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})" if names else " (it has none)"

    def _tree(self, head: str) -> dict[str, tuple[str, str]]:
        """path -> (mode, object id) of everything at head."""
        tree = {}
        for rec in self._git.out("ls-tree", "-r", "-z", "--full-tree", head).split(b"\0"):
            if rec:
                meta, _, path = rec.partition(b"\t")
                mode, _kind, oid = meta.decode().split()
                tree[path.decode("utf-8", "surrogateescape")] = (mode, oid)
        return tree

    def _blob_text(self, oid: str, where: str) -> str:
        try:
            return self._git.out("cat-file", "blob", oid).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceUnavailable(f"{where} is not UTF-8 text; re-save it as UTF-8") from exc

    def _roots(self, tree: dict[str, tuple[str, str]], head: str) -> list[tuple[str, pathspec.PathSpec | None]]:
        """Each sub-path with its patterns (exclude, then its own .loreignore, as discover() reads a folder);
        None for a sub-path that is a file, which is matched by its name alone."""
        roots: list[tuple[str, pathspec.PathSpec | None]] = []
        for sub in self.paths or ("",):
            prefix = f"{sub}/" if sub else ""
            if sub in tree:
                roots.append((sub, None))
                continue
            if sub and not any(p.startswith(prefix) for p in tree):
                raise SourceUnavailable(f"{self._where()}: there is no {sub!r} at {head[:12]}; fix paths= "
                                        "(relative to the repository root)")
            lines = list(self.exclude)
            if prefix + IGNORE_FILE in tree:
                where = f"{self.shown}:{prefix}{IGNORE_FILE} on {self.branch!r}"
                own = self._blob_text(tree[prefix + IGNORE_FILE][1], where).splitlines()
                try:
                    exclude_spec(own, where)
                except ConfigError as exc:
                    raise SourceUnavailable(f"git source {self.name!r}: {exc}") from exc
                lines += own
            roots.append((sub, exclude_spec(lines)))
        return roots

    def _select(self, tree: dict[str, tuple[str, str]],
                roots: list[tuple[str, pathspec.PathSpec | None]]) -> list[tuple[str, str]]:
        """(path, blob id) of the files discover() would take from a checkout, and that a parser reads:
        no dot files or folders, excluded folders pruned as git does, the first sub-path's rules decide."""
        chosen: dict[str, str] = {}
        for sub, spec in roots:
            if spec is None:
                mode, oid = tree[sub]
                if mode in _FILE_MODES and format_of(sub) and not self._arg_spec.match_file(posixpath.basename(sub)):
                    chosen.setdefault(sub, oid)
                continue
            prefix = f"{sub}/" if sub else ""
            pruned: dict[str, bool] = {}
            for path, (mode, oid) in tree.items():
                if not path.startswith(prefix) or mode not in _FILE_MODES or format_of(path) is None:
                    continue
                parts = path[len(prefix):].split("/")
                if any(p.startswith(".") for p in parts):
                    continue
                folders = ("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
                if any(pruned.setdefault(d, spec.match_file(d)) for d in folders):
                    continue
                if not spec.match_file("/".join(parts)):
                    chosen.setdefault(path, oid)
        return sorted(chosen.items())

    def _history(self, head: str, tree: dict[str, tuple[str, str]]) -> Files:
        """Each path's entry at head: the saved state as is, the state plus the new commits, or a full walk."""
        state = load_state(self.state_path, self.branch)
        files: Files | None = None
        if state and state[0] == head:
            files, self.last_walk = state[1], "unchanged"
        elif state and self._git.run("merge-base", "--is-ancestor", state[0], head, ok=(0, 1, 128)).returncode == 0:
            files, self.last_walk = walk(self._git, head, state[1], base=state[0]), "incremental"
        if files is None or set(files.entries) != set(tree):
            if files is not None:
                log.warning("git source %s: the saved state does not match %s; walking the whole history",
                            self.name, head[:12])
            state = load_state(self.state_path, self.branch)  # the incremental walk may have changed it
            files, self.last_walk = walk(self._git, head) or Files(), "full"
            if state:
                files = carry_ids(self._git, files, state[1], state[0], head)
            for gone in set(files.entries) - set(tree):  # not expected: the walk rebuilds the tree exactly
                files.ids.discard(files.entries.pop(gone).id)
            for path in set(tree) - set(files.entries):
                files.entries[path] = Entry(files.new_id(path, head), self._date(head), head)
        return files

    def _date(self, commit: str) -> str:
        return self._git.out("log", "-1", "--format=%cI", commit).decode().strip()

    def _codeowners(self, tree: dict[str, tuple[str, str]]) -> list:
        for path in CODEOWNERS_PATHS:
            if path in tree and tree[path][0] in _FILE_MODES:
                try:
                    return parse_codeowners(self._blob_text(tree[path][1], path), f"{self.shown}:{path}")
                except SourceUnavailable as exc:  # owners are metadata: a broken file must not stop a sync
                    log.warning("git source %s: %s; owners fall back to recent authors", self.name, exc)
                    return []
        return []

    def _item(self, path: str, oid: str, entry: Entry, rules: list) -> SourceItem:
        owners = owners_of(rules, path) or tuple(t for a in entry.authors if (t := owner_token(a)))
        return SourceItem(external_id=entry.id, name=posixpath.basename(path), version=oid,
                          updated_at=entry.updated_at, uri=self._link(entry.commit, path), acl=self.acl,
                          owners=owners, path=path)

    def _link(self, commit: str, path: str) -> str:
        repo = self.shown.rstrip("/").removesuffix(".git")
        if self.link is None:
            return f"{repo}@{commit}:{path}"
        return self.link.format(repo=repo, commit=commit, branch=quote(self.branch, safe="/"),
                                path=quote(path.encode("utf-8", "surrogateescape"), safe="/"))


def _is_url(repo: str) -> bool:
    """A URL (scheme://...) or scp-style address (host:path, user@host:path), as git reads them."""
    return "://" in repo or bool(re.match(r"^[^/\\]{2,}:", repo))


def _public(remote: str) -> str:
    """The repository without credentials: https://user:token@host/x -> https://host/x."""
    return re.sub(r"^(https?://)[^/@]*@", r"\1", remote)


def _sub_path(p: str, name: str) -> str:
    parts = [x for x in str(p).replace("\\", "/").split("/") if x not in ("", ".")]
    if ".." in parts:
        raise ConfigError(f"GitSource {name!r}: paths entry {p!r} leaves the repository; use a path inside it")
    return "/".join(parts)


def _check_link(link: str | None, name: str) -> str | None:
    if link is None:
        return None
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(link) if f is not None}
        unknown = sorted(f for f in fields if f not in LINK_FIELDS)
        if unknown:
            raise ConfigError(f"GitSource {name!r}: link uses {{{unknown[0]}}}; it may use only "
                              + ", ".join(f"{{{f}}}" for f in LINK_FIELDS))
        link.format(**{f: "x" for f in LINK_FIELDS})
    except (ValueError, IndexError, KeyError) as exc:
        raise ConfigError(f"GitSource {name!r}: link {link!r} is not a valid template ({exc})") from exc
    return link
