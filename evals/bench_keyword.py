"""Keyword index choice: SQLite FTS5 (Lore's) versus bm25s on BEIR SciFact, plus update/delete costs.

Usage: python evals/bench_keyword.py [--beir DIR] [--split test|train] [--json]
Prints nDCG@10 and recall@100 for both, and the cost of incremental add/delete in FTS5.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT = REPO.parent / "shared" / "benchmarks" / "beir" / "scifact"


def load_beir(root: Path, split: str):
    corpus = [json.loads(line) for line in open(root / "corpus.jsonl")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(root / "queries.jsonl"))}
    qrels: dict[str, dict[str, int]] = {}
    with open(root / "qrels" / f"{split}.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return corpus, {q: queries[q] for q in qrels}, qrels


def evaluate(qrels, run) -> dict:
    from ranx import Qrels, Run, evaluate as rx

    run = {q: (h or {"__none__": 0.0}) for q, h in run.items()}
    m = rx(Qrels(qrels), Run(run), ["ndcg@10", "recall@100"])
    return {k: round(float(v), 4) for k, v in m.items()}


def fts5(corpus, queries):
    from ingest.sqlite_store import SqliteStore
    from ingest.types import Chunk, SourceDoc

    tmp = tempfile.mkdtemp()
    store = SqliteStore(Path(tmp) / "kw.db")
    t0 = time.perf_counter()
    for d in corpus:
        text = d["text"]
        doc = SourceDoc(id=d["_id"], uri=d["_id"], title=d["title"], doc_type="spec", version="v",
                        updated_at="2020-01-01T00:00:00+00:00", ingested_at="", acl=())
        chunk = Chunk(id=d["_id"], doc_id=d["_id"], version="v", ordinal=0, text=text, section=(),
                      page_start=None, page_end=None, start=0, end=len(text),
                      content_hash=hashlib.sha256(text.encode()).hexdigest(), token_count=0)
        store.replace_document(doc, text, [chunk], "fp")
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = {qid: dict(store.keyword_search(q, 100)) for qid, q in queries.items()}
    query_ms = (time.perf_counter() - t0) / len(queries) * 1000
    # incremental: re-add 100 documents and delete 100, without touching the rest
    t0 = time.perf_counter()
    for d in corpus[:100]:
        store.delete_document(d["_id"])
    delete_ms = (time.perf_counter() - t0) / 100 * 1000
    return run, {"index_s": round(index_s, 2), "query_ms": round(query_ms, 2), "delete_ms_per_doc": round(delete_ms, 2)}


def bm25s_run(corpus, queries):
    import bm25s
    import Stemmer

    stem = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    toks = bm25s.tokenize([f"{d['title']} {d['text']}" for d in corpus], stopwords="en", stemmer=stem, show_progress=False)
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(toks, show_progress=False)
    index_s = time.perf_counter() - t0
    ids = [d["_id"] for d in corpus]
    qids = list(queries)
    q = bm25s.tokenize([queries[i] for i in qids], stopwords="en", stemmer=stem, show_progress=False)
    t0 = time.perf_counter()
    docs, scores = model.retrieve(q, k=100, show_progress=False)
    query_ms = (time.perf_counter() - t0) / len(qids) * 1000
    run = {qid: {ids[j]: float(s) for j, s in zip(docs[i], scores[i]) if s > 0} for i, qid in enumerate(qids)}
    return run, {"index_s": round(index_s, 2), "query_ms": round(query_ms, 3), "delete_ms_per_doc": None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", type=Path, default=DEFAULT)
    ap.add_argument("--split", default="test", choices=["test", "train"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    corpus, queries, qrels = load_beir(args.beir, args.split)
    out = {"dataset": args.beir.name, "split": args.split, "queries": len(queries), "docs": len(corpus)}
    for name, fn in (("fts5", fts5), ("bm25s", bm25s_run)):
        run, cost = fn(corpus, queries)
        out[name] = {**evaluate(qrels, run), **cost}
        if not args.json:
            print(name, out[name], file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
