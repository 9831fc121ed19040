"""Train the offline answerer's sentence scorer (assistant/reader.py) on the dev question sets.

Usage: lore eval train-reader [--out assistant/reader-v1.json] [--json]

Every dev question is searched as Lore searches it (real ingest, real embedder, hybrid retrieval);
each candidate sentence of its top passages gets the reader's features and a label: 1 when it comes
from a gold document and holds one of the question's `must_contain` facts, else 0 (every sentence
shown for an unanswerable question is a 0). A logistic regression on standardized features is fitted
with scikit-learn and saved as a few hundred bytes of JSON.

Reported: leave-one-set-out P@1 (share of questions with at least one answering sentence whose
top-scored sentence answers) for the learned weights and for the hand weights they replace. The
held-out set (enterprise_test3) is never read here. Data card: docs/reader.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from assistant.extractive import ExtractiveConfig, hand_scores
from assistant.reader import ANSWERABLE, FEATURES, WEIGHTS, Reader, ReaderModel
from evals.qa_eval import _norm, ingest_for, is_gold, load_dataset, stack_for
from evals.stack import Stack

REPO = Path(__file__).resolve().parents[1]

SHARED = REPO.parent / "shared" / "corpora" / "enterprise"
TRAIN_SETS = (("acme_dev", REPO / "samples" / "acme"), ("enterprise_dev", SHARED), ("enterprise_test", SHARED),
              ("enterprise_test2", SHARED), ("enterprise_dev2", SHARED))
HELD_OUT = ("enterprise_test3",)
C = 0.5  # inverse regularization strength


def collect(stack: Stack, progress: bool = True) -> list[dict]:
    """One record per question: its set, candidate features and labels."""
    from dataclasses import replace

    from assistant.extractive import unit_features
    from ingest.access import Principal

    out = []
    for name, corpus in TRAIN_SETS:
        path = REPO / "evals" / "datasets" / f"{name}.jsonl"
        if not path.is_file():
            continue
        rows = load_dataset(path)
        at = stack_for(corpus, None, stack)
        ingest_for(at, corpus, progress)
        assistant = at.assistant()
        cfg = replace(assistant.config, reader=None)
        for row in rows:
            who = Principal(row.get("user"), tuple(row.get("groups") or ()))
            hits = list(assistant.retriever.search(row["question"], who, None, assistant.top_k).hits)
            cands, x, _ = unit_features(row["question"], hits, assistant.embedder, cfg)
            facts = [_norm(f) for f in row["must_contain"]]
            y = [float(row["answerable"] and is_gold(hits[i].doc.uri, row["gold_docs"])
                       and any(f in _norm(u.text) for f in facts)) for i, u in cands]
            out.append({"set": name, "id": row["id"], "question": row["question"], "answerable": row["answerable"],
                        "hits": hits, "cands": cands, "x": x, "y": np.array(y)})
    return out


def _logistic(name: str, features: tuple[str, ...], x: np.ndarray, y: np.ndarray) -> ReaderModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=C, max_iter=2000).fit((x - mean) / scale, y)
    return ReaderModel(name, features, mean, scale, lr.coef_[0], float(lr.intercept_[0]), {})


def fit(records: list[dict]) -> Reader:
    """The sentence model on every candidate, then the answerability model on every question."""
    rs = [r for r in records if len(r["x"])]
    sentence = _logistic("sentence", FEATURES, np.vstack([r["x"] for r in rs]), np.concatenate([r["y"] for r in rs]))
    xa = np.vstack([question_x(r, sentence) for r in rs])
    ya = np.array([float(r["answerable"]) for r in rs])
    return Reader(sentence, _logistic("answerable", ANSWERABLE, xa, ya), {})


def question_x(r: dict, sentence: ReaderModel) -> np.ndarray:
    from assistant.extractive import Scored, answer_features

    p = sentence.predict(r["x"])
    scored = sorted((Scored(i, u, float(pp), float(x[0]), float(x[3]), r["hits"][i].doc.id)
                     for (i, u), pp, x in zip(r["cands"], p, r["x"])), key=lambda s: -s.score)
    return answer_features(r["question"], r["hits"], scored)


def abstention_at(records: list[dict], reader: Reader, max_answerable: float = 0.05) -> dict:
    """Share of unanswerable questions abstaining at the threshold that abstains on at most
    `max_answerable` of the answerable ones."""
    rs = [r for r in records if len(r["x"])]
    conf = reader.answerable.predict(np.vstack([question_x(r, reader.sentence) for r in rs]))
    a = np.sort(conf[[r["answerable"] for r in rs]])
    u = conf[[not r["answerable"] for r in rs]]
    t = float(a[int(max_answerable * len(a))]) if len(a) else 0.5
    return {"threshold": round(t, 4), "unanswerable_abstained": round(float((u < t).mean()), 4) if len(u) else None,
            "answerable_abstained": round(float((a < t).mean()), 4), "unanswerable": int(len(u))}


def p_at_1(records: list[dict], score) -> tuple[float, int]:
    """Share of the questions with an answering candidate whose best-scored candidate answers."""
    rs = [r for r in records if r["y"].any()]
    return (round(sum(float(r["y"][int(np.argmax(score(r["x"])))]) for r in rs) / len(rs), 4) if rs else 0.0), len(rs)


def train(stack: Stack, out: Path = WEIGHTS, progress: bool = True) -> dict:
    """Collect the training sets' candidates, fit, report leave-one-set-out figures, write `out`."""
    t0 = time.perf_counter()
    records = collect(stack, progress)
    sets = sorted({r["set"] for r in records})
    cv = {}
    for held in sets:
        model = fit([r for r in records if r["set"] != held])
        test = [r for r in records if r["set"] == held]
        learned, n = p_at_1(test, model.sentence.predict)
        cv[held] = {"questions": n, "p@1_learned": learned, "p@1_hand": p_at_1(test, lambda x: hand_scores(x, ExtractiveConfig()))[0],
                    "abstention": abstention_at(test, model)}
    model = fit(records)
    meta = {"trained_on": sets, "held_out_never_read": list(HELD_OUT), "questions": len(records),
            "candidates": int(sum(len(r["y"]) for r in records)), "positives": int(sum(r["y"].sum() for r in records)),
            "unanswerable": sum(not r["answerable"] for r in records), "C": C, "leave_one_set_out": cv,
            "train_p@1": p_at_1(records, model.sentence.predict)[0], "train_abstention": abstention_at(records, model)}
    model = Reader(model.sentence, model.answerable, meta)
    Path(out).write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
    return {**meta, "out": str(out), "run_s": round(time.perf_counter() - t0, 1),
            "weights": {"sentence": dict(zip(FEATURES, model.sentence.coef.round(3).tolist())),
                        "answerable": dict(zip(ANSWERABLE, model.answerable.coef.round(3).tolist()))}}
