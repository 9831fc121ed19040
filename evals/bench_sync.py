"""Source sync: a first sync of a generated Confluence space, then unchanged re-syncs against the inventory alone.

Usage: python evals/bench_sync.py [--pages 5000] [--flavor cloud|datacenter] [--backend onnx|torch|hash]
                                  [--parse-workers N] [--repeat 3] [--json]
A local fake of Confluence (tests/support/fake_confluence.py, real HTTP on loopback) holds one space of `--pages`
generated pages in a tree (short bodies: a heading and two sentences, ~0.3 kB as fetched). The source is
configured and synced as `lore sources sync` does (api.wiring.sync_source, into a temporary data dir, model
warmed up first). Then, `--repeat` times in turn: an unchanged re-sync, and the inventory listing alone
(`ConfluenceSource.inventory()`); the medians are reported. A re-sync should cost the listing and nothing
more: nothing is fetched, parsed or embedded, so `resync_over_inventory` should be close to 1.
--json: the last stdout line is one object: pages, first_sync_s, first_sync_pages_per_s, resync_s,
resync_inventory_s, resync_over_inventory, requests per phase, body size, backend, cpus and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SOURCE, SPACE = "bench-wiki", "BENCH"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=5000, help="pages in the generated space")
    ap.add_argument("--flavor", choices=["cloud", "datacenter"], default="cloud")
    ap.add_argument("--backend", choices=["torch", "onnx", "hash"], default="onnx")
    ap.add_argument("--parse-workers", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="re-syncs and inventory listings timed (medians)")
    ap.add_argument("--json", action="store_true", help="the result as one JSON line (else indented)")
    args = ap.parse_args()
    if args.pages < 1 or args.repeat < 1:
        ap.error("--pages and --repeat must be at least 1")

    from rich.console import Console
    from rich.progress import Progress

    from api.settings import Settings, SourcesSettings
    from api.wiring import build_ingestor, build_source, source_registry, sync_source
    from ingest.sources.registry import SourceConfig
    from tests.support.fake_confluence import FakeConfluence

    console = Console(stderr=True)
    load = [round(os.getloadavg()[0], 2)]
    with FakeConfluence(args.flavor) as wiki, tempfile.TemporaryDirectory() as tmp:
        wiki.add_user("bench-author", ["staff"])
        wiki.generate_space(SPACE, args.pages, fanout=20, groups=["staff"], author="bench-author")
        creds = wiki.credentials
        s = Settings(data_dir=Path(tmp), sources=SourcesSettings(tokens={SOURCE: creds.get("token") or creds["pat"]}))
        s.embedding.backend = args.backend
        s.ingest.parse_workers = args.parse_workers
        reg = source_registry(s)
        reg.add(SourceConfig(SOURCE, "confluence", {"base_url": wiki.url, "flavor": args.flavor, "spaces": [SPACE],
                                                    "email": creds.get("email")}, interval_s=0))
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("first sync", total=args.pages)

            def on_event(kind: str, data: dict) -> None:
                if kind in ("stored", "failed"):
                    progress.advance(task)

            ing = build_ingestor(s, on_event=on_event)
            ing.embedder.embed_documents(["warm up the model before timing"])
            served = wiki.served
            t0 = time.perf_counter()
            first = sync_source(s, SOURCE, ingestor=ing, registry=reg)
            first_s = time.perf_counter() - t0
            first_requests = wiki.served - served
        if first["status"] != "ok" or first["added"] != args.pages:
            raise SystemExit(f"the first sync did not add every page: {json.dumps(first)[:2000]}")
        console.print(f"first sync: {first['added']} pages, {first['chunks']} chunks in {first_s:.1f} s; "
                      f"{args.repeat} unchanged re-syncs and inventory listings ...")
        resync_s, inventory_s, resync_req, inventory_req = [], [], [], []
        src = build_source(s, reg.get(SOURCE))
        for _ in range(args.repeat):  # alternating, so a noisy neighbour weighs on both alike
            served = wiki.served
            t0 = time.perf_counter()
            again = sync_source(s, SOURCE, ingestor=ing, registry=reg)
            resync_s.append(time.perf_counter() - t0)
            resync_req.append(wiki.served - served)
            if (again["status"], again["unchanged"], again["added"] + again["updated"] + again["deleted"]) != \
                    ("ok", args.pages, 0):
                raise SystemExit(f"the re-sync changed something: {json.dumps(again)[:2000]}")
            served = wiki.served
            t0 = time.perf_counter()
            items = list(src.inventory())
            inventory_s.append(time.perf_counter() - t0)
            inventory_req.append(wiki.served - served)
            if len(items) != args.pages:
                raise SystemExit(f"the inventory listed {len(items)} of {args.pages} pages")
        sample = items[:: max(1, len(items) // 20)]
        body_bytes = statistics.mean(len(src.fetch(i)) for i in sample)
        backend = ing.embedder.model_id
    resync, inventory = statistics.median(resync_s), statistics.median(inventory_s)
    result = {
        "pages": args.pages, "flavor": args.flavor, "page_body_bytes": round(body_bytes),
        "chunks": first["chunks"],
        "first_sync_s": round(first_s, 2), "first_sync_pages_per_s": round(args.pages / first_s, 2),
        "first_sync_requests": first_requests,
        "resync_s": round(resync, 3), "resync_inventory_s": round(inventory, 3),
        "resync_over_inventory": round(resync / inventory, 3),
        "resync_requests": statistics.median(resync_req), "inventory_requests": statistics.median(inventory_req),
        "resync_runs_s": [round(x, 3) for x in resync_s], "inventory_runs_s": [round(x, 3) for x in inventory_s],
        "backend": backend, "parse_workers": args.parse_workers, "cpus": os.cpu_count(),
        "load_avg": [*load, round(os.getloadavg()[0], 2)],
    }
    console.print(f"first sync: {args.pages} pages in {first_s:.1f} s ({result['first_sync_pages_per_s']} pages/s); "
                  f"unchanged re-sync {resync:.2f} s, inventory alone {inventory:.2f} s "
                  f"(ratio {result['resync_over_inventory']}); {backend}, {os.cpu_count()} cpus, "
                  f"load {result['load_avg']}")
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
