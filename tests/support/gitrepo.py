"""A real Git work tree for tests: fixed authors and dates, the user's git config never read."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def date(day: int, minute: int = 0) -> str:
    return f"2024-03-{day:02d}T10:{minute:02d}:00+01:00"


class Repo:
    """A work tree whose commits have fixed authors and dates; the user's git config is never read."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)

    def git(self, *args: str, author: str = "ana@example.com", when: str = date(1)) -> str:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.path), "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": author.split("@")[0],
               "GIT_AUTHOR_EMAIL": author, "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com",
               "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        done = subprocess.run(["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def write(self, rel: str, content: str | bytes) -> None:
        f = self.path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content.encode() if isinstance(content, str) else content)

    def commit(self, when: str, author: str = "ana@example.com", files: dict | None = None, msg: str = "c") -> str:
        for rel, content in (files or {}).items():
            self.write(rel, content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", msg, author=author, when=when)
        return self.git("rev-parse", "HEAD")

    def blob(self, rel: str, rev: str = "HEAD") -> str:
        return self.git("rev-parse", f"{rev}:{rel}")
