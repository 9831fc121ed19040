"""Eval input files: a small BEIR-format set and a JSONL writer."""

from __future__ import annotations

import json
from pathlib import Path


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


BEIR_DOCS = {
    "d1": ("Vitamin D and bone density", "Vitamin D supplements increase bone mineral density in older adults."),
    "d2": ("Aspirin and heart attacks", "Low-dose aspirin lowers the risk of a first heart attack in men."),
    "d3": ("Sleep and memory", "Sleep after learning consolidates declarative memory in students."),
    "d4": ("Coffee and liver", "Coffee drinkers show lower rates of liver cirrhosis."),
}
