"""A chunk's stored vector depends on its content only, not on which chunks were embedded with it.

The README promises that a crashed-then-rerun ingest equals one clean run; the red team found 224 of 488
vectors differing, because the int8 model's vectors depended on their batch neighbours.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = str(REPO / "tests" / "support" / "crash_driver.py")


def _vectors(ingestor) -> dict[str, np.ndarray]:
    ids = sorted(ingestor.vectors.ids())
    assert ids, "nothing was stored"
    return {i: v for i, (v, _) in ingestor.vectors.get(ids).items()}


def _differing(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    assert a.keys() == b.keys()
    return [i for i in a if not np.array_equal(a[i], b[i])]


def test_stored_vectors_do_not_depend_on_batch_composition(tmp_path, corpus, make_ingestor):
    one_by_one = make_ingestor(tmp_path / "small", batch_chunks=1)
    one_by_one.ingest([corpus])
    together = make_ingestor(tmp_path / "large", batch_chunks=100_000)
    together.ingest([corpus])
    a, b = _vectors(one_by_one), _vectors(together)
    assert _differing(a, b) == [], f"{len(_differing(a, b))} of {len(a)} vectors differ"


def test_the_same_text_embeds_alike_alone_and_in_any_batch(embedder):
    texts = [f"Section {i}. " + "Expense reports are due within thirty days of travel. " * (1 + i % 7)
             for i in range(20)]
    alone = np.stack([embedder.embed_documents([t])[0] for t in texts])
    assert np.array_equal(embedder.embed_documents(texts), alone)
    assert np.array_equal(embedder.embed_documents(texts[::-1])[::-1], alone)
    assert np.array_equal(np.stack([embedder.embed_query(t) for t in texts]), alone)


@pytest.mark.slow
def test_kill_9_then_rerun_stores_the_clean_run_vectors(tmp_path, corpus, make_ingestor):
    """crash_driver.py embeds 8 chunks per flush and kills itself before the second commit."""
    from chromadb.api.client import SharedSystemClient

    def run(d: Path, point: str, n: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, DRIVER, str(d), point, str(n), str(corpus)], cwd=REPO,
                              capture_output=True, text=True, timeout=600)

    crashed = tmp_path / "crashed"
    assert run(crashed, "before_commit", 2).returncode == -signal.SIGKILL
    assert run(crashed, "none", 0).returncode == 0
    clean = make_ingestor(tmp_path / "clean", batch_chunks=100_000)  # other batches than the driver's 8
    clean.ingest([corpus])
    SharedSystemClient.clear_system_cache()  # another process wrote the crashed data dir
    a, b = _vectors(make_ingestor(crashed)), _vectors(clean)
    assert _differing(a, b) == [], f"{len(_differing(a, b))} of {len(a)} vectors differ"
