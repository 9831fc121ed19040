"""The offline answerer on real documents: the enterprise dev questions over their gold documents (issue 4).

The whole shared corpus (144 real policies, specs and incident reports, read in place from ../shared) as
`lore ingest` stores it: the session's `enterprise_kb`, ingested once for the CLI test. Floors sit a
little under the figures measured on it (docs/benchmarks.md), so a change that makes answers worse fails
here, not in a support queue.
"""

from __future__ import annotations

import json

import pytest

from assistant.service import Assistant
from evals.qa_eval import answer_all, load_dataset, score
from retriever.search import Retriever

from tests.support import REPO

DEV = REPO / "evals" / "datasets" / "enterprise_dev.jsonl"


@pytest.fixture(scope="module")
def scored(enterprise_kb, embedder):
    from ingest.chroma_store import ChromaChunkStore
    from ingest.sqlite_store import SqliteStore

    d, r = enterprise_kb
    assert r.returncode == 0, r.stderr[-3000:]
    store = SqliteStore(d / "lore.db")
    assistant = Assistant(Retriever(store, ChromaChunkStore(embedder.model_id, path=d / "chroma"), embedder), embedder)
    results = answer_all(load_dataset(DEV), assistant, progress=False)
    return results, score(results, store), store


def test_every_citation_resolves_and_every_quote_is_verbatim(scored):
    results, res, store = scored
    assert res["citations"] > 50 and res["citation_validity"] == 1.0
    for r in results:
        a = r["answer"]
        assert a["status"] in ("extractive", "no_evidence") and a["text"].strip()
        if a["status"] == "no_evidence":
            assert a["citations"] == [] and "does not cover" in a["text"] and a["hits"]
        lead = a["citations"][0]["doc_id"] if a["citations"] else None
        for c in a["citations"]:
            # a marker the text does not use is a further quote from the answer's first document
            assert f"[{c['marker']}]" in a["text"] or c["doc_id"] == lead
            assert len(c["quote"]) <= 400
            assert store.document_text(c["doc_id"])[c["start"]:c["end"]] == c["quote"]


def test_answers_cite_the_right_document_and_keep_the_facts(scored):
    _, res, _ = scored
    misses = [(c["id"], c["text"][:200]) for c in res["cases"] if c["answerable"] and not c["gold_cited"]]
    assert res["gold_cited"] >= 0.9, misses
    # facts in the answer or any quote: 0.575 -> 0.7375 measured when further quotes came in (issue 15)
    assert res["must_contain"] >= 0.7, json.dumps([c for c in res["cases"] if c["answerable"] and not c["must_contain"]])[:3000]
    assert res["facts_lead"] >= 0.53 and res["cite_precision"] >= 0.93


def test_answers_are_short_and_cite_what_answers(scored):
    """Issue 15: a one-fact question gets a sentence or two, not a word budget filled."""
    _, res, _ = scored
    assert res["answer_words_p50"] <= 50, res["answer_words_p50"]
    assert all(c["words"] is None or c["words"] <= 100 for c in res["cases"]), \
        [(c["id"], c["words"]) for c in res["cases"] if c["words"] and c["words"] > 100]


def test_abstention_on_the_dev_questions(scored):
    _, res, _ = scored
    ab = res["abstention"]
    assert ab["answerable_abstained"] <= 0.08 and ab["recall"] >= 0.45 and ab["precision"] >= 0.8, ab
