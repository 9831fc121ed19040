"""An invalid exclude pattern ([z-a]) is a 400 / exit code 2 naming where it came from, on every path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
LORE = str(Path(sys.executable).parent / "lore")
BAD = "[z-a]"


@pytest.fixture()
def folder(tmp_path) -> Path:
    d = tmp_path / "root" / "handbook"
    d.mkdir(parents=True)
    (d / "travel.md").write_text("# Travel\n\nBook trains through the quillfeather portal.\n")
    return d


def lore_ingest(folder: Path, data: Path, *flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LORE, "ingest", str(folder), "--data-dir", str(data), *flags], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def _refused(r: subprocess.CompletedProcess, where: str) -> None:
    text = " ".join(r.stderr.split())
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and where in text and BAD in text and "gitignore" in text, r.stderr


def test_cli_flag(folder, tmp_path):
    _refused(lore_ingest(folder, tmp_path / "data", "--exclude", BAD), "--exclude")


def test_setting(folder, tmp_path):
    _refused(lore_ingest(folder, tmp_path / "data", env={"LORE_INGEST__EXCLUDE": f'["{BAD}"]'}), "LORE_INGEST__EXCLUDE")


def test_loreignore(folder, tmp_path):
    (folder / ".loreignore").write_text(f"drafts/\n{BAD}\n")
    r = lore_ingest(folder, tmp_path / "data")
    _refused(r, str(folder / ".loreignore"))


def test_api_refuses_at_once_with_400(folder, tmp_path, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer

    other = folder.parent / "other"
    other.mkdir()
    (other / "a.md").write_text("# A\n\nText.\n")
    (other / ".loreignore").write_text(f"{BAD}\n")
    settings = Settings(data_dir=tmp_path / "data", server={"auth": "none", "ingest_roots": [str(folder.parent)]})
    with LiveServer(settings) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        flag = c.post("/v1/ingest", json={"paths": [str(folder)], "exclude": [BAD]})
        ignore = c.post("/v1/ingest", json={"paths": [str(other)]})
        jobs = c.get("/v1/jobs").json()["jobs"]
    assert flag.status_code == 400, flag.text
    assert flag.json()["error"]["code"] == "bad_request" and "exclude" in flag.json()["error"]["message"]
    assert BAD in flag.json()["error"]["message"]
    assert ignore.status_code == 400, ignore.text
    assert str(other / ".loreignore") in ignore.json()["error"]["message"]
    assert jobs == []  # refused before any job was started
