"""Run the git CLI: fixed argv lists, no shell, no prompts, no user or system config, a timeout each call."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# What git may see of our environment. Everything else is dropped: GIT_DIR, GIT_CONFIG_PARAMETERS or
# GIT_SSH_COMMAND in the caller's shell must not redirect or widen what a sync reads and where it connects.
_KEEP = ("PATH", "HOME", "TMPDIR", "SYSTEMROOT", "SSH_AUTH_SOCK",
         "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
_FIXED = {
    "LC_ALL": "C",  # English stderr: the errors below are recognised by their text
    "GIT_TERMINAL_PROMPT": "0",  # a missing credential fails instead of waiting on a prompt nobody sees
    "GIT_ASKPASS": "",
    "GIT_CONFIG_NOSYSTEM": "1",  # no /etc/gitconfig, no ~/.gitconfig: no url.insteadOf, credential
    "GIT_CONFIG_GLOBAL": os.devnull,  # helpers, proxies or includeIf that could reach another host
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",  # no password or host-key prompt either
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",  # never ext:: (runs a command) or other remote helpers
}
# gc stays off so a listed version's blob is still there when it is fetched, and no process outlives a call.
_CONFIG = ("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "core.fsmonitor=false")


class GitFailed(Exception):
    """A git call ended badly; `detail` is the last line of what git said."""

    def __init__(self, argv: list[str], detail: str, returncode: int | None = None) -> None:
        super().__init__(f"git {' '.join(argv)}: {detail}")
        self.argv, self.detail, self.returncode = argv, detail, returncode


def git_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _KEEP if k in os.environ}
    env.update(_FIXED)
    return env


class Git:
    """git with one repository directory (--git-dir), or none (init)."""

    def __init__(self, git_dir: Path | None, timeout: float) -> None:
        self.git_dir, self.timeout = git_dir, timeout
        self.exe = shutil.which("git")

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[bytes]:
        """Run one git command; raise GitFailed unless its exit code is in `ok`."""
        argv = list(args)
        if self.exe is None:
            raise GitFailed(argv, "the git command is not installed; install git (e.g. apt-get install git)")
        pre = [self.exe, *_CONFIG] + ([f"--git-dir={self.git_dir}"] if self.git_dir else [])
        try:
            done = subprocess.run(pre + argv, capture_output=True, env=git_env(), timeout=self.timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            raise GitFailed(argv, f"timed out after {self.timeout:g} s; raise the source's timeout or check "
                                  "the network and the repository's size") from exc
        except OSError as exc:
            raise GitFailed(argv, f"could not start git ({exc})") from exc
        if done.returncode not in ok:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = next((ln for ln in lines if ln.startswith("fatal:")), lines[-1] if lines else "")
            raise GitFailed(argv, detail.removeprefix("fatal: ") or f"exit code {done.returncode}", done.returncode)
        return done

    def out(self, *args: str) -> bytes:
        return self.run(*args).stdout
