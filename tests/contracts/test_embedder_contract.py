"""The Embedder contract (ingest/embedders.py), run against every implementation: the ONNX default, the
sentence-transformers (torch) backend and the hash embedder (the `emb` fixture, tests/contracts/conftest.py).
What chunking and search rely on."""

from __future__ import annotations

import numpy as np

TEXTS = ["Unused PTO carries over up to 40 hours.", "The payments API allows 100 requests per minute per key.",
         "", "Überstunden werden im Folgemonat ausgeglichen. 残業は翌月に精算します。", "word " * 600]


def test_documents_embed_to_unit_vectors_of_the_declared_size(emb):
    v = emb.embed_documents(TEXTS)
    assert v.shape == (len(TEXTS), emb.dim) and v.dtype == np.float32
    norms = np.linalg.norm(v[[0, 1, 3, 4]], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3)
    assert emb.embed_documents([]).shape[0] == 0


def test_the_same_text_gives_the_same_vector_alone_or_in_a_batch(emb):
    batch = emb.embed_documents(TEXTS[:2])
    alone = emb.embed_documents([TEXTS[1]])[0]
    assert np.allclose(batch[1], alone, atol=1e-5)
    q = emb.embed_query(TEXTS[0])
    assert q.shape == (emb.dim,) and np.allclose(q, emb.embed_query(TEXTS[0]))


def test_related_texts_are_closer_than_unrelated_ones(emb):
    a, b, c = emb.embed_documents(["PTO carry over hours policy", "How many PTO hours carry over?",
                                   "Kubernetes pod eviction thresholds"])
    assert a @ b > a @ c


def test_tokens_are_counted_and_located_consistently(emb):
    assert emb.model_id and emb.max_tokens > 0
    counts = emb.count_tokens(TEXTS)
    assert len(counts) == len(TEXTS) and counts[2] == 0 and counts[4] > emb.max_tokens  # counted, not cut
    spans = emb.token_offsets(TEXTS[0])
    assert len(spans) == counts[0]
    assert all(0 <= s < e <= len(TEXTS[0]) for s, e in spans) and spans == sorted(spans)
