"""The QA sets stay valid as the parsers change: every key fact is still where a correct answer can quote it.

Each `must_contain` string of evals/datasets/enterprise_*.jsonl must occur (case-insensitive, whitespace
collapsed, as `lore eval qa` matches it) inside one stored chunk of one of its question's gold documents,
after the real ingest of the whole shared corpus (the `enterprise_kb` fixture, shared with the CLI test).
A parser or chunker change that splits or mangles a fact fails here, instead of silently lowering the eval
figures. Unanswerable questions carry no gold documents and no facts.
"""

from __future__ import annotations

import pytest

from evals.qa_eval import _norm, is_gold, load_dataset
from ingest.sqlite_store import SqliteStore

from tests.support import REPO

SETS = sorted((REPO / "evals" / "datasets").glob("enterprise_*.jsonl"))


@pytest.fixture(scope="module")
def chunks_by_doc(enterprise_kb) -> dict[str, list[str]]:
    """uri -> normalised chunk texts of every document of the corpus."""
    d, r = enterprise_kb
    assert r.returncode == 0, r.stderr[-3000:]
    out: dict[str, list[str]] = {}
    for uri, text in SqliteStore(d / "lore.db")._db.execute(
            "SELECT d.uri, c.text FROM chunks c JOIN documents d USING (doc_id) ORDER BY d.uri, c.ordinal"):
        out.setdefault(uri, []).append(_norm(text))
    return out


def test_there_are_dev_and_held_out_sets():
    assert {s.name for s in SETS} >= {"enterprise_dev.jsonl", "enterprise_test.jsonl", "enterprise_test2.jsonl",
                                      "enterprise_test3.jsonl"}


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.stem)
def test_every_fact_sits_in_one_chunk_of_a_gold_document(path, chunks_by_doc):
    rows = load_dataset(path)
    assert len({r["id"] for r in rows}) == len(rows), "ids must be unique"
    bad = []
    for r in rows:
        if not r["answerable"]:
            assert not r["gold_docs"] and not r["must_contain"], r["id"]
            continue
        assert r["gold_docs"] and 1 <= len(r["must_contain"]) <= 3, r["id"]
        texts = [t for uri, ts in chunks_by_doc.items() if is_gold(uri, r["gold_docs"]) for t in ts]
        assert texts, f"{r['id']}: no gold document {r['gold_docs']} was ingested"
        bad += [f"{r['id']}: {m!r}" for m in r["must_contain"] if not any(_norm(m) in t for t in texts)]
    assert not bad, f"facts no single gold chunk holds: {bad}"


def test_held_out_questions_are_new():
    """No question of a held-out set repeats one of the dev set (a repeat would be tuned on)."""
    dev = {_norm(r["question"]) for r in load_dataset(REPO / "evals" / "datasets" / "enterprise_dev.jsonl")}
    for name in ("enterprise_test.jsonl", "enterprise_test2.jsonl", "enterprise_test3.jsonl"):
        assert not [r["id"] for r in load_dataset(REPO / "evals" / "datasets" / name) if _norm(r["question"]) in dev]


def test_the_reader_never_trains_on_the_held_out_set():
    """evals/train_reader.py reads the dev sets only; no held-out question repeats a training question."""
    from evals.train_reader import HELD_OUT, TRAIN_SETS

    names = {n for n, _ in TRAIN_SETS}
    assert "enterprise_test3" in HELD_OUT and not names & set(HELD_OUT)
    seen = {_norm(r["question"]) for n in names if (REPO / "evals" / "datasets" / f"{n}.jsonl").is_file()
            for r in load_dataset(REPO / "evals" / "datasets" / f"{n}.jsonl")}
    held = [r["id"] for r in load_dataset(REPO / "evals" / "datasets" / "enterprise_test3.jsonl")
            if _norm(r["question"]) in seen]
    assert not held, held
