"""Cold start of the CLI: `lore --help`, `lore search` and `lore ask` as fresh processes (issue 16).

Usage: python evals/bench_cli.py [--data-dir DIR] [--runs N] [--json]
Without --data-dir the shared enterprise corpus is ingested once into ./.lore-eval/cli-enterprise. Each
command runs N times (default 10) in a new process; `python -c pass` in the same run is the floor.
--json: the last stdout line is {"help_ms", "search_cold_ms", "ask_cold_ms", "python_floor_ms"}, each
{"p50", "p90"} in milliseconds of wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LORE = str(Path(sys.executable).parent / "lore")
CORPUS = REPO.parent / "shared" / "corpora" / "enterprise"


def timed(args: list[str], runs: int) -> dict:
    took = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
        took.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr[-1000:]}")
    took.sort()
    return {"p50": round(took[len(took) // 2], 1), "p90": round(took[min(len(took) - 1, int(0.9 * len(took)))], 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = args.data_dir or REPO / ".lore-eval" / "cli-enterprise"
    if args.data_dir is None:
        subprocess.run([LORE, "ingest", *(str(CORPUS / d) for d in ("policies", "specs", "incidents")),
                        "--data-dir", str(data)], cwd=REPO, check=True, capture_output=True)
    out = {"python_floor_ms": timed([sys.executable, "-c", "pass"], args.runs),
           "help_ms": timed([LORE, "--help"], args.runs),
           "search_cold_ms": timed([LORE, "search", "how long are audit logs kept", "--data-dir", str(data)], args.runs),
           "ask_cold_ms": timed([LORE, "ask", "how long are audit logs kept", "--data-dir", str(data)], args.runs)}
    for k, v in out.items():
        print(f"{k}: p50 {v['p50']} ms, p90 {v['p90']} ms", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
