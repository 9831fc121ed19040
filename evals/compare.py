"""`lore eval compare RUN_A RUN_B`: per-metric deltas with paired bootstrap CIs, and the questions that flipped.

Both runs answer the same questions (or queries), so the comparison is paired: each bootstrap resample
draws question ids with replacement and scores A and B on the same draw; the 95% interval of B - A
over the resamples says whether a change is larger than the luck of which questions are in the set.
Every share metric is a ratio of sums over questions (a mean over its subset: answerable,
unanswerable, abstained, citations), recomputed on each resample; latency uses percentiles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evals.report import _figure, code, flatten, md, png_bytes, table, to_html
from ingest.errors import ConfigError

RESAMPLES = 2000
_QA_SHARES = ("gold_hit@5", "gold_recall@5", "gold_mrr", "gold_cited", "must_contain", "facts_lead", "cite_precision",
              "citation_validity",
              "abstention_recall", "abstention_precision", "answerable_abstained")
_LOWER_IS_BETTER = ("answerable_abstained",)
_QA_FLIPS = (("must_contain", "pass", "fail"), ("gold_cited", "cited", "not cited"),
             ("gold_hit@5", "in top 5", "not in top 5"), ("citations_valid", "valid", "invalid"))


def load_run(path: str | Path) -> dict:
    """A run file, or a run folder holding run.json."""
    p = Path(path)
    f = p / "run.json" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(f"{path}: no run file; pass a run folder (with run.json) or a run JSON written by "
                          "`lore eval qa` or `lore eval retrieval`")
    try:
        run = json.loads(f.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{f}: not a JSON run file ({exc})") from exc
    if run.get("kind") not in ("qa", "retrieval") or not (run.get("cases") or run.get("per_query")):
        raise ConfigError(f"{f}: not a run file with per-question results; write one with `lore eval qa` or "
                          "`lore eval retrieval` (--out)")
    run["path"] = str(f)
    return run


# -- per-question arrays -------------------------------------------------------------------------
def _qa_arrays(cases: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric -> (numerator, denominator) per question; the metric is sum(num) / sum(den)."""
    def col(key, default=0.0):
        return np.array([float(c.get(key) or default) for c in cases])

    ans = np.array([bool(c["answerable"]) for c in cases], dtype=float)
    abst = np.array([bool(c["abstained"]) for c in cases], dtype=float)
    if all("n_citations" in c for c in cases):
        cit_num, cit_den = col("n_valid"), col("n_citations")
    else:  # run files from before per-question citation counts
        cit_num, cit_den = col("citations_valid"), np.ones(len(cases))
    return {"gold_hit@5": (col("gold_hit@5") * ans, ans), "gold_recall@5": (col("gold_recall@5") * ans, ans),
            "gold_mrr": (col("gold_rr") * ans, ans), "gold_cited": (col("gold_cited") * ans, ans),
            "must_contain": (col("must_contain") * ans, ans), "citation_validity": (cit_num, cit_den),
            "facts_lead": (col("facts_lead") * ans, ans),
            "cite_precision": (col("n_gold_cites") * ans, col("n_citations") * ans),
            "abstention_recall": (abst * (1 - ans), 1 - ans), "abstention_precision": (abst * (1 - ans), abst),
            "answerable_abstained": (abst * ans, ans)}


def _ret_arrays(rows: list[dict], modes: list[str], metrics: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    one = np.ones(len(rows))
    return {f"{m}/{k}": (np.array([r["modes"][m][k] for r in rows], dtype=float), one)
            for m in modes for k in metrics}


def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray | None = None):
    if idx is None:
        d = den.sum()
        return float(num.sum() / d) if d else float("nan")
    n, d = num[idx].sum(axis=1), den[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / np.where(d > 0, d, 1), np.nan)


def _row(metric: str, va: float, vb: float, deltas: np.ndarray, lower_better: bool, n: int) -> dict:
    lo, hi = (np.nanpercentile(deltas, [2.5, 97.5]) if np.isfinite(deltas).any() else (np.nan, np.nan))
    delta = vb - va
    sig = bool(lo > 0 or hi < 0)
    better = None if not sig else (delta < 0) == lower_better
    r = lambda x: None if x is None or not np.isfinite(x) else round(float(x), 4)  # noqa: E731
    return {"metric": metric, "a": r(va), "b": r(vb), "delta": r(delta), "ci95": [r(lo), r(hi)],
            "significant": sig, "better": better, "lower_is_better": lower_better, "over": n}


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap(arrays_a: dict, arrays_b: dict, resamples: int = RESAMPLES, seed: int = 0) -> list[dict]:
    """Paired bootstrap of B - A for every ratio metric: {metric: (numerators, denominators)} per run."""
    if not arrays_a:
        return []
    idx = _draws(len(next(iter(arrays_a.values()))[0]), resamples, seed)
    rows = []
    for metric, (num_a, den_a) in arrays_a.items():
        num_b, den_b = arrays_b[metric]
        deltas = _ratio(num_b, den_b, idx) - _ratio(num_a, den_a, idx)
        rows.append(_row(metric, _ratio(num_a, den_a), _ratio(num_b, den_b), deltas, metric in _LOWER_IS_BETTER,
                         int((den_a > 0).sum())))
    return rows


def latency_rows(la: np.ndarray, lb: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> list[dict]:
    """Paired bootstrap of the p50 and p95 latency differences (ms)."""
    idx = _draws(len(la), resamples, seed)
    rows = []
    for q in (50, 95):
        deltas = np.percentile(lb[idx], q, axis=1) - np.percentile(la[idx], q, axis=1)
        rows.append(_row(f"latency_p{q}_ms", float(np.percentile(la, q)), float(np.percentile(lb, q)), deltas,
                         True, len(la)))
    return rows


# -- flips ---------------------------------------------------------------------------------------
def qa_flips(a: list[dict], b: list[dict]) -> list[dict]:
    """Every question whose outcome changed between the runs, with the direction of the change."""
    out = []
    for ca, cb in zip(a, b):
        base = {"id": ca["id"], "question": ca["question"], "answerable": ca["answerable"]}
        if ca["abstained"] != cb["abstained"]:
            st = lambda c: "abstained" if c["abstained"] else "answered"  # noqa: E731
            out.append({**base, "change": "abstention", "from": st(ca), "to": st(cb),
                        "better": cb["abstained"] != ca["answerable"]})
        for key, yes, no in _QA_FLIPS:
            if key in ca and key in cb and bool(ca[key]) != bool(cb[key]):
                out.append({**base, "change": key, "from": yes if ca[key] else no, "to": yes if cb[key] else no,
                            "better": bool(cb[key])})
    return out


def retrieval_flips(a: list[dict], b: list[dict], modes: list[str], k: int = 10) -> list[dict]:
    """Queries whose first relevant document moved into or out of the top k, per mode."""
    out = []
    for ra, rb in zip(a, b):
        for m in modes:
            fa, fb = (min(r["modes"][m]["ranks"], default=None) for r in (ra, rb))
            ina, inb = fa is not None and fa <= k, fb is not None and fb <= k
            if ina != inb:
                out.append({"id": ra["id"], "question": ra["query"], "change": f"{m}/relevant in top {k}",
                            "from": fa or "not found", "to": fb or "not found", "better": inb})
    return out


# -- compare -------------------------------------------------------------------------------------
def _pair(a: list[dict], b: list[dict]) -> tuple[list[dict], list[dict], list[str], list[str]]:
    by_b = {r["id"]: r for r in b}
    ids_a = {r["id"] for r in a}
    pa = [r for r in a if r["id"] in by_b]
    return pa, [by_b[r["id"]] for r in pa], sorted(ids_a - set(by_b)), sorted(set(by_b) - ids_a)


def settings_diff(a: dict, b: dict) -> dict[str, list]:
    fa, fb = (flatten({"settings": r.get("snapshot") or {}, "models": r.get("models") or {},
                       "dataset": r.get("dataset"), "corpus": r.get("corpus"), "split": r.get("split"),
                       "search_top_k": (r.get("settings") or {}).get("top_k"),
                       "commit": (r.get("git") or {}).get("commit")}) for r in (a, b))
    return {k: [fa.get(k), fb.get(k)] for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


def compare(a: dict, b: dict, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Deltas B - A with paired 95% bootstrap intervals, the changed settings and the flipped questions."""
    if a["kind"] != b["kind"]:
        raise ConfigError(f"cannot compare a {a['kind']} run with a {b['kind']} run; compare two runs of the same kind")
    if resamples < 100:
        raise ConfigError(f"resamples must be at least 100 for a 95% interval, got {resamples}")
    key = "cases" if a["kind"] == "qa" else "per_query"
    pa, pb, only_a, only_b = _pair(a[key], b[key])
    if not pa:
        raise ConfigError("the two runs share no question ids; compare runs of the same dataset")
    notes = []
    if only_a or only_b:
        notes.append(f"{len(only_a)} questions only in A and {len(only_b)} only in B are left out")
    changed = [r["id"] for r, s in zip(pa, pb) if (r.get("question") or r.get("query")) != (s.get("question") or s.get("query"))]
    if changed:
        notes.append(f"{len(changed)} ids have a different question text in B (e.g. {changed[0]!r})")
    if a["kind"] == "qa":
        metrics = bootstrap(_qa_arrays(pa), _qa_arrays(pb), resamples, seed)
        la, lb = (np.array([c["total_ms"] for c in p], dtype=float) for p in (pa, pb))
        metrics += latency_rows(la, lb, resamples, seed)
        flips = qa_flips(pa, pb)
    else:
        modes = [m for m in a["modes"] if m in b["modes"]]
        names = [k for k in a["metrics"] if k in b["metrics"]]
        metrics = bootstrap(_ret_arrays(pa, modes, names), _ret_arrays(pb, modes, names), resamples, seed)
        for m in modes:
            la, lb = (np.array([r["modes"][m]["ms"] for r in p], dtype=float) for p in (pa, pb))
            metrics += [{**row, "metric": f"{m}/{row['metric']}"} for row in latency_rows(la, lb, resamples, seed)]
        flips = retrieval_flips(pa, pb, modes)
    side = lambda r: {"path": r.get("path"), "name": r.get("name"), "created_at": r.get("created_at"),  # noqa: E731
                      "commit": (r.get("git") or {}).get("commit"), "dataset": r.get("dataset")}
    return {"kind": a["kind"], "a": side(a), "b": side(b), "paired": len(pa), "only_a": only_a, "only_b": only_b,
            "notes": notes, "resamples": resamples, "seed": seed, "settings_changed": settings_diff(a, b),
            "metrics": metrics, "flips": flips,
            "improved": [m["metric"] for m in metrics if m["better"] is True],
            "worsened": [m["metric"] for m in metrics if m["better"] is False]}


# -- report --------------------------------------------------------------------------------------
def _fmt(x, metric: str) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.1f}" if metric.endswith("_ms") else f"{x:+.3f}"


def _val(x, metric: str) -> str:
    return "n/a" if x is None else f"{x:.1f}" if metric.endswith("_ms") else f"{x:.3f}"


def compare_markdown(res: dict, plot: str | None = None, max_flips: int = 200) -> str:
    a, b = res["a"], res["b"]
    label = lambda s: md(s.get("name") or s.get("path"))  # noqa: E731
    lines = [f"# Compare: {label(a)} (A) vs {label(b)} (B)", "",
             f"{res['kind']} runs; {res['paired']} paired questions; B - A with 95% paired bootstrap intervals "
             f"({res['resamples']} resamples, seed {res['seed']}). **Bold**: the interval excludes 0.", ""]
    lines += [f"- A: {code(a['path'])} ({a.get('created_at')}, commit {(a.get('commit') or '?')[:10]})",
              f"- B: {code(b['path'])} ({b.get('created_at')}, commit {(b.get('commit') or '?')[:10]})", ""]
    lines += [f"Note: {md(n)}." for n in res["notes"]] + ([""] if res["notes"] else [])
    verdict = lambda m: "" if m["better"] is None else ("better" if m["better"] else "worse")  # noqa: E731
    rows = []
    for m in res["metrics"]:
        d = _fmt(m["delta"], m["metric"])
        ci = f"[{_fmt(m['ci95'][0], m['metric'])}, {_fmt(m['ci95'][1], m['metric'])}]"
        rows.append([md(m["metric"]), _val(m["a"], m["metric"]), _val(m["b"], m["metric"]),
                     f"**{d}**" if m["significant"] else d, ci, verdict(m), m["over"]])
    lines += ["## Metrics", "", table(["metric", "A", "B", "delta", "95% CI", "", "over"], rows)]
    if plot:
        lines += [f"![Deltas with 95% intervals]({plot})", ""]
    lines += ["## Settings that differ", ""]
    lines += [table(["setting", "A", "B"], [[code(k), code(json.dumps(v[0])), code(json.dumps(v[1]))]
                                           for k, v in res["settings_changed"].items()])
              if res["settings_changed"] else "None recorded (same settings, code and models).\n"]
    flips = res["flips"]
    lines += [f"## Questions that changed outcome ({len(flips)})", ""]
    if flips:
        lines += [table(["id", "change", "A", "B", "", "question"],
                        [[md(f["id"]), md(f["change"]), md(f["from"]), md(f["to"]),
                          "better" if f["better"] else "worse", md(f["question"])] for f in flips[:max_flips]])]
    else:
        lines += ["None.", ""]
    return "\n".join(lines)


def delta_plot(res: dict):
    """Forest plot of the share metrics' deltas (latency has its own unit and stays in the table)."""
    rows = [m for m in res["metrics"] if not m["metric"].endswith("_ms") and m["delta"] is not None]
    fig, ax = _figure(7.5, 0.38 * len(rows) + 1.4)
    for i, m in enumerate(rows):
        lo, hi = (x if x is not None else m["delta"] for x in m["ci95"])
        color = "#888" if m["better"] is None else "#2ca02c" if m["better"] else "#d62728"
        ax.plot([lo, hi], [i, i], color=color, linewidth=2.2)
        ax.plot([m["delta"]], [i], "o", color=color)
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [m["metric"] for m in rows])
    ax.invert_yaxis()
    ax.set_xlabel("B - A (95% paired bootstrap interval; green better, red worse, grey not significant)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def write_compare(res: dict, out: str | Path) -> dict:
    """compare.json, compare.md, compare.html (self-contained) and deltas.png in the folder `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png = png_bytes(delta_plot(res))
    (out / "deltas.png").write_bytes(png)
    text = compare_markdown(res, "deltas.png")
    (out / "compare.md").write_text(text, encoding="utf-8")
    (out / "compare.html").write_text(to_html(text, {"deltas.png": png}, "Lore eval compare"), encoding="utf-8")
    paths = {"json": str(out / "compare.json"), "md": str(out / "compare.md"), "html": str(out / "compare.html"),
             "plots": [str(out / "deltas.png")]}
    (out / "compare.json").write_text(json.dumps({**res, "report": paths}, indent=1), encoding="utf-8")
    return paths
