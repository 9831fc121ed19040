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


# Texts the tokenizer must treat exactly as transformers does: accents (composed and combining), CJK, emoji,
# right-to-left, control and zero-width characters, literal special tokens, code, and texts past the window.
VARIED = [
    "", " ", "\n\t ", "a", "Résumé naïve café — “quotes” ‘and’ …", "Re\u0301sume\u0301 with combining accents",
    "東京の会議室は午後3時から予約できます。", "한국어 문장과 中文 混合 text", "Emoji 🚀🔥 and flags 🇵🇹 👩‍💻",
    "עברית וערבית: مرحبا بالعالم", "zero\u200bwidth\u00a0nbsp\u2028line sep\x00nul\x07bell", "[CLS] [SEP] [PAD] [MASK] [UNK] x",
    "def f(x): return {'a': x ** 2}  # O(n) <br/> &amp; https://example.com/a?b=c#d",
    "ALL CAPS AND MiXeD cAsE", "İstanbul ǅ ß ﬁ Ⅻ ①", "word " * 600, "supercalifragilisticexpialidocious" * 40,
    "The payments API rejects requests without an Idempotency-Key header with HTTP 400. " * 30,
]


@pytest.fixture(scope="module")
def hf_tokenizer(embedder):
    """The reference: transformers' AutoTokenizer, as the ONNX backend used it before (issue 16)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedder.model_dir), local_files_only=True)


def _corpus_texts(limit: int = 40) -> list[str]:
    from tests.support import ENTERPRISE, SAMPLES

    files = sorted(p for d in (SAMPLES, ENTERPRISE) for p in d.rglob("*") if p.suffix in (".md", ".rst", ".html"))
    return [p.read_text(errors="replace") for p in files[:limit]]


def test_tokenizer_matches_transformers(embedder, hf_tokenizer):
    """Counts, offsets and model inputs equal AutoTokenizer's on every text: chunk sizes and vectors keep."""
    texts = VARIED + _corpus_texts()
    ref = hf_tokenizer(texts, add_special_tokens=False, truncation=False)
    assert embedder.count_tokens(texts) == [len(ids) for ids in ref["input_ids"]]
    assert embedder.count_tokens([]) == []
    for t in texts:
        want = hf_tokenizer(t, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        assert embedder.token_offsets(t) == [tuple(o) for o in want["offset_mapping"]], t[:60]
    model_in = hf_tokenizer(texts, truncation=True, max_length=embedder.max_tokens)
    got = embedder._tok().encode(texts)
    for k, t in enumerate(texts):
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            assert got[k][name] == model_in[name][k], (name, t[:60])
    assert max(len(g["input_ids"]) for g in got) == embedder.max_tokens == 256


def test_vectors_equal_those_from_transformers_tokens(embedder, hf_tokenizer):
    """The same token ids give bit-identical vectors (the stored vectors of earlier ingests stay valid)."""
    texts = VARIED[:8] + VARIED[-3:]
    enc = hf_tokenizer(texts, truncation=True, max_length=embedder.max_tokens)
    session = embedder._load()
    want = np.stack([embedder._run(session, {n: enc[n][k] for n in enc}) for k in range(len(texts))])
    assert np.array_equal(embedder.embed_documents(texts), want.astype(np.float32))


def test_export_key_is_the_model_content(embedder, onnx_cache, tmp_path):
    """A copy of the model folder elsewhere (another install) finds the same export; a changed model does not."""
    import shutil

    embedder.embed_query("exported before the copy looks for it")
    copy = tmp_path / "elsewhere" / "MiniLM"
    shutil.copytree(embedder.model_dir, copy)
    other = OnnxEmbedder(str(copy), cache_dir=onnx_cache)
    assert other.onnx_path == embedder.onnx_path and other.onnx_path.exists()
    cfg = copy / "config.json"
    cfg.write_text(cfg.read_text() + "\n")  # same size would do too: a new mtime means hashing again
    assert OnnxEmbedder(str(copy), cache_dir=onnx_cache).onnx_path != embedder.onnx_path
    assert (onnx_cache / "digests.json").exists()


def test_torch_threads_sleep_while_torch_loads_only():
    """OMP_WAIT_POLICY=PASSIVE is set for torch's OpenMP runtime as it loads, then unset; an operator's value wins."""
    import os
    import subprocess
    import sys

    code = ("import os; from ingest.embedders import torch_threads_sleep\n"
            "with torch_threads_sleep():\n    seen = os.environ.get('OMP_WAIT_POLICY'); import torch\n"
            "print(seen, os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for preset, want in ((None, "PASSIVE None"), ("ACTIVE", "ACTIVE ACTIVE")):
        run_env = env if preset is None else {**env, "OMP_WAIT_POLICY": preset}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env, timeout=300)
        assert out.stdout.strip() == want, out.stderr[-1000:]
