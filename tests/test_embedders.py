"""The default ONNX int8 backend: exported offline from the bundled model, cached, faithful to torch."""

import numpy as np
import pytest

from ingest.errors import ConfigError
from ingest.onnx_embedder import OnnxEmbedder

TEXTS = [
    "Employees accrue 1.5 days of paid time off per month of service.",
    "The payments API rejects requests without an Idempotency-Key header with HTTP 400.",
    "On 2025-03-14 the checkout service was unavailable for 47 minutes after a bad deploy.",
    "Unused PTO up to five days carries over into the next calendar year.",
]


def test_onnx_vectors_match_torch(embedder, torch_embedder):
    a = embedder.embed_documents(TEXTS)
    b = torch_embedder.embed_documents(TEXTS)
    assert a.shape == b.shape == (4, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.98, cos  # per-channel int8 keeps the model's geometry
    # and the ranking a query induces is the same
    q = "how much vacation carries over"
    top = np.argmax(a @ embedder.embed_query(q))
    assert top == np.argmax(b @ torch_embedder.embed_query(q)) and top in (0, 3)  # a PTO passage
    assert embedder.model_id == "onnx-int8:all-MiniLM-L6-v2" != torch_embedder.model_id


def test_export_is_cached_and_reused(embedder, onnx_cache):
    path = embedder.onnx_path
    assert path.exists() and path.parent.parent == onnx_cache
    before = path.stat().st_mtime_ns
    again = OnnxEmbedder(cache_dir=onnx_cache)
    assert again.onnx_path == path
    assert np.allclose(again.embed_documents(TEXTS[:1]), embedder.embed_documents(TEXTS[:1]), atol=1e-6)
    assert path.stat().st_mtime_ns == before  # not exported again
    assert not list(path.parent.glob("*.tmp"))  # no half-written export left behind


def test_long_text_is_truncated_not_an_error(embedder):
    v = embedder.embed_documents(["word " * 2000, ""])
    assert v.shape == (2, 384) and np.isfinite(v).all()
    assert embedder.embed_documents([]).shape[0] == 0


def test_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        OnnxEmbedder(batch_size=0, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="LORE_EMBEDDING__MODEL"):
        OnnxEmbedder("no-such-model-anywhere", cache_dir=tmp_path)


def test_transient_batches_match_one_by_one_vectors(embedder):
    """The answerer's batched path (never stored) agrees with the stored path, in the input order."""
    import numpy as np

    texts = ["Alcohol is not reimbursed.", "Book economy class for flights under 6 hours, premium economy for "
             "flights of 6 hours or longer.", "x", "The daily meal allowance is $75 per day in the United States."]
    one = embedder.embed_documents(texts)
    batch = embedder.embed_transient(texts)
    assert batch.shape == one.shape
    cos = (one * batch).sum(axis=1)
    assert (cos > 0.95).all(), cos  # the int8 batch effect (ingest/onnx_embedder.py)
    assert np.argmax(batch @ embedder.embed_query("is wine reimbursed?")) == 0
