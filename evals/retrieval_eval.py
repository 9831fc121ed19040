"""Retrieval quality on a BEIR dataset through Lore's real ingest and real search (issue 3).

Usage: python evals/retrieval_eval.py --beir DIR [--split test|train] [--data-dir DIR] [--json]

Each corpus document becomes a Markdown file `# title\\n\\ntext` named after its BEIR id (or a hash of
it when the id is not a safe file name; `ids.json` maps file names back to BEIR ids). The folder is
ingested with `api.wiring.build_ingestor` into the data dir (default `.lore-eval/<dataset>` under the
current directory), incrementally, so a second run skips unchanged documents. Every query that has
judgments in the split is then run through `build_retriever(settings).search(..., top_k=100)` in the
modes hybrid, dense and keyword; chunk hits become document hits (a document ranks where its best
chunk ranks) and ranx scores nDCG@10, recall@10, recall@100 and MRR@10. `per_query` keeps each query's
metrics, latency and the ranks of its relevant documents (recall@k curves, `lore eval compare`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ingest.errors import ConfigError  # noqa: E402

MODES = ("hybrid", "dense", "keyword")
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


def ingest_corpus(settings, folder: Path, progress: bool = True) -> dict:
    from api.wiring import build_ingestor

    with _progress(progress) as bar:
        task = bar.add_task("ingesting", total=None)

        def on_event(kind: str, data: dict) -> None:
            if kind == "plan":
                bar.update(task, total=data["todo"], description=f"ingesting ({data['files'] - data['todo']} unchanged)")
            elif kind in ("stored", "failed"):
                bar.advance(task)

        report = build_ingestor(settings, on_event=on_event).ingest([folder], exclude=settings.ingest.exclude)
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
    order = sorted(ranking, key=ranking.get, reverse=True)
    return [i for i, d in enumerate(order, 1) if d in relevant]


def _clean_url(url: str | None) -> str | None:
    """A URL without user:password, which may carry a credential."""
    from urllib.parse import urlsplit, urlunsplit

    if not url:
        return url
    u = urlsplit(url)
    return urlunsplit(u._replace(netloc=u.hostname + (f":{u.port}" if u.port else ""))) if u.hostname else url


def settings_snapshot(s) -> dict:
    """What decides quality in a run: embedding, retrieval, answer and model settings; never a secret."""
    llm = s.llm
    return {"embedding": {"model": s.embedding.model, "backend": s.embedding.backend},
            "retrieval": s.retrieval.model_dump(mode="json"), "answer": s.answer.model_dump(mode="json"),
            "llm": {"enabled": llm.enabled, "model": llm.model, "base_url": _clean_url(llm.base_url),
                    "azure": bool(llm.api_version), "prompt_version": llm.prompt_version,
                    "passages": llm.passages, "temperature": llm.temperature, "max_tokens": llm.max_tokens,
                    "condense": llm.condense},
            "chroma": "server" if s.chroma_url else "embedded", "default_acl": list(s.default_acl),
            "ingest_exclude": list(s.ingest.exclude)}


def run_meta(kind: str, s) -> dict:
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
            "snapshot": settings_snapshot(s)}


def run_beir(beir_dir: str | Path, split: str = "test", data_dir: str | Path | None = None, settings=None,
             progress: bool = True, modes: tuple[str, ...] = MODES, top_k: int = TOP_K) -> dict:
    """Ingest a BEIR corpus with Lore and score its judged queries in each search mode."""
    from api.settings import Settings
    from api.wiring import build_retriever
    from retriever.types import Principal

    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    for m in modes:
        if m not in MODES:
            raise ConfigError(f"mode {m!r} is not one of {', '.join(MODES)}")
    beir_dir = Path(beir_dir)
    corpus, queries, qrels = load_beir(beir_dir, split)
    root = Path(data_dir) if data_dir is not None else Path.cwd() / ".lore-eval" / beir_dir.resolve().name
    s = (settings or Settings()).model_copy(update={"data_dir": root})
    docs_dir = root / "docs"
    t0 = time.perf_counter()
    names = write_corpus(corpus, docs_dir)
    (root / "ids.json").write_text(json.dumps(names, sort_keys=True), encoding="utf-8")
    ingest = ingest_corpus(s, docs_dir, progress)
    ingest_s = time.perf_counter() - t0
    if ingest["failed"]:
        first = ingest["failed"][0]
        raise ConfigError(f"{len(ingest['failed'])} corpus documents failed to ingest (e.g. {first['path']}: "
                          f"{first['error']}); fix them or remove {docs_dir} and run again")
    retriever = build_retriever(s)
    who = Principal()
    out: dict = {}
    timings: dict[str, float] = {}
    rows = {q: {"id": q, "query": text, "relevant": len(qrels[q]), "modes": {}} for q, text in queries.items()}
    for mode in modes:  # load the model and indexes before the clock runs
        retriever.search("warm-up query", who, top_k=1, mode=mode)
    with _progress(progress) as bar:
        for mode in modes:
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
            for qid, m in per_query.items():
                rows[qid]["modes"][mode].update(m)
    r = s.retrieval
    out.update({
        "queries": len(queries), "docs": len(corpus), "dataset": beir_dir.resolve().name, "split": split,
        "data_dir": str(root), "ingest": {k: v for k, v in ingest.items() if k != "failed"},
        "ingest_s": round(ingest_s, 1), "query_ms": timings,
        "settings": {"embedding": f"{s.embedding.model} ({s.embedding.backend})", "fusion": r.fusion,
                     "dense_weight": r.dense_weight, "rrf_k": r.rrf_k, "depth": r.depth,
                     "title_weight": r.title_weight, "section_weight": r.section_weight,
                     "reranker": r.reranker, "top_k": top_k},
        "modes": list(modes), "metrics": list(METRICS), "per_query": list(rows.values()),
    })
    out.update(run_meta("retrieval", s))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", type=Path, required=True, help="BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/)")
    ap.add_argument("--split", default="test", choices=list(SPLITS), help="qrels split to score (tune on train)")
    ap.add_argument("--data-dir", type=Path, default=None, help="ingest cache (default: ./.lore-eval/<dataset>)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)
    try:
        res = run_beir(args.beir, args.split, args.data_dir, progress=True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    res.pop("per_query")
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['dataset']} {res['split']}: {res['queries']} queries, {res['docs']} docs")
        print(f"{'mode':<8} " + " ".join(f"{m:>10}" for m in METRICS))
        for mode in MODES:
            if mode in res:
                print(f"{mode:<8} " + " ".join(f"{res[mode][m]:>10.4f}" for m in METRICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
