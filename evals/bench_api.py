"""Load benchmark of the HTTP service: throughput and p50/p95 of /v1/ask and /v1/search (issue 5).

Usage: python evals/bench_api.py [--corpus DIR] [--data-dir DIR] [--clients 1,8,32] [--requests N]
                                 [--questions FILE.jsonl] [--json]

Ingests the corpus (default: the bundled sample knowledge base) into a data dir, starts `lore serve` as a
separate process on a free loopback port (one uvicorn worker, as `make demo` runs it), creates a reader
key, and then, for each endpoint and each concurrency level, runs that many asyncio clients (httpx, one
connection each) that send requests back to back until N requests (default 200, at least 4 per client)
have completed, after a warm-up. Questions cycle through the dev set of the corpus (evals/datasets/
acme_dev.jsonl by default). Reports requests per second, p50 and p95 latency in ms, and errors. With
--json the last stdout line is one JSON object: {"ask": {"1": {"rps", "p50_ms", "p95_ms", "errors",
"requests"}, "8": {...}, "32": {...}}, "search": {...}, "cpus": N, "corpus": ..., "chunks": N}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
LORE = str(Path(sys.executable).parent / "lore")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1)


async def _load(url: str, key: str, path: str, bodies: list[dict], clients: int, total: int) -> dict:
    latencies: list[float] = []
    errors = 0
    sent = 0

    async def worker() -> None:
        nonlocal errors, sent
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                     limits=httpx.Limits(max_connections=1)) as c:
            while sent < total:
                body = bodies[sent % len(bodies)]
                sent += 1
                t0 = time.perf_counter()
                r = await c.post(path, json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {"rps": round(len(latencies) / wall, 2), "p50_ms": _pct(latencies, 0.5), "p95_ms": _pct(latencies, 0.95),
            "mean_ms": round(statistics.fmean(latencies), 1), "errors": errors, "requests": len(latencies)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "LORE_DATA_DIR": str(data_dir), "LORE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([LORE, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"lore serve exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("lore serve did not become ready in 180 s")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=REPO / "samples" / "acme")
    ap.add_argument("--questions", type=Path, default=REPO / "evals" / "datasets" / "acme_dev.jsonl")
    ap.add_argument("--data-dir", type=Path, default=None, help="keep the ingested store here (default: a temp dir)")
    ap.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    ap.add_argument("--requests", type=int, default=200, help="requests per endpoint and level")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.clients.split(",")]
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    tmp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="lore-bench-api-"))
    data_dir: Path = args.data_dir if tmp is None else tmp
    try:
        subprocess.run([LORE, "ingest", str(args.corpus), "--data-dir", str(data_dir)], check=True,
                       stdout=subprocess.DEVNULL)
        key = json.loads(subprocess.run([LORE, "keys", "create", "--user", "bench", "--role", "reader", "--json",
                                         "--data-dir", str(data_dir)], check=True, capture_output=True,
                                        text=True).stdout)["key"]
        port = free_port()
        proc = _start(data_dir, port)
        url = f"http://127.0.0.1:{port}"
        try:
            out: dict = {"cpus": os.cpu_count(), "corpus": str(args.corpus),
                         "chunks": httpx.get(url + "/readyz").json()["chunks"]}
            for name, path, make in (("search", "/v1/search", lambda q: {"query": q, "top_k": 10}),
                                     ("ask", "/v1/ask", lambda q: {"question": q})):
                bodies = [make(q) for q in questions]
                asyncio.run(_load(url, key, path, bodies, 2, 10))  # warm-up
                out[name] = {}
                for n in levels:
                    r = asyncio.run(_load(url, key, path, bodies, n, max(args.requests, 4 * n)))
                    out[name][str(n)] = r
                    print(f"{name:6} clients={n:3d}  {r['rps']:7.1f} req/s  p50 {r['p50_ms']:7.1f} ms  "
                          f"p95 {r['p95_ms']:7.1f} ms  errors {r['errors']}", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
