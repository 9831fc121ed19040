"""Embedding backends side by side: torch vs ONNX int8 quality (SciFact nDCG@10) and throughput.

Usage: python evals/bench_embedders.py [--beir DIR] [--limit N] [--json]
Exact cosine search over title + text, so only the embedder differs. The ONNX export is cached in
a temporary folder and made from the bundled model offline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from evals.bench_keyword import DEFAULT, evaluate, load_beir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", type=Path, default=DEFAULT)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from ingest.embedders import SentenceTransformerEmbedder
    from ingest.onnx_embedder import OnnxEmbedder

    corpus, queries, qrels = load_beir(args.beir, "test")
    texts = [f"{d['title']}\n{d['text']}" for d in corpus]
    ids = [d["_id"] for d in corpus]
    qids = list(queries)
    out: dict = {"docs": len(corpus), "queries": len(qids)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, emb in (("torch", SentenceTransformerEmbedder()), ("onnx_int8", OnnxEmbedder(cache_dir=tmp))):
            emb.embed_documents(["warm up"])
            t0 = time.perf_counter()
            dv = emb.embed_documents(texts)
            docs_per_s = len(texts) / (time.perf_counter() - t0)
            qv = emb.embed_documents([queries[q] for q in qids])
            sims = qv @ dv.T
            top = np.argsort(-sims, axis=1)[:, :100]
            run = {q: {ids[j]: float(sims[i, j]) for j in top[i]} for i, q in enumerate(qids)}
            out[name] = {**evaluate(qrels, run), "docs_per_s": round(docs_per_s, 1)}
            print(name, out[name], file=sys.stderr)
    out["ndcg_delta"] = round(out["onnx_int8"]["ndcg@10"] - out["torch"]["ndcg@10"], 4)
    out["speedup"] = round(out["onnx_int8"]["docs_per_s"] / out["torch"]["docs_per_s"], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
