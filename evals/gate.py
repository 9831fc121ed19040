"""The quality gate: a small eval over the bundled sample corpus against thresholds kept in evals/gate.json.

`lore eval gate` and tests/evals/test_quality_gate.py (so `make test`) run it; the current LORE_* settings
apply, which is how a degraded setting is shown to fail. A metric is named as in `lore eval qa --json`,
nested ones with a dot (`abstention.recall`); each threshold is `{"min": x}` or `{"max": x}`.
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.stack import Stack
from ingest.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
GATE_FILE = REPO / "evals" / "gate.json"


def load_gate(path: str | Path = GATE_FILE) -> dict:
    """The gate file, checked: dataset, corpus and one min or max per metric."""
    path = Path(path)
    try:
        gate = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: gate file not found; pass --gate a JSON file like evals/gate.json") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); fix the gate file") from exc
    for key in ("dataset", "corpus", "thresholds"):
        if key not in gate:
            raise ConfigError(f"{path}: the gate file needs {key!r} (see evals/gate.json)")
    for metric, t in gate["thresholds"].items():
        if not isinstance(t, dict) or len(t) != 1 or next(iter(t)) not in ("min", "max") \
                or not isinstance(next(iter(t.values())), (int, float)):
            raise ConfigError(f"{path}: threshold of {metric!r} must be {{\"min\": number}} or {{\"max\": number}}, "
                              f"got {t!r}")
    gate["path"] = str(path)
    return gate


def value(res: dict, metric: str):
    """A metric of a `run_qa` result by name; nested names use a dot (`abstention.recall`)."""
    v = res
    for part in metric.split("."):
        if not isinstance(v, dict) or part not in v:
            raise ConfigError(f"gate metric {metric!r} is not in the eval result; use a name from "
                              "`lore eval qa --json` (nested: abstention.recall)")
        v = v[part]
    return v


def check(res: dict, thresholds: dict) -> list[dict]:
    """Every metric against its threshold, in the gate file's order."""
    out = []
    for metric, t in thresholds.items():
        (kind, limit), v = next(iter(t.items())), value(res, metric)
        ok = v >= limit if kind == "min" else v <= limit
        sign = "<" if kind == "min" else ">"
        out.append({"metric": metric, "value": v, kind: limit, "passed": ok,
                    "message": f"{metric} {v:.4f} {'meets' if ok else sign} {kind} {limit:.4f}"})
    return out


def run_gate(stack: Stack, data_dir: str | Path | None = None, gate_path: str | Path = GATE_FILE,
             progress: bool = False) -> dict:
    """Run the gate's eval with the stack's settings; `passed` is False when any metric is past its threshold."""
    from evals.qa_eval import run_qa

    gate = load_gate(gate_path)
    res = run_qa(REPO / gate["dataset"], stack, REPO / gate["corpus"], data_dir, progress=progress)
    checks = check(res, gate["thresholds"])
    failed = [c for c in checks if not c["passed"]]
    message = ("quality gate passed: " + ", ".join(f"{c['metric']} {c['value']:.3f}" for c in checks) if not failed
               else f"quality gate failed ({len(failed)} of {len(checks)} metrics, thresholds in {gate['path']}): "
               + "; ".join(c["message"] for c in failed))
    return {"passed": not failed, "failed": [c["metric"] for c in failed], "message": message, "checks": checks,
            "gate": gate["path"], "dataset": gate["dataset"], "corpus": gate["corpus"], "run": res}
