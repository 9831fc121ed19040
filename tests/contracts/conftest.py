"""Implementations more than one contract suite runs against."""

from __future__ import annotations

import pytest

from ingest.embedders import Embedder, HashEmbedder


@pytest.fixture(params=["onnx", "torch", "hash"])
def emb(request) -> Embedder:
    """Every embedder: the ONNX default, the sentence-transformers (torch) backend and the hash embedder."""
    if request.param == "hash":
        return HashEmbedder()
    return request.getfixturevalue({"onnx": "embedder", "torch": "torch_embedder"}[request.param])
