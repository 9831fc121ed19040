"""ONNX Runtime backend: the same sentence-transformers model, exported offline and int8-quantized."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.embedders import DEFAULT_MODEL, _HFTokenizerMixin, _model_label, resolve_model, st_pooling
from ingest.errors import ConfigError

log = logging.getLogger(__name__)
EXPORT_VERSION = "onnx-export-v1"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _export(model_dir: Path, out: Path, quantize: bool) -> None:
    """Export the transformer to ONNX with torch, then quantize weights to int8 per channel."""
    from transformers import AutoModel, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    enc = tok(["export sample text"], return_tensors="pt")
    names = [n for n in _INPUTS if n in enc]
    fp32 = out.with_suffix(".fp32.onnx.tmp")
    with warnings.catch_warnings(), _quiet_root_logger():
        warnings.simplefilter("ignore")  # tracer notes about shapes that are dynamic axes anyway
        _export_graph(model, names, enc, fp32, tmp := out.with_suffix(".onnx.tmp"), quantize)
    os.replace(tmp, out)  # atomic: a killed export never leaves a half-written model behind


@contextmanager
def _quiet_root_logger():
    """onnxruntime's quantizer logs a pre-processing hint on the root logger at WARNING."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def onnxruntime():
    """onnxruntime with its telemetry off. Its 1DS provider looks up Microsoft's event host when its
    environment starts (a DNS query an air-gapped site sees as phoning home): only ORT_DISABLE_TELEMETRY,
    set before that (ingest/__init__.py), stops it; the call below silences events after."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    ort.disable_telemetry_events()
    return ort


def _export_graph(model, names, enc, fp32: Path, tmp: Path, quantize: bool) -> None:
    import torch

    onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class _Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            return self.m(**dict(zip(names, args))).last_hidden_state

    axes = {n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(_Wrap(model), tuple(enc[n] for n in names), str(fp32), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                          dynamo=False)
    if quantize:
        # per-channel MatMul weights: per-tensor int8 costs this model ~0.06 cosine to its fp32 self
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        fp32.unlink()
    else:
        fp32.rename(tmp)


class OnnxEmbedder(_HFTokenizerMixin):
    """Runs an ONNX export of a sentence-transformers model; exports once into `cache_dir`."""

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: str | Path = ".lore/models",
                 batch_size: int = 32, quantize: bool = True, threads: int | None = None) -> None:
        if batch_size < 1:
            raise ConfigError(f"embedding batch_size must be at least 1, got {batch_size}")
        self.model_dir = Path(resolve_model(model))
        if not (self.model_dir / "config.json").exists():
            raise ConfigError(
                f"the onnx backend needs a local model folder, got {model!r}; set LORE_EMBEDDING__MODEL "
                "to a sentence-transformers folder or use LORE_EMBEDDING__BACKEND=torch"
            )
        self.batch_size = batch_size
        self.quantize = quantize
        self.threads = threads
        self.cache_dir = Path(cache_dir)
        label = _model_label(str(self.model_dir))
        self.model_id = f"onnx{'-int8' if quantize else ''}:{label}"
        self.pooling, self.normalize, self.max_tokens = st_pooling(self.model_dir)
        self._session = None
        self._tokenizer = None
        self._dim: int | None = None
        self._lock = threading.Lock()
        self._tok_lock = threading.Lock()

    @property
    def onnx_path(self) -> Path:
        weights = next((p for p in ("model.safetensors", "pytorch_model.bin") if (self.model_dir / p).exists()), "")
        stat = (self.model_dir / weights).stat() if weights else None
        key = f"{EXPORT_VERSION}|{self.model_dir.resolve()}|{stat.st_size if stat else 0}|{self.quantize}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.cache_dir / f"{self.model_dir.name}-{digest}" / ("model_int8.onnx" if self.quantize else "model.onnx")

    def _load(self):
        with self._lock:
            if self._session is None:
                from filelock import FileLock

                ort = onnxruntime()

                path = self.onnx_path
                path.parent.mkdir(parents=True, exist_ok=True)
                with FileLock(str(path) + ".lock"):
                    if not path.exists():
                        log.info("exporting %s to ONNX at %s (once)", self.model_dir, path)
                        _export(self.model_dir, path, self.quantize)
                opts = ort.SessionOptions()
                if self.threads:
                    opts.intra_op_num_threads = self.threads
                self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                self._inputs = [i.name for i in self._session.get_inputs()]
        return self._session

    def _tok(self):
        with self._lock:
            if self._tokenizer is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from transformers import AutoTokenizer
                from transformers.utils import logging as hf_logging

                hf_logging.set_verbosity_error()  # chunk sizing tokenizes long blocks on purpose
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        return self._tokenizer

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed_documents(["dimension probe"]).shape[1])
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text, each computed from that text alone (no padding, no batch neighbours).

        The int8 export quantizes activations with one scale per input tensor, so texts run in one batch
        change each other's vectors (by up to ~0.03 per component), and a text's vector would depend on
        which chunks happened to be embedded with it: a crashed-then-rerun ingest would store other
        vectors than a clean run. Alone, a vector depends on its text only; on CPU that costs no
        throughput (padding a batch to its longest text costs more than separate runs save).
        """
        session = self._load()
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        out: list[np.ndarray] = []
        for i in range(0, len(texts), self.batch_size):  # tokenized in groups, run one by one
            enc = self._tokenize(list(texts[i:i + self.batch_size]), truncation=True, max_length=self.max_tokens)
            for k in range(len(enc["input_ids"])):
                out.append(self._run(session, {n: enc[n][k] for n in _INPUTS if n in enc}))
        result = np.stack(out).astype(np.float32)
        self._dim = result.shape[1]
        return result

    def embed_transient(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors that are compared once and never stored (the answerer's candidate sentences): texts of
        similar length run together in padded batches, several times faster than one run each. A vector
        may differ from `embed_documents` by the int8 batch effect described there."""
        session = self._load()
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        enc = self._tokenize(list(texts), truncation=True, max_length=self.max_tokens)
        order = sorted(range(len(texts)), key=lambda k: len(enc["input_ids"][k]))
        out: dict[int, np.ndarray] = {}
        for i in range(0, len(order), 16):
            group = order[i:i + 16]
            width = max(len(enc["input_ids"][k]) for k in group)
            feed = {}
            for n in self._inputs:
                rows = enc[n] if n in enc else [[0] * len(enc["input_ids"][k]) for k in range(len(texts))]
                feed[n] = np.asarray([list(rows[k]) + [0] * (width - len(rows[k])) for k in group], dtype=np.int64)
            hidden = session.run(None, feed)[0]
            mask = feed["attention_mask"].astype(np.float32)[:, :, None]
            vecs = hidden[:, 0] if self.pooling == "cls" else (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            if self.normalize:
                vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            out.update(zip(group, vecs))
        return np.stack([out[k] for k in range(len(texts))]).astype(np.float32)

    def _run(self, session, enc: dict) -> np.ndarray:
        feed = {n: np.asarray([enc[n]], dtype=np.int64) for n in self._inputs if n in enc}
        if "token_type_ids" in self._inputs and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        hidden = session.run(None, feed)[0][0]
        if self.pooling == "cls":
            vec = hidden[0]
        else:
            mask = np.asarray(enc["attention_mask"], dtype=np.float32)[:, None]
            vec = (hidden * mask).sum(0) / max(float(mask.sum()), 1e-9)
        if self.normalize:
            vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        return vec

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]
