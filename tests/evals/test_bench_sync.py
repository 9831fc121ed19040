"""evals/bench_sync.py runs end to end at a tiny size and prints its figures, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO

KEYS = {"pages", "first_sync_s", "resync_s", "resync_inventory_s", "resync_over_inventory", "first_sync_pages_per_s",
        "resync_requests", "inventory_requests", "page_body_bytes", "backend", "cpus", "load_avg"}


def test_bench_sync_runs_and_prints_its_keys(onnx_cache):
    r = subprocess.run([sys.executable, str(REPO / "evals" / "bench_sync.py"), "--pages", "30", "--repeat", "1",
                        "--json"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert KEYS <= set(got), KEYS - set(got)
    assert got["pages"] == 30 and got["chunks"] >= 30 and got["first_sync_s"] > 0 and got["resync_over_inventory"] > 0
    # an unchanged re-sync asks the source what the inventory asks: nothing is fetched
    assert got["resync_requests"] == got["inventory_requests"] > 0
    assert got["first_sync_requests"] >= got["inventory_requests"] + 30
