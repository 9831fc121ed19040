"""Retrieval quality on a BEIR dataset through Lore's real ingest and real search (issue 3).

Run it with `lore eval retrieval --beir DIR [--split test|train] [--data-dir DIR] [--json]`.

Each corpus document becomes a Markdown file `# title\\n\\ntext` named after its BEIR id (or a hash of
it when the id is not a safe file name; `ids.json` maps file names back to BEIR ids). The folder is
ingested with the stack's ingestor (evals/stack.py) into the data dir (default `.lore-eval/<dataset>`
under the current directory), incrementally, so a second run skips unchanged documents. Every query that
has judgments in the split is then run through the stack's `retriever().search(..., top_k=100)` in the
modes hybrid, dense and keyword; chunk hits become document hits (a document ranks where its best
chunk ranks) and ranx scores nDCG@10, recall@10, recall@100 and MRR@10. `per_query` keeps each query's
metrics, latency and the ranks of its relevant documents (recall@k curves, `lore eval compare`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Sequence

from evals.stack import Stack
from retriever.search import Mode
from ingest.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")
SPLITS = ("test", "train", "dev")
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
TOP_K = 100
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


# -- dataset -------------------------------------------------------------------------------------
def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found; pass --beir a folder in BEIR layout "
                          "(corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    return path


def json_lines(path: Path, fix: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; an error names the file, the line and `fix`."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{n}: not a JSON line ({exc}); {fix}") from exc
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{n}: each line must be a JSON object; {fix}")
            rows.append((n, row))
    return rows


def _jsonl(path: Path) -> list[dict]:
    fix = "fix or re-download the dataset"
    rows = json_lines(path, fix)
    for n, row in rows:
        if "_id" not in row:
            raise ConfigError(f"{path}:{n}: a BEIR row needs an \"_id\" field; {fix}")
    return [row for _, row in rows]


def load_beir(beir_dir: str | Path, split: str = "test") -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """(corpus rows, {query id: text} for the judged queries only, qrels {query id: {doc id: grade}})."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {', '.join(SPLITS)}; pass --split test or --split train")
    root = Path(beir_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder; pass --beir a BEIR dataset folder (e.g. ../shared/benchmarks/beir/scifact)")
    corpus = _jsonl(_need(root / "corpus.jsonl", "corpus file"))
    queries = {str(q["_id"]): str(q.get("text", "")) for q in _jsonl(_need(root / "queries.jsonl", "queries file"))}
    qpath = root / "qrels" / f"{split}.tsv"
    if not qpath.is_file():
        have = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        fix = f"pass --split {' or --split '.join(have)}" if have else "add qrels/<split>.tsv from the dataset"
        raise ConfigError(f"{qpath}: judgments for split {split!r} not found; {fix}")
    qrels: dict[str, dict[str, int]] = {}
    with open(qpath, encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if not reader.fieldnames or not {"query-id", "corpus-id", "score"} <= set(reader.fieldnames):
            raise ConfigError(f"{qpath}: needs the header query-id, corpus-id, score (tab-separated); fix the file")
        for n, row in enumerate(reader, 2):
            try:
                grade = int(row["score"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{qpath}:{n}: score {row['score']!r} is not an integer; fix the file") from exc
            if grade > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = grade
    missing = sorted(q for q in qrels if not queries.get(q, "").strip())
    if missing:
        raise ConfigError(f"{qpath}: {len(missing)} judged queries (e.g. {missing[0]!r}) have no text in "
                          f"{root / 'queries.jsonl'}; use the queries file of the same dataset")
    if not qrels:
        raise ConfigError(f"{qpath}: no positive judgments; use a split that has some")
    return corpus, {q: queries[q] for q in qrels}, qrels


def file_name(beir_id: str) -> str:
    """The Markdown file a BEIR document is written to: its id when that is a safe name, else a hash."""
    if _SAFE_ID.match(beir_id) and not beir_id.endswith("."):
        return f"{beir_id}.md"
    return f"id-{hashlib.sha256(beir_id.encode()).hexdigest()[:20]}.md"


def write_corpus(corpus: list[dict], folder: Path) -> dict[str, str]:
    """Write each document as `# title\\n\\ntext` (unchanged files are left alone); return {file name: BEIR id}."""
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for d in corpus:
        bid = str(d["_id"])
        name = file_name(bid)
        if name in names:
            raise ConfigError(f"corpus ids {names[name]!r} and {bid!r} map to the same file {name}; "
                              "make the ids in corpus.jsonl unique")
        names[name] = bid
        title = " ".join(str(d.get("title") or "").split())
        text = str(d.get("text") or "").strip()
        body = f"# {title}\n\n{text}\n" if title else f"{text}\n"
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
    for stale in folder.glob("*.md"):  # documents no longer in the corpus: ingest then deletes them
        if stale.name not in names:
            stale.unlink()
    return names


# -- run -----------------------------------------------------------------------------------------
def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def ingest_corpus(stack: Stack, folder: Path, progress: bool = True) -> dict:
    with _progress(progress) as bar:
        task = bar.add_task("ingesting", total=None)

        def on_event(kind: str, data: dict) -> None:
            if kind == "plan":
                bar.update(task, total=data["todo"], description=f"ingesting ({data['files'] - data['todo']} unchanged)")
            elif kind in ("stored", "failed"):
                bar.advance(task)

        report = stack.ingestor(on_event=on_event).ingest([folder], exclude=list(stack.exclude))
    return report.to_dict()


def doc_ranking(hits, uri_to_id: dict[str, str]) -> dict[str, float]:
    """Chunk hits (best first) -> {BEIR id: score}: a document ranks at its best chunk, order kept.

    Scores handed to ranx are strictly decreasing by rank (n - rank), so ties in fused scores can never
    reorder the documents the retriever returned.
    """
    order: list[str] = []
    seen: set[str] = set()
    for h in hits:
        bid = uri_to_id.get(Path(h.doc.uri).name)
        if bid is not None and bid not in seen:
            seen.add(bid)
            order.append(bid)
    n = len(order)
    return {bid: float(n - i) for i, bid in enumerate(order)}


def evaluate(qrels: dict, run: dict, per_query: dict | None = None) -> dict[str, float]:
    """Mean of each metric; with `per_query` given, also fill it with {query id: {metric: value}}."""
    import warnings

    from ranx import Qrels, Run, evaluate as rx

    ranked = Run({q: (run.get(q) or {"__none__": 0.0}) for q in qrels})
    with warnings.catch_warnings():  # numba's uint64 -> int64 cast notice inside ranx's MRR
        warnings.simplefilter("ignore")
        m = rx(Qrels(qrels), ranked, list(METRICS))
    if per_query is not None:
        for k in METRICS:
            for q, v in ranked.scores[k].items():
                per_query.setdefault(q, {})[k] = round(float(v), 4)
    return {k: round(float(m[k]), 4) for k in METRICS}


def relevant_ranks(ranking: dict[str, float], relevant: dict[str, int]) -> list[int]:
    """1-based ranks of the relevant documents the ranking holds (its scores fall with rank)."""
    order = sorted(ranking, key=ranking.__getitem__, reverse=True)
    return [i for i, d in enumerate(order, 1) if d in relevant]


def run_meta(kind: str, stack: Stack) -> dict:
    """Identifies a run for `lore eval compare`: kind, time, code version and settings."""
    import subprocess
    from datetime import datetime, timezone

    git = None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            git = {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass  # a run outside a checkout simply has no commit
    return {"kind": kind, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git": git,
            "snapshot": stack.snapshot()}


def run_beir(beir_dir: str | Path, stack: Stack, split: str = "test", data_dir: str | Path | None = None,
             progress: bool = True, modes: Sequence[str] = MODES, top_k: int = TOP_K) -> dict:
    """Ingest a BEIR corpus with Lore and score its judged queries in each search mode."""
    from ingest.access import Principal

    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    for m in modes:
        if m not in MODES:
            raise ConfigError(f"mode {m!r} is not one of {', '.join(MODES)}")
    chosen = [m for m in modes if m in MODES]  # the same, typed as modes
    beir_dir = Path(beir_dir)
    corpus, queries, qrels = load_beir(beir_dir, split)
    root = Path(data_dir) if data_dir is not None else Path.cwd() / ".lore-eval" / beir_dir.resolve().name
    stack = stack.at(root)
    docs_dir = root / "docs"
    t0 = time.perf_counter()
    names = write_corpus(corpus, docs_dir)
    (root / "ids.json").write_text(json.dumps(names, sort_keys=True), encoding="utf-8")
    ingest = ingest_corpus(stack, docs_dir, progress)
    ingest_s = time.perf_counter() - t0
    if ingest["failed"]:
        first = ingest["failed"][0]
        raise ConfigError(f"{len(ingest['failed'])} corpus documents failed to ingest (e.g. {first['path']}: "
                          f"{first['error']}); fix them or remove {docs_dir} and run again")
    retriever = stack.retriever()
    who = Principal()
    out: dict = {}
    timings: dict[str, float] = {}
    rows: dict[str, dict] = {q: {"id": q, "query": text, "relevant": len(qrels[q]), "modes": {}}
                             for q, text in queries.items()}
    for mode in chosen:  # load the model and indexes before the clock runs
        retriever.search("warm-up query", who, top_k=1, mode=mode)
    with _progress(progress) as bar:
        for mode in chosen:
            task = bar.add_task(f"{split} queries, {mode}", total=len(queries))
            run: dict[str, dict[str, float]] = {}
            t1 = time.perf_counter()
            for qid, text in queries.items():
                t2 = time.perf_counter()
                hits = retriever.search(text, who, top_k=top_k, mode=mode).hits
                ms = round((time.perf_counter() - t2) * 1000, 2)
                run[qid] = doc_ranking(hits, names)
                rows[qid]["modes"][mode] = {"ms": ms, "ranks": relevant_ranks(run[qid], qrels[qid])}
                bar.advance(task)
            timings[mode] = round((time.perf_counter() - t1) / len(queries) * 1000, 2)
            per_query: dict[str, dict[str, float]] = {}
            out[mode] = evaluate(qrels, run, per_query)
            for qid, scores in per_query.items():
                rows[qid]["modes"][mode].update(scores)
    snap = stack.snapshot()
    r = snap["retrieval"]
    out.update({
        "queries": len(queries), "docs": len(corpus), "dataset": beir_dir.resolve().name, "split": split,
        "data_dir": str(root), "ingest": {k: v for k, v in ingest.items() if k != "failed"},
        "ingest_s": round(ingest_s, 1), "query_ms": timings,
        "settings": {"embedding": f"{snap['embedding']['model']} ({snap['embedding']['backend']})",
                     **{k: r[k] for k in ("fusion", "dense_weight", "rrf_k", "depth", "title_weight",
                                          "section_weight", "reranker")}, "top_k": top_k},
        "modes": list(modes), "metrics": list(METRICS), "per_query": list(rows.values()),
    })
    out.update(run_meta("retrieval", stack))
    return out
