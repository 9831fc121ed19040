"""`lore eval ...`: quality benchmarks run through Lore's real ingest and search, their reports and the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

eval_app = typer.Typer(help="Measure Lore's quality: retrieval on BEIR datasets, answers on question sets, threshold "
                       "calibration, A/B comparison of runs, the CI quality gate, feedback export.",
                       no_args_is_help=True, pretty_exceptions_enable=False)

_OUT_HELP = ("run folder for run.json, report.md, report.html and the plots, or a FILE.json (reports beside it); "
             "default .lore-eval/runs/<time>-<name>/")
_NAME_HELP = "label of the run in reports and comparisons (default: the dataset's name)"


def _write_report(res: dict, out: Optional[Path], name: str) -> dict:
    """Save the run and its reports; the paths go into the result's `report`."""
    from api.cli_base import _fail
    from evals.report import default_dir, write_run
    from ingest.errors import ConfigError

    res["name"] = name
    try:
        paths = write_run(res, out if out is not None else default_dir(name))
    except ImportError as exc:
        _fail(ConfigError(f"reports need matplotlib ({exc}); install it: .venv/bin/pip install 'matplotlib>=3.8'"))
    except OSError as exc:
        _fail(ConfigError(f"cannot write the report: {exc}; pass --out a writable folder"))
    res["report"] = paths
    return paths


def _print_paths(paths: dict) -> None:
    from api.cli_base import err

    err.print(f"run file {paths['run']}\nreport   {paths['md']}\n         {paths['html']}", soft_wrap=True,
              highlight=False)


@eval_app.command()
def retrieval(beir: Path = typer.Option(..., "--beir", help="BEIR dataset folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv"),
              split: str = typer.Option("test", "--split", help="judgments to score: test (report) or train (tune)"),
              data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="ingest cache, reused across runs "
                                                      "(default: ./.lore-eval/<dataset>; never your knowledge base)"),
              top_k: int = typer.Option(100, "--top-k", min=1, help="passages asked of each search (recall@100 "
                                        "needs 100; 10 measures what an answer sees)"),
              modes: Optional[list[str]] = typer.Option(None, "--mode", help="hybrid, dense or keyword (repeatable; "
                                                        "default all three)"),
              out: Optional[Path] = typer.Option(None, "--out", help=_OUT_HELP),
              name: Optional[str] = typer.Option(None, "--name", help=_NAME_HELP),
              as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Ingest a BEIR corpus and score hybrid, dense and keyword search: nDCG@10, recall@10/100, MRR@10."""
    from api.cli_base import _fail, _settings, out as console
    from api.wiring import EvalStack
    from evals.retrieval_eval import METRICS, MODES, run_beir
    from ingest.errors import LoreError

    stack = EvalStack(_settings(None))  # LORE_* retrieval and embedding settings apply; the data dir is the eval cache
    try:
        res = run_beir(beir, stack, split, data_dir, progress=True, modes=tuple(modes or MODES), top_k=top_k)
    except LoreError as exc:
        _fail(exc)
    paths = _write_report(res, out, name or f"{res['dataset']}-{split}")
    res.pop("per_query")
    if as_json:
        print(json.dumps(res))
        return
    console.print(f"{res['dataset']} {res['split']}: {res['queries']} queries, {res['docs']} documents "
                  f"(cache {res['data_dir']})")
    from rich.table import Table

    table = Table("mode", *METRICS, "ms/query", box=None)
    for mode in modes or MODES:
        table.add_row(mode, *(f"{res[mode][m]:.4f}" for m in METRICS), f"{res['query_ms'][mode]:.1f}")
    console.print(table)
    _print_paths(paths)


_DATASET_HELP = "JSONL of {id, question, answerable, gold_docs, must_contain} (evals/datasets/README.md)"
_CORPUS_HELP = "folder the gold_docs are relative to; ingested into an eval cache (default: ask LORE_DATA_DIR)"


def _qa_summary(res: dict, cases: list[dict]) -> None:
    from rich.table import Table

    from api.cli_base import out

    ab = res["abstention"]
    out.print(f"{res['dataset']}: {res['questions']} questions ({res['answerable']} answerable), "
              f"threshold {res['threshold']}, models {res['models']}")
    t = Table("metric", "value", box=None)
    for k in ("gold_hit@5", "gold_recall@5", "gold_mrr", "gold_cited", "must_contain", "facts_lead",
              "cite_precision", "citation_validity"):
        t.add_row(k, f"{res[k]:.3f}")
    t.add_row("answer words p50 / p90", f"{res['answer_words_p50']:g} / {res['answer_words_p90']:g}")
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
def qa(dataset: Path = typer.Option(..., "--dataset", help=_DATASET_HELP),
       corpus: Optional[Path] = typer.Option(None, "--corpus", help=_CORPUS_HELP),
       data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="knowledge base or eval cache to use"),
       out_path: Optional[Path] = typer.Option(None, "--out", help=_OUT_HELP),
       name: Optional[str] = typer.Option(None, "--name", help=_NAME_HELP),
       as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Answer a question set and score it: gold-doc hit@5, must_contain, citation validity, abstention, latency."""
    from api.cli_base import _fail, _settings
    from api.wiring import EvalStack
    from evals.qa_eval import run_qa
    from ingest.errors import LoreError

    try:
        res = run_qa(dataset, EvalStack(_settings(None)), corpus, data_dir, progress=True)
    except LoreError as exc:
        _fail(exc)
    paths = _write_report(res, out_path, name or dataset.stem)
    cases = res.pop("cases")
    if as_json:
        print(json.dumps(res))
        return
    _qa_summary(res, cases)
    _print_paths(paths)


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
    from api.cli_base import _fail, _settings, out
    from api.wiring import EvalStack
    from evals.qa_eval import calibrate as run_calibration
    from ingest.errors import LoreError

    try:
        res = run_calibration(dataset, EvalStack(_settings(None)), corpus, data_dir, progress=True,
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


@eval_app.command()
def compare(run_a: Path = typer.Argument(..., help="baseline run: a run folder or its run.json"),
            run_b: Path = typer.Argument(..., help="candidate run of the same dataset"),
            out: Optional[Path] = typer.Option(None, "--out", help="folder for compare.json/.md/.html and deltas.png "
                                               "(default .lore-eval/runs/<time>-compare-<A>-vs-<B>/)"),
            resamples: int = typer.Option(2000, "--resamples", min=100, help="bootstrap resamples"),
            seed: int = typer.Option(0, "--seed", help="bootstrap seed (same seed, same intervals)"),
            fail_on_worse: bool = typer.Option(False, "--fail-on-worse", help="exit 1 when a metric is significantly "
                                               "worse in B"),
            as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """B - A for every metric with 95% paired bootstrap intervals, and the questions whose outcome flipped."""
    from api.cli_base import _fail
    from evals.compare import compare as run_compare, load_run, write_compare
    from evals.report import default_dir
    from ingest.errors import ConfigError, LoreError

    try:
        a, b = load_run(run_a), load_run(run_b)
        res = run_compare(a, b, resamples=resamples, seed=seed)
        label = f"compare-{a.get('name') or 'A'}-vs-{b.get('name') or 'B'}"
        res["report"] = write_compare(res, out if out is not None else default_dir(label))
    except LoreError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(ConfigError(f"cannot write the comparison: {exc}; pass --out a writable folder"))
    if as_json:
        print(json.dumps(res))
    else:
        _print_compare(res)
    if fail_on_worse and res["worsened"]:
        raise typer.Exit(1)


def _signed(x, metric: str) -> str:
    return "n/a" if x is None else f"{x:+.1f}" if metric.endswith("_ms") else f"{x:+.3f}"


def _print_compare(res: dict) -> None:
    from rich.table import Table

    from api.cli_base import err, out

    t = Table("metric", "A", "B", "B - A", "95% CI", "", box=None)
    for m in res["metrics"]:
        k = m["metric"]
        verdict = "" if m["better"] is None else "[green]better[/]" if m["better"] else "[red]worse[/]"
        plain = "{:.1f}" if k.endswith("_ms") else "{:.3f}"
        t.add_row(k, *("n/a" if v is None else plain.format(v) for v in (m["a"], m["b"])), _signed(m["delta"], k),
                  f"[{_signed(m['ci95'][0], k)}, {_signed(m['ci95'][1], k)}]", verdict)
    out.print(f"{res['kind']}: {res['paired']} paired questions; {len(res['flips'])} outcome changes")
    for note in res["notes"]:
        out.print(f"note: {note}", markup=False)
    for k, (va, vb) in res["settings_changed"].items():
        out.print(f"  {k}: {va!r} -> {vb!r}", markup=False)
    out.print(t)
    for f in res["flips"][:20]:
        out.print(f"  {f['id']} {f['change']}: {f['from']} -> {f['to']} ({'better' if f['better'] else 'worse'})",
                  markup=False)
    err.print(f"report {res['report']['md']}\n       {res['report']['html']}", soft_wrap=True, highlight=False)


@eval_app.command()
def gate(gate_file: Optional[Path] = typer.Option(None, "--gate", help="thresholds (default evals/gate.json)"),
         data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="eval cache for the sample corpus "
                                                 "(default ./.lore-eval/qa-acme)"),
         out: Optional[Path] = typer.Option(None, "--out", help="also write the run and its report here"),
         as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """The CI quality gate: the sample corpus' dev questions against evals/gate.json; exit 1 below a threshold."""
    from api.cli_base import _fail, _settings, out as console
    from api.wiring import EvalStack
    from evals.gate import GATE_FILE, run_gate
    from ingest.errors import LoreError

    try:
        res = run_gate(EvalStack(_settings(None)), data_dir, gate_file or GATE_FILE, progress=True)
    except LoreError as exc:
        _fail(exc)
    run = res.pop("run")
    if out is not None:
        res["report"] = _write_report(run, out, "gate")
    if as_json:
        print(json.dumps(res))
    else:
        for c in res["checks"]:
            mark = "[green]ok[/]  " if c["passed"] else "[red]FAIL[/]"
            console.print(f"{mark} {c['message']}", highlight=False)
        console.print(("[green]" if res["passed"] else "[red]") + res["message"] + "[/]", highlight=False)
    if not res["passed"]:
        raise typer.Exit(1)


@eval_app.command("train-reader")
def train_reader(out: Path = typer.Option(None, "--out", help="weights file to write (default: the packaged "
                                           "assistant/reader-v1.json)"),
                 as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Retrain the offline answerer's reader on the dev sets (data card: docs/reader.md); ~1 min warm."""
    from api.cli_base import _fail, _settings
    from api.wiring import EvalStack
    from evals.train_reader import WEIGHTS, train
    from ingest.errors import LoreError

    try:
        res = train(EvalStack(_settings(None)), out or WEIGHTS, progress=not as_json)
    except LoreError as exc:
        _fail(exc)
    print(json.dumps(res) if as_json else json.dumps(res, indent=2))


@eval_app.command("export-feedback")
def export_feedback(since: str = typer.Option(..., "--since", help="first day (YYYY-MM-DD, UTC) or ISO date-time"),
                    until: Optional[str] = typer.Option(None, "--until", help="last day, included (or an ISO "
                                                        "date-time, excluded); default: now"),
                    out: Path = typer.Option(Path(".lore-eval/feedback/cases.jsonl"), "--out",
                                             help="JSONL to write; lines it already holds are kept"),
                    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="the service's data dir "
                                                            "(holds audit.db; default LORE_DATA_DIR)"),
                    as_json: bool = typer.Option(False, "--json", help="print one JSON object as the last line")) -> None:
    """Thumbs-down answers and abstentions from the audit log as eval cases for a reviewer to complete."""
    from api.cli_base import _fail, _settings, err, out as console
    from evals.export_feedback import export, open_audit, parse_when
    from ingest.errors import LoreError

    s = _settings(data_dir)
    try:
        start, end = parse_when(since, "--since"), parse_when(until, "--until", end=True) if until else None
        audit = open_audit(s.data_dir, s.audit.redact)
        try:
            res = export(audit, out, start, end)
        finally:
            audit.close()
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(res))
        return
    console.print(f"{res['found']} cases ({res['thumbs_down']} thumbs down, {res['no_evidence']} abstentions); "
                  f"{res['added']} new, {res['kept']} already in {res['out']}; {res['unreviewed']} to review")
    err.print("next: fill in answerable, gold_docs and must_contain in each line, then "
              f"`lore eval qa --dataset {res['out']} --corpus <folder>`", soft_wrap=True, highlight=False)
