"""A real `chroma run` server on a free loopback port: start/stop for module fixtures, and a fixture."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.live import free_port

CHROMA = str(Path(sys.executable).parent / "chroma")


def start_chroma(path: Path) -> tuple[subprocess.Popen, str]:
    """(the server process, its URL) once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen([CHROMA, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("chroma run did not start within 60 s")


def stop_chroma(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture()
def chroma_server(tmp_path):
    proc, url = start_chroma(tmp_path / "server")
    yield url
    stop_chroma(proc)
