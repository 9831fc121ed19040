"""`lore eval ...`: quality benchmarks run through Lore's real ingest and search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

eval_app = typer.Typer(help="Measure Lore's quality on public benchmarks (BEIR retrieval).", no_args_is_help=True,
                       pretty_exceptions_enable=False)


@eval_app.command()
def retrieval(beir: Path = typer.Option(..., "--beir", help="BEIR dataset folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv"),
              split: str = typer.Option("test", "--split", help="judgments to score: test (report) or train (tune)"),
              data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="ingest cache, reused across runs "
                                                      "(default: ./.lore-eval/<dataset>; never your knowledge base)"),
              as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Ingest a BEIR corpus and score hybrid, dense and keyword search: nDCG@10, recall@10/100, MRR@10."""
    from api.cli import _fail, _settings, out
    from evals.retrieval_eval import METRICS, MODES, run_beir
    from ingest.errors import LoreError

    s = _settings(None)  # LORE_* retrieval and embedding settings apply; the data dir is the eval cache
    try:
        res = run_beir(beir, split, data_dir, settings=s, progress=True)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(res))
        return
    out.print(f"{res['dataset']} {res['split']}: {res['queries']} queries, {res['docs']} documents "
              f"(cache {res['data_dir']})")
    from rich.table import Table

    table = Table("mode", *METRICS, "ms/query", box=None)
    for mode in MODES:
        table.add_row(mode, *(f"{res[mode][m]:.4f}" for m in METRICS), f"{res['query_ms'][mode]:.1f}")
    out.print(table)
