"""kill -9 a real ingest at several points; the rerun must equal one clean run, nothing lost."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import LORE, REPO, snapshot

DRIVER = str(Path(__file__).parents[1] / "support" / "crash_driver.py")
pytestmark = pytest.mark.slow


def _run(data_dir, point, n, *paths):
    return subprocess.run([sys.executable, DRIVER, str(data_dir), point, str(n), *map(str, paths)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def _state(make_ingestor, data_dir):
    # embedded Chroma caches one client per path per process; another process wrote since
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return snapshot(make_ingestor(data_dir))


@pytest.fixture()
def clean(tmp_path, corpus, make_ingestor):
    """The reference: one uninterrupted run over the corpus as it finally is."""
    def build():
        d = tmp_path / "clean"
        assert _run(d, "none", 0, corpus).returncode == 0
        return _state(make_ingestor, d)
    return build


@pytest.mark.parametrize("point,n", [("before_vectors", 1), ("before_commit", 2), ("after_commit", 3),
                                     ("before_commit", 6)])
def test_kill_during_first_ingest(tmp_path, corpus, make_ingestor, clean, point, n):
    d = tmp_path / "crashed"
    killed = _run(d, point, n, corpus)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # readers only ever see whole committed versions: every stored doc is complete
    mid = make_ingestor(d)  # SQLite only: no Chroma client opened here
    for doc in mid.store.documents():
        assert len(mid.store.chunks(doc.id)) == doc.chunk_count
    del mid
    again = _run(d, "none", 0, corpus)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _state(make_ingestor, d) == clean()


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_kill_during_update_loses_nothing(tmp_path, corpus, make_ingestor, clean, point):
    d = tmp_path / "crashed"
    assert _run(d, "none", 0, corpus).returncode == 0
    before = _state(make_ingestor, d)
    for name in ("policies/pto-policy.md", "specs/payments-api.md"):
        f = corpus / name
        f.write_text(f.read_text().replace("Northwind Relay", "Northwind Relay Ltd"))
    killed = _run(d, point, 1, corpus)
    assert killed.returncode == -signal.SIGKILL
    mid = _state(make_ingestor, d)
    assert set(mid["docs"]) == set(before["docs"])  # every document still there, old or new version
    assert _run(d, "none", 0, corpus).returncode == 0
    assert _state(make_ingestor, d) == clean()


def test_kill_cli_at_random_moments(tmp_path, corpus, make_ingestor, clean):
    """The real `lore ingest` process, killed by the clock rather than at a checkpoint."""
    d = tmp_path / "crashed"
    env = {"LORE_DATA_DIR": str(d), "LORE_INGEST__BATCH_CHUNKS": "4", "PATH": str(Path(LORE).parent)}
    for delay in (4.0, 7.0, 9.0):
        p = subprocess.Popen([LORE, "ingest", str(corpus), "--json"], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
    done = subprocess.run([LORE, "ingest", str(corpus), "--json"], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _state(make_ingestor, d) == clean()
