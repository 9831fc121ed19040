"""Eval reports: the run file, Markdown and a self-contained HTML page with matplotlib plots (issue 7).

`write_run(run, out)` writes, for a `lore eval qa` or `lore eval retrieval` result:
run.json (what `lore eval compare` reads), report.md, report.html (PNGs inlined as data: URIs, no
external resource, works offline) and one PNG per plot. `out` is a folder, or a `*.json` path: the
run file there, the reports and plots beside it named after it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")
_CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}p>img{width:49%;border:1px solid #eee;margin:.3em 0;vertical-align:top}
p>img:only-child{width:auto;max-width:100%}td:first-child{white-space:nowrap}
code{background:#f5f5f5;padding:0 3px}h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}"""


def md(text) -> str:
    """Text safe inside a Markdown table cell and as HTML: markup characters escaped, one line."""
    s = " ".join(str(text).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def code(text) -> str:
    """Text as an inline code span (shown verbatim; Markdown escapes its HTML)."""
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _f(x) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _header(run: dict, title: str) -> list[str]:
    git = run.get("git") or {}
    commit = f"commit `{git['commit'][:10]}`{' (uncommitted changes)' if git.get('dirty') else ''}" if git else ""
    bits = [f"run {run.get('created_at', '?')}", commit, f"name {code(run['name'])}" if run.get("name") else ""]
    return [f"# {md(title)}", "", " · ".join(b for b in bits if b), ""]


def _settings_md(run: dict) -> list[str]:
    flat = flatten(run.get("snapshot") or {})
    return ["## Settings", "", table(["setting", "value"], [[code(k), code(json.dumps(v))] for k, v in flat.items()])]


# -- QA ------------------------------------------------------------------------------------------
def failures(cases: list[dict]) -> list[tuple[dict, str]]:
    """(case, what went wrong) for every question that missed a fact, a gold citation or the abstention call."""
    out = []
    for c in cases:
        why = []
        if c["answerable"]:
            if c["abstained"]:
                why.append("abstained on an answerable question")
            else:
                if c.get("missing"):
                    why.append("missing " + ", ".join(f"'{m}'" for m in c["missing"]))
                if not c["gold_cited"]:
                    why.append("gold not cited (cited " + (", ".join(dict.fromkeys(Path(u).name for u in c["cited"])) or "nothing") + ")")
            if not c["gold_hit@5"]:
                why.append("no gold document in the top 5 hits")
        elif not c["abstained"]:
            why.append("answered an unanswerable question")
        if not c["citations_valid"]:
            why.append("invalid citation")
        if why:
            out.append((c, "; ".join(why)))
    return out


def qa_markdown(run: dict, images: list[tuple[str, str]]) -> str:
    ab, lat, n_a = run["abstention"], run["latency_ms"], run["answerable"]
    lines = _header(run, f"QA eval: {Path(run['dataset']).stem}")
    lines += [f"Dataset {code(run['dataset'])}, corpus {code(run.get('corpus'))}: {run['questions']} questions "
              f"({n_a} answerable, {run['unanswerable']} unanswerable); models {md(json.dumps(run.get('models')))}, "
              f"threshold {run.get('threshold')}, top_k {run.get('top_k')}.", "", "## Metrics", ""]
    rows = [["gold hit@5", _f(run["gold_hit@5"]), f"{n_a} answerable"],
            ["gold recall@5", _f(run.get("gold_recall@5", 0.0)), f"{n_a} answerable"],
            ["gold MRR", _f(run.get("gold_mrr", 0.0)), f"{n_a} answerable"],
            ["gold cited", _f(run["gold_cited"]), f"{n_a} answerable"],
            ["must_contain", _f(run["must_contain"]), f"{n_a} answerable"],
            ["facts in answer or first two quotes", _f(run.get("facts_lead", 0.0)), f"{n_a} answerable"],
            ["citations into a gold document", _f(run.get("cite_precision", 0.0)), "citations of answerable"],
            ["answer words p50 / p90", f"{run.get('answer_words_p50', 0):g} / {run.get('answer_words_p90', 0):g}",
             "answered"],
            ["citation validity", _f(run["citation_validity"]), f"{run['citations']} citations"],
            ["abstention precision", _f(ab["precision"]), "abstentions"],
            ["abstention recall (unanswerable abstained)", _f(ab["recall"]), f"{run['unanswerable']} unanswerable"],
            ["answerable abstained", _f(ab["answerable_abstained"]), f"{n_a} answerable"],
            ["latency p50 / p95 / max ms", f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['max']:.0f}", "all"]]
    lines += [table(["metric", "value", "over"], rows)]
    if run.get("by_doc_type"):
        lines += ["## By document type", "", "Answerable questions by the type of their gold documents.", ""]
        lines += [table(["doc type", "questions", "gold hit@5", "gold cited", "must_contain"],
                        [[t, v["questions"], _f(v["gold_hit@5"]), _f(v["gold_cited"]), _f(v["must_contain"])]
                         for t, v in run["by_doc_type"].items()])]
    lines += ["## Plots", "", " ".join(f"![{md(t)}]({f})" for t, f in images), ""]
    fails = failures(run["cases"])
    lines += [f"## Questions to look at ({len(fails)})", ""]
    if fails:
        lines += [table(["id", "status", "confidence", "question", "what went wrong"],
                        [[md(c["id"]), c["status"], f"{c['confidence']:.3f}", md(c["question"]), md(why)]
                         for c, why in fails])]
    else:
        lines += ["None: every answerable question kept its facts and cited a gold document, and every "
                  "unanswerable one abstained.", ""]
    return "\n".join(lines + _settings_md(run))


# -- retrieval -----------------------------------------------------------------------------------
def retrieval_markdown(run: dict, images: list[tuple[str, str]], worst: int = 15) -> str:
    metrics, modes = run["metrics"], run["modes"]
    lines = _header(run, f"Retrieval eval: {run['dataset']} ({run['split']})")
    lines += [f"{run['queries']} judged queries over {run['docs']} documents, `search(top_k={run['settings']['top_k']})`; "
              "a document ranks at its best chunk; metrics by ranx.", "", "## Metrics", ""]
    lines += [table(["mode", *metrics, "ms/query"],
                    [[m, *(f"{run[m][k]:.4f}" for k in metrics), f"{run['query_ms'][m]:.1f}"] for m in modes])]
    lines += ["## Plots", "", " ".join(f"![{md(t)}]({f})" for t, f in images), ""]
    mode = "hybrid" if "hybrid" in modes else modes[0]
    rows = sorted((r for r in run["per_query"] if r["modes"][mode]["ndcg@10"] < 1.0),
                  key=lambda r: (r["modes"][mode]["ndcg@10"], r["id"]))
    lines += [f"## Hardest queries ({mode}: {len(rows)} below nDCG@10 = 1, lowest first)", ""]
    lines += [table(["id", "query", "relevant", "nDCG@10", "first relevant rank"],
                    [[md(r["id"]), md(r["query"]), r["relevant"], f"{r['modes'][mode]['ndcg@10']:.3f}",
                      (r["modes"][mode]["ranks"] or ["not found"])[0]] for r in rows[:worst]])
              if rows else "None: every query ranks its relevant documents first.\n"]
    return "\n".join(lines + _settings_md(run))


# -- plots (matplotlib's object API: no pyplot state, no display; PNG through Agg) ----------------
_COLORS = {"hybrid": "#1f77b4", "dense": "#2ca02c", "keyword": "#ff7f0e"}


def _figure(w: float = 6.4, h: float = 3.8, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.subplots(**kw)


def _latency(ax, series: dict[str | None, list[float]]) -> None:
    """Latency histograms on shared bins; a long tail beyond 3 x p95 is folded into the last bin."""
    import numpy as np

    data = {k: np.asarray([x for x in v if x is not None], dtype=float) for k, v in series.items()}
    data = {k: v for k, v in data.items() if len(v)}
    if not data:
        return
    every = np.concatenate(list(data.values()))
    top = max(min(float(every.max()), 3 * float(np.percentile(every, 95))), 1.0)
    bins = np.linspace(0, top * 1.001, 31)
    folded = int((every > top).sum())
    for k, v in data.items():
        color = _COLORS.get(k) if k else None
        ax.hist(np.minimum(v, top), bins=bins, histtype="step" if k else "bar", linewidth=1.6, label=k,
                color=color, alpha=1.0 if k else 0.8)
        for q, style in ((50, "--"), (95, ":")):
            ax.axvline(float(np.percentile(v, q)), color=color or "k", linestyle=style, linewidth=1)
    note = f"; {folded} slower than {top:.0f} ms in the last bin" if folded else ""
    ax.set_xlabel(f"ms (dashed p50, dotted p95{note})")
    if any(data):
        ax.legend()


def qa_plots(run: dict) -> list[tuple[str, str, object]]:
    """(file key, title, Figure): latency, abstention confusion matrix, doc-type breakdown, gold recall@k."""
    import numpy as np

    cases = run["cases"]
    out = []
    fig, ax = _figure()
    _latency(ax, {None: [c["total_ms"] for c in cases]})
    ax.set_ylabel("questions")
    ax.set_title(f"Answer latency per question ({len(cases)} questions)")
    out.append(("latency", "Latency histogram", fig))

    m = np.array([[sum(c["answerable"] == a and c["abstained"] == b for c in cases) for b in (False, True)]
                  for a in (True, False)])
    fig, ax = _figure()
    ax.imshow(m / np.maximum(m.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    good = np.array([[True, False], [False, True]])
    for i in range(2):
        for j in range(2):
            share = m[i, j] / max(m[i].sum(), 1)
            ax.text(j, i, f"{m[i, j]}\n{share:.0%}", ha="center", va="center", fontsize=13,
                    color="white" if share > 0.6 else "black", fontweight="bold" if good[i, j] else "normal")
    ax.set_xticks([0, 1], ["answered", "abstained"])
    ax.set_yticks([0, 1], ["answerable", "unanswerable"])
    ax.set_title("Abstention confusion matrix")
    out.append(("abstention", "Abstention confusion matrix", fig))

    types = run.get("by_doc_type") or {}
    if types:
        keys = ("gold_hit@5", "gold_cited", "must_contain")
        fig, ax = _figure(max(6.4, 1.5 * len(types) + 1.5), 3.8)
        x = np.arange(len(types))
        for i, k in enumerate(keys):
            vals = [types[t][k] for t in types]
            bars = ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=k)
            ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.set_xticks(x, [f"{t}\n(n={types[t]['questions']})" for t in types])
        ax.set_ylim(0, 1.25)
        ax.set_ylabel("share of answerable questions")
        ax.legend(loc="upper center", ncol=3, fontsize=8)
        ax.set_title("By doc type of the gold documents")
        out.append(("doc_types", "Per-doc-type breakdown", fig))

    ranks = [c["gold_ranks"] for c in cases if c["answerable"] and c.get("gold_ranks")]
    if ranks:
        kmax = max(int(run.get("top_k") or 1), max((r for rs in ranks for r in rs if r), default=1))
        ks = np.arange(1, kmax + 1)
        rec = [np.mean([sum(r is not None and r <= k for r in rs) / len(rs) for rs in ranks]) for k in ks]
        fig, ax = _figure()
        ax.plot(ks, rec, marker="o", markersize=3)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (distinct documents among the answer's hits)")
        ax.set_ylabel("recall of gold documents")
        ax.grid(alpha=0.3)
        ax.set_title(f"Gold-document recall@k over the hits ({len(ranks)} answerable)")
        out.append(("gold_recall", "Gold-document recall@k", fig))
    return out


def recall_curve(rows: list[dict], mode: str, kmax: int) -> list[float]:
    """Mean recall@k for k = 1..kmax from each query's relevant ranks."""
    import numpy as np

    ranks = [(np.asarray(r["modes"][mode]["ranks"], dtype=int), r["relevant"]) for r in rows]
    return [float(np.mean([(rs <= k).sum() / n for rs, n in ranks])) for k in range(1, kmax + 1)]


def retrieval_plots(run: dict) -> list[tuple[str, str, object]]:
    """(file key, title, Figure): recall@k curve, latency histogram, per-query metric distribution."""
    import numpy as np

    rows, modes = run["per_query"], run["modes"]
    kmax = min(100, int(run["settings"]["top_k"]))
    out = []
    fig, ax = _figure()
    for mode in modes:
        ax.plot(range(1, kmax + 1), recall_curve(rows, mode, kmax), label=mode, color=_COLORS.get(mode))
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (documents)")
    ax.set_ylabel("recall@k")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(f"Recall@k, k = 1..{kmax} ({len(rows)} queries)")
    out.append(("recall_at_k", "Recall@k curve", fig))

    fig, ax = _figure()
    _latency(ax, {mode: [r["modes"][mode]["ms"] for r in rows] for mode in modes})
    ax.set_ylabel("queries")
    ax.set_title(f"Search latency per query (top_k={run['settings']['top_k']})")
    out.append(("latency", "Latency histogram", fig))

    metrics = run["metrics"]
    fig, axes = _figure(11, 3.4, ncols=len(metrics), sharey=True)
    bins = np.linspace(0, 1, 6)
    for ax, k in zip(np.atleast_1d(axes), metrics):
        ax.hist([[r["modes"][m][k] for r in rows] for m in modes], bins=bins, label=modes,
                color=[_COLORS.get(m, "#777") for m in modes])
        ax.set_title(k)
        ax.set_xlabel("per-query value")
    np.atleast_1d(axes)[0].set_ylabel("queries")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    out.append(("per_query", "Per-query metric distribution", fig))
    return out


# -- files ---------------------------------------------------------------------------------------
def to_html(markdown_text: str, images: dict[str, bytes], title: str) -> str:
    """The Markdown report as one HTML page; PNG references become data: URIs."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")
    for name, png in images.items():
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        body = body.replace(f'src="{name}"', f'src="{uri}"')
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "run"


def default_dir(name: str, root: Path | None = None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = (root or Path.cwd()) / ".lore-eval" / "runs" / f"{stamp}-{_slug(name)}"
    d, n = base, 1
    while d.exists():  # two runs of one name in the same second keep both
        n += 1
        d = base.with_name(f"{base.name}-{n}")
    return d


def locations(out: str | Path) -> tuple[Path, Path, Path, str]:
    """(run file, Markdown, HTML, prefix for plot files) for a folder or a `*.json` path."""
    out = Path(out)
    if out.suffix.lower() == ".json":
        return out, out.with_suffix(".md"), out.with_suffix(".html"), f"{out.stem}-"
    return out / "run.json", out / "report.md", out / "report.html", ""


def write_run(run: dict, out: str | Path) -> dict:
    """Write the run file, its plots and both reports; return their paths (also kept in the run file)."""
    run_file, md_file, html_file, prefix = locations(out)
    run_file.parent.mkdir(parents=True, exist_ok=True)
    kind = run.get("kind")
    figures = qa_plots(run) if kind == "qa" else retrieval_plots(run) if kind == "retrieval" else None
    if figures is None:
        raise ValueError(f"unknown run kind {kind!r}: expected 'qa' or 'retrieval'")
    pngs: dict[str, bytes] = {}
    images: list[tuple[str, str]] = []
    for key, title, fig in figures:
        name = f"{prefix}{key}.png"
        pngs[name] = png_bytes(fig)
        (run_file.parent / name).write_bytes(pngs[name])
        images.append((title, name))
    text = qa_markdown(run, images) if kind == "qa" else retrieval_markdown(run, images)
    title = html.unescape(re.sub(r"\\(.)", r"\1", text.splitlines()[0].lstrip("# ")))
    md_file.write_text(text, encoding="utf-8")
    html_file.write_text(to_html(text, pngs, title), encoding="utf-8")
    paths = {"run": str(run_file), "md": str(md_file), "html": str(html_file),
             "plots": [str(run_file.parent / n) for n in pngs]}
    run_file.write_text(json.dumps({**run, "report": paths}, indent=1), encoding="utf-8")
    return paths


def screenshot(html_file: str | Path, png_file: str | Path, width: int = 1100) -> Path:
    """The top of a report page (up to its last plot) as a PNG, through headless Chromium (for READMEs)."""
    import shutil

    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"]) if exe else p.chromium.launch()
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(Path(html_file).resolve().as_uri())
            bottom = page.evaluate("Math.max(...[...document.images].map(i => i.getBoundingClientRect().bottom"
                                   " + window.scrollY), 400)")
            page.screenshot(path=str(png_file), full_page=True, clip={"x": 0, "y": 0, "width": width,
                                                                      "height": bottom + 16})
        finally:
            browser.close()
    return Path(png_file)


def main(argv: list[str] | None = None) -> int:
    """Re-render a run's reports from its run file (after a report change), optionally with a screenshot."""
    import argparse

    ap = argparse.ArgumentParser(description="python evals/report.py RUN [--png FILE]")
    ap.add_argument("run", type=Path, help="run folder or run JSON written by `lore eval qa|retrieval`")
    ap.add_argument("--png", type=Path, help="also save the top of report.html as this PNG (needs chromium)")
    args = ap.parse_args(argv)
    run_file = args.run / "run.json" if args.run.is_dir() else args.run
    run = json.loads(run_file.read_text(encoding="utf-8"))
    run.pop("report", None)
    paths = write_run(run, args.run)
    if args.png:
        paths["png"] = str(screenshot(paths["html"], args.png))
    print(json.dumps(paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
