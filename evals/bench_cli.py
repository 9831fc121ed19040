"""Cold start of the CLI: `lore --help`, `lore search` and `lore ask` as fresh processes (issue 16).

Usage: python evals/bench_cli.py [--data-dir DIR] [--runs N] [--no-bytecode-cache] [--json]
Without --data-dir the shared enterprise corpus is ingested once into ./.lore-eval/cli-enterprise. Each
command runs once untimed (a missing ONNX export is made then, and page cache and bytecode are warm, as
for a user's second command of the day), then N times (default 10) in a new process; `python -c pass` in
the same run is the floor. Commands run with Python's bytecode cache on, as an installed Lore runs, even if
PYTHONDONTWRITEBYTECODE is set here (--no-bytecode-cache keeps it: Lore's own modules are then compiled in
every process, ~0.1 s).
--json: the last stdout line is {"help_ms", "search_cold_ms", "ask_cold_ms", "python_floor_ms"}, each
{"p50", "p90"} in milliseconds of wall time, and "load_avg" (1-minute load before and after: the figures
are only comparable on an idle host) and "bytecode_cache".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LORE = str(Path(sys.executable).parent / "lore")
CORPUS = REPO.parent / "shared" / "corpora" / "enterprise"


def timed(args: list[str], runs: int, env: dict) -> dict:
    took = []
    for n in range(runs + 1):
        t0 = time.perf_counter()
        r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env)
        if n:  # the first run warms up
            took.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr[-1000:]}")
    took.sort()
    return {"p50": round(took[len(took) // 2], 1), "p90": round(took[min(len(took) - 1, int(0.9 * len(took)))], 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-bytecode-cache", action="store_true", help="keep PYTHONDONTWRITEBYTECODE if it is set")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = args.data_dir or REPO / ".lore-eval" / "cli-enterprise"
    env = dict(os.environ)
    if not args.no_bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.data_dir is None:
        subprocess.run([LORE, "ingest", *(str(CORPUS / d) for d in ("policies", "specs", "incidents")),
                        "--data-dir", str(data)], cwd=REPO, check=True, capture_output=True, env=env)
    load = [round(os.getloadavg()[0], 2)]
    times = {"python_floor_ms": timed([sys.executable, "-c", "pass"], args.runs, env),
           "help_ms": timed([LORE, "--help"], args.runs, env),
           "search_cold_ms": timed([LORE, "search", "how long are audit logs kept", "--data-dir", str(data)],
                                   args.runs, env),
           "ask_cold_ms": timed([LORE, "ask", "how long are audit logs kept", "--data-dir", str(data)], args.runs, env)}
    for k, v in times.items():
        print(f"{k}: p50 {v['p50']} ms, p90 {v['p90']} ms", file=sys.stderr)
    out = {**times, "load_avg": [*load, round(os.getloadavg()[0], 2)],
           "bytecode_cache": "PYTHONDONTWRITEBYTECODE" not in env}
    print(f"load average (1 min) before/after: {out['load_avg']}; bytecode cache: {out['bytecode_cache']}",
          file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
