"""The learned part of the offline answerer: which candidate sentence answers the question.

A logistic model over cheap features of (question, sentence): embedding similarity of the sentence
and of its heading, lexical overlap weighted by rarity, the passage's retrieval rank, whether the
question asks for a figure / a cause / a fix and the sentence gives one, bigram matches, where the
sentence sits. Weights live in `reader-v1.json` beside this file (a few hundred bytes), trained by
`evals/train_reader.py` on the dev question sets (docs/reader.md is the data card). Inference is a dot
product: no extra model, nothing downloaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.errors import ConfigError

WEIGHTS = Path(__file__).with_name("reader-v1.json")
FEATURES = ("sem", "sem_rel", "sem_head", "lex", "lex_rel", "lex_ctx", "lex_doc", "bigram", "prior", "top",
            "qty_fig", "qty_nofig", "intent", "log_words", "list_row", "first", "intro", "negated")


@dataclass(frozen=True)
class ReaderModel:
    """Standardized logistic regression: p = sigmoid(coef . (x - mean) / scale + intercept)."""

    name: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    meta: dict

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict:
        return {"name": self.name, "features": list(self.features), "mean": self.mean.round(6).tolist(),
                "scale": self.scale.round(6).tolist(), "coef": self.coef.round(6).tolist(),
                "intercept": round(self.intercept, 6), "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict, expected: tuple[str, ...], source: str = "reader weights") -> "ReaderModel":
        try:
            names = tuple(data["features"])
            arrays = [np.asarray(data[k], dtype=float) for k in ("mean", "scale", "coef")]
            mean, scale, coef = arrays
            model = cls(str(data["name"]), names, mean, scale, coef, float(data["intercept"]),
                        dict(data.get("meta") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: not a reader weights file ({exc}); retrain with "
                              "`lore eval train-reader`") from exc
        if names != expected or any(a.shape != (len(expected),) for a in arrays) or not all(
                np.isfinite(a).all() for a in arrays):
            raise ConfigError(f"{source}: its features do not match this version of Lore ({len(names)} features); "
                              "retrain with `lore eval train-reader`")
        return model


# Whether the evidence answers the question at all: features of the question and its best candidates.
ANSWERABLE = ("p_top", "p_second", "sem_top", "lex_top", "lex_doc_top", "missing_specific", "any_missing",
              "cover_passage", "qty_nofig_window", "n_specific", "missing_in_best", "type_missing", "asks_type")


@dataclass(frozen=True)
class Reader:
    sentence: ReaderModel  # P(this sentence answers the question)
    answerable: ReaderModel  # P(the evidence answers the question at all): the abstention confidence
    meta: dict

    def to_json(self) -> dict:
        return {"sentence": self.sentence.to_json(), "answerable": self.answerable.to_json(), "meta": self.meta}


_cache: dict[Path, Reader] = {}


def load(path: Path = WEIGHTS) -> Reader:
    if path not in _cache:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            parts = (data["sentence"], data["answerable"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: cannot read the reader weights ({exc}); reinstall Lore or retrain with "
                              "`lore eval train-reader`") from exc
        _cache[path] = Reader(ReaderModel.from_json(parts[0], FEATURES, str(path)),
                              ReaderModel.from_json(parts[1], ANSWERABLE, str(path)), dict(data.get("meta") or {}))
    return _cache[path]


def bigrams(terms: Sequence[str]) -> set[tuple[str, str]]:
    return set(zip(terms, terms[1:]))


def sigmoid_rank(i: int) -> float:
    return 1.0 / math.sqrt(i + 1)
