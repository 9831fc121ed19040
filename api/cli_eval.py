"""`lore eval ...`: quality benchmarks run through Lore's real ingest and search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

eval_app = typer.Typer(help="Measure Lore's quality: retrieval on BEIR datasets, answers on question sets, threshold calibration.", no_args_is_help=True,
                       pretty_exceptions_enable=False)


@eval_app.command()
def retrieval(beir: Path = typer.Option(..., "--beir", help="BEIR dataset folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv"),
              split: str = typer.Option("test", "--split", help="judgments to score: test (report) or train (tune)"),
              data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="ingest cache, reused across runs "
                                                      "(default: ./.lore-eval/<dataset>; never your knowledge base)"),
              top_k: int = typer.Option(100, "--top-k", min=1, help="passages asked of each search (recall@100 "
                                        "needs 100; 10 measures what an answer sees)"),
              modes: Optional[list[str]] = typer.Option(None, "--mode", help="hybrid, dense or keyword (repeatable; "
                                                        "default all three)"),
              as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Ingest a BEIR corpus and score hybrid, dense and keyword search: nDCG@10, recall@10/100, MRR@10."""
    from api.cli import _fail, _settings, out
    from evals.retrieval_eval import METRICS, MODES, run_beir
    from ingest.errors import LoreError

    s = _settings(None)  # LORE_* retrieval and embedding settings apply; the data dir is the eval cache
    try:
        res = run_beir(beir, split, data_dir, settings=s, progress=True, modes=tuple(modes or MODES), top_k=top_k)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(res))
        return
    out.print(f"{res['dataset']} {res['split']}: {res['queries']} queries, {res['docs']} documents "
              f"(cache {res['data_dir']})")
    from rich.table import Table

    table = Table("mode", *METRICS, "ms/query", box=None)
    for mode in modes or MODES:
        table.add_row(mode, *(f"{res[mode][m]:.4f}" for m in METRICS), f"{res['query_ms'][mode]:.1f}")
    out.print(table)


_DATASET_HELP = "JSONL of {id, question, answerable, gold_docs, must_contain} (evals/datasets/README.md)"
_CORPUS_HELP = "folder the gold_docs are relative to; ingested into an eval cache (default: ask LORE_DATA_DIR)"


@eval_app.command()
def qa(dataset: Path = typer.Option(..., "--dataset", help=_DATASET_HELP),
       corpus: Optional[Path] = typer.Option(None, "--corpus", help=_CORPUS_HELP),
       data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="knowledge base or eval cache to use"),
       out_file: Optional[Path] = typer.Option(None, "--out", help="also write every question's result here (JSON)"),
       as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Answer a question set and score it: gold-doc hit@5, must_contain, citation validity, abstention, latency."""
    from api.cli import _fail, _settings, out
    from evals.qa_eval import run_qa
    from ingest.errors import LoreError

    try:
        res = run_qa(dataset, corpus, data_dir, settings=_settings(None), progress=True)
    except LoreError as exc:
        _fail(exc)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(res, indent=2), encoding="utf-8")
    cases = res.pop("cases")
    if as_json:
        print(json.dumps(res))
        return
    from rich.table import Table

    ab = res["abstention"]
    out.print(f"{res['dataset']}: {res['questions']} questions ({res['answerable']} answerable), "
              f"threshold {res['threshold']}, models {res['models']}")
    t = Table("metric", "value", box=None)
    for k in ("gold_hit@5", "gold_cited", "must_contain", "citation_validity"):
        t.add_row(k, f"{res[k]:.3f}")
    t.add_row("abstention precision / recall", f"{ab['precision']:.3f} / {ab['recall']:.3f}")
    t.add_row("answerable that abstained", f"{ab['answerable_abstained']:.3f}")
    t.add_row("latency p50 / p95 ms", f"{res['latency_ms']['p50']:.0f} / {res['latency_ms']['p95']:.0f}")
    out.print(t)
    misses = [c for c in cases if (c["answerable"] and not (c["must_contain"] and c["gold_cited"]))
              or (not c["answerable"] and not c["abstained"])]
    if misses:
        out.print(f"[bold]{len(misses)} questions to look at[/bold] (missing fact, gold not cited, or wrong abstention):")
        for c in misses[:15]:
            out.print(f"  {c['id']} [{c['status']} {c['confidence']:.3f}] {c['question']}", markup=False)


@eval_app.command()
def calibrate(dataset: list[Path] = typer.Option(..., "--dataset", help=_DATASET_HELP + "; repeat for several "
                                                 "sets; use dev sets, never the test set"),
              corpus: Optional[list[Path]] = typer.Option(None, "--corpus", help=_CORPUS_HELP + "; one per --dataset, "
                                                          "in the same order"),
              data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="knowledge base or eval cache (one dataset only)"),
              max_abstain: float = typer.Option(0.05, "--max-answerable-abstain", min=0.0, max=1.0,
                                                help="largest share of answerable questions allowed to abstain"),
              as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Choose the abstention threshold of the offline answerer from dev sets' confidences."""
    from api.cli import _fail, _settings, out
    from evals.qa_eval import calibrate as run_calibration
    from ingest.errors import LoreError

    try:
        res = run_calibration(dataset, corpus, data_dir, settings=_settings(None), progress=True,
                              max_answerable_abstain=max_abstain)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(res))
        return
    best = res["at_recommended"]
    out.print(f"{res['questions']} questions; current threshold {res['current']}")
    out.print(f"recommended threshold {res['recommended']}: abstains on {best['unanswerable_abstained']:.0%} of "
              f"unanswerable and {best['answerable_abstained']:.0%} of answerable questions")
    out.print("set it with LORE_ANSWER__THRESHOLD (or ExtractiveConfig.threshold in assistant/extractive.py)")
