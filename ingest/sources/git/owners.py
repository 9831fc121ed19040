"""CODEOWNERS: who keeps each file, as Lore owner tokens.

GitHub's rules: the first file found of .github/CODEOWNERS, CODEOWNERS, docs/CODEOWNERS is used; each
line is a gitignore-style pattern (relative to the repository root) and owners; the last matching line
wins, and a matching line without owners leaves the file unowned. `dir/*` matches only the files directly
in `dir` (GitHub's one departure from gitignore); `!` patterns are not supported by GitHub and are skipped.
GitLab's `[Section]` headers are skipped, so its sections read as one list.

Tokens: `@org/team` -> `group:team` (Lore tokens cannot hold '/', and Lore's groups are the company's
names: the org is the company), `@user` -> `user:user`, `name@example.com` -> `user:name@example.com`;
all lower-cased, since GitHub names and email addresses compare case-insensitively.
"""

from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import dataclass

import pathspec

from ingest.errors import ConfigError
from ingest.types import validate_acl

log = logging.getLogger(__name__)

CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
_SPLIT = re.compile(r"(?<!\\)\s+")


@dataclass(frozen=True, slots=True)
class Rule:
    spec: pathspec.PathSpec
    children_only: bool  # `dir/*`: the files directly in dir, not deeper
    owners: tuple[str, ...]

    def matches(self, path: str) -> bool:
        if not self.spec.match_file(path):
            return False
        return not (self.children_only and self.spec.match_file(posixpath.dirname(path) + "/"))


def owner_token(raw: str) -> str | None:
    """A CODEOWNERS owner as a Lore token, or None when it cannot be one."""
    raw = raw.strip().lower()
    if raw.startswith("@"):
        tok = f"group:{raw.rsplit('/', 1)[1]}" if "/" in raw else f"user:{raw[1:]}"
    elif "@" in raw:
        tok = f"user:{raw}"
    else:
        return None
    try:
        return validate_acl([tok], "CODEOWNERS")[0]
    except ConfigError:
        return None


def parse_codeowners(text: str, where: str = "CODEOWNERS") -> list[Rule]:
    """The rules of a CODEOWNERS file, in file order; lines that cannot be used are logged and skipped."""
    rules = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#") or re.match(r"\^?\[.*\]", line):
            continue
        pattern, *rest = _SPLIT.split(line)
        owners: list[str] = []
        for raw in rest:
            if raw.startswith("#"):  # a comment after the owners
                break
            tok = owner_token(raw)
            if tok is None:
                log.warning("%s:%d: owner %r is not @user, @org/team or an email; ignored", where, n, raw)
            elif tok not in owners:
                owners.append(tok)
        if pattern.startswith("!"):
            log.warning("%s:%d: negated pattern %r is not supported by CODEOWNERS; line skipped", where, n, pattern)
            continue
        pattern = pattern.replace("\\ ", " ").replace("\\#", "#")
        try:
            spec = pathspec.GitIgnoreSpec.from_lines([pattern])
        except (ValueError, TypeError, re.error) as exc:
            log.warning("%s:%d: pattern %r cannot be read (%s); line skipped", where, n, pattern, exc)
            continue
        children_only = pattern.endswith("/*") and not pattern.endswith("**/*")
        rules.append(Rule(spec, children_only, tuple(owners)))
    return rules


def owners_of(rules: list[Rule], path: str) -> tuple[str, ...]:
    """The owners the last matching rule names; () when no rule matches or the match names nobody."""
    for rule in reversed(rules):
        if rule.matches(path):
            return rule.owners
    return ()
