"""The Reranker contract (retriever/search.py), run against every implementation: the sentence-transformers
CrossEncoder (over a tiny random BERT built offline). What `Retriever._rerank` relies on: one float score
per passage, in the passages' order, nothing for no passages, the same scores every time."""

from __future__ import annotations

import math

import pytest

from retriever.search import Reranker
from tests.support.models import tiny_cross_encoder

QUERY = "How many hours of PTO can be carried over?"
PASSAGES = ["Unused PTO carries over up to 40 hours.", "The payments API allows 100 requests per minute.",
            "", "Überstunden werden im Folgemonat ausgeglichen. 残業は翌月に精算します。", "word " * 600]


@pytest.fixture(scope="module", params=["cross-encoder"])
def reranker(request, tmp_path_factory) -> Reranker:
    from retriever.rerank import CrossEncoderReranker

    return CrossEncoderReranker(str(tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))), batch_size=2)


def test_model_id_names_the_model(reranker):
    assert isinstance(reranker.model_id, str) and reranker.model_id.strip()


def test_one_finite_float_per_passage(reranker):
    scores = reranker.score(QUERY, PASSAGES)
    assert isinstance(scores, list) and len(scores) == len(PASSAGES)
    assert all(type(s) is float and math.isfinite(s) for s in scores)


def test_scores_follow_the_passages_order(reranker):
    """Each passage's score is its own, whatever its neighbours or position in the batch."""
    scores = reranker.score(QUERY, PASSAGES)
    rev = reranker.score(QUERY, PASSAGES[::-1])
    assert rev == pytest.approx(scores[::-1], abs=1e-5)
    alone = [reranker.score(QUERY, [p])[0] for p in PASSAGES[:2]]
    assert alone == pytest.approx(scores[:2], abs=1e-5)


def test_no_passages_no_scores(reranker):
    assert reranker.score(QUERY, []) == []
    assert reranker.score(QUERY, ()) == []


def test_deterministic(reranker):
    assert reranker.score(QUERY, PASSAGES) == reranker.score(QUERY, PASSAGES)
