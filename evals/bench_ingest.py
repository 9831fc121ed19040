"""Ingest throughput versus the bare embedder on the same chunks, measured in one run.

Usage: python evals/bench_ingest.py [PATH ...] [--backend torch|onnx] [--parse-workers N] [--json]
Default corpus: ../shared/corpora/enterprise/{policies,specs,incidents}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT = [REPO.parent / "shared" / "corpora" / "enterprise" / d for d in ("policies", "specs", "incidents")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--backend", choices=["torch", "onnx"], default="onnx")
    ap.add_argument("--parse-workers", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()

    from rich.console import Console
    from rich.progress import Progress

    from api.settings import Settings
    from api.wiring import build_ingestor
    from ingest.pipeline import embed_text

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(data_dir=Path(tmp))
        s.embedding.backend = args.backend
        s.ingest.parse_workers = args.parse_workers
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("ingesting", total=None)

            def on_event(kind: str, data: dict) -> None:
                if kind == "plan":
                    progress.update(task, total=data["todo"])
                elif kind in ("stored", "failed"):
                    progress.advance(task)

            ing = build_ingestor(s, on_event=on_event)
            ing.embedder.embed_documents(["warm up the model before timing"])
            t0 = time.perf_counter()
            report = ing.ingest(args.paths)
            pipeline_s = time.perf_counter() - t0
        docs = ing.store.documents()
        texts = [embed_text(d.title, c) for d in docs for c in ing.store.chunks(d.id)]
        console.print(f"pipeline: {report.added} docs, {report.chunks} chunks in {pipeline_s:.1f} s; "
                      f"bare encode of the same {len(texts)} chunks ...")
        t0 = time.perf_counter()
        ing.embedder.embed_documents(texts)
        bare_s = time.perf_counter() - t0
    chars = sum(p.stat().st_size for root in args.paths for p in Path(root).rglob("*") if p.is_file())
    result = {
        "backend": ing.embedder.model_id,
        "docs": report.added, "chunks": report.chunks, "failed": len(report.failed), "bytes": chars,
        "pipeline_s": round(pipeline_s, 2), "bare_encode_s": round(bare_s, 2),
        "docs_per_s": round(report.added / pipeline_s, 2),
        "chunks_per_s": round(report.chunks / pipeline_s, 2),
        "bare_encode_chunks_per_s": round(len(texts) / bare_s, 2),
        "ratio": round((report.chunks / pipeline_s) / (len(texts) / bare_s), 3),
        "parse_workers": args.parse_workers,
    }
    if not args.json:
        for k, v in result.items():
            console.print(f"{k:>26}: {v}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
