"""ONNX Runtime backend: the same sentence-transformers model, exported offline and int8-quantized."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.embedders import DEFAULT_MODEL, _model_label, resolve_model, st_pooling, torch_threads_sleep
from ingest.errors import ConfigError

log = logging.getLogger(__name__)
EXPORT_VERSION = "onnx-export-v1"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_DIGESTS = "digests.json"  # in the cache dir: model file -> content hash, keyed by (size, mtime)


def _export(model_dir: Path, out: Path, quantize: bool) -> None:
    """Export the transformer to ONNX with torch, then quantize weights to int8 per channel."""
    with torch_threads_sleep():
        import torch  # noqa: F401 - loaded here, with its threads set to sleep when idle
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" takes no time worth a bar
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


class WordPieces:
    """The model's fast tokenizer (its tokenizer.json) run by `tokenizers` directly, as transformers'
    AutoTokenizer would run it: the same Rust pipeline, without importing transformers (and torch), which
    cost a CLI query seconds. Two copies, each configured once when first used (~25 ms each; a search needs
    only `cut`), so calls never change shared settings and threads need no lock: `plain` counts and maps
    tokens, `cut` encodes model input (special tokens added, truncated to the model's window as
    `truncation=True, max_length=...` does)."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        self.model_dir, self.max_tokens = model_dir, max_tokens

    def _fresh(self):
        from tokenizers import Tokenizer

        path = self.model_dir / "tokenizer.json"
        tok = Tokenizer.from_file(str(path)) if path.exists() else Tokenizer.from_str(self._converted)
        tok.no_padding()
        tok.no_truncation()
        return tok

    @functools.cached_property
    def _converted(self) -> str:
        """Only a slow tokenizer's vocabulary: transformers converts it (once per process)."""
        return _converted_tokenizer(self.model_dir).to_str()

    @functools.cached_property
    def plain(self):
        return self._fresh()

    @functools.cached_property
    def cut(self):
        tok = self._fresh()
        side = _tokenizer_config(self.model_dir).get("truncation_side", "right")
        tok.enable_truncation(self.max_tokens, stride=0, strategy="longest_first", direction=side)
        return tok

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.plain.encode_batch(list(texts), add_special_tokens=False)] if texts else []

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [tuple(o) for o in self.plain.encode(text, add_special_tokens=False).offsets]

    def encode(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        """Model inputs per text, by the names the exported graph uses."""
        return [{"input_ids": e.ids, "attention_mask": e.attention_mask, "token_type_ids": e.type_ids}
                for e in self.cut.encode_batch(list(texts))]


def _tokenizer_config(model_dir: Path) -> dict:
    f = model_dir / "tokenizer_config.json"
    return json.loads(f.read_text()) if f.exists() else {}


def _converted_tokenizer(model_dir: Path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"the onnx backend needs a fast tokenizer (tokenizer.json) in {model_dir}; "
                          "use LORE_EMBEDDING__BACKEND=torch for this model")
    return tok.backend_tokenizer


def content_digest(files: Sequence[Path], cache_dir: Path) -> str:
    """sha256 over the files' bytes: the same model has the same digest wherever it is installed.

    Hashing the 90 MB of MiniLM's weights costs ~60 ms, so each file's hash is remembered in
    `cache_dir/digests.json` under its path, size and mtime, and only a changed file is read again.
    """
    book = cache_dir / _DIGESTS
    try:
        known = json.loads(book.read_text())
    except (OSError, ValueError):
        known = {}
    total, changed = hashlib.sha256(), False
    for f in files:
        st, key = f.stat(), str(f.resolve())
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        entry = known.get(key)
        if not isinstance(entry, dict) or {k: entry.get(k) for k in stamp} != stamp:
            with open(f, "rb") as fh:
                entry = {**stamp, "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}
            known[key], changed = entry, True
        total.update(f"{f.name}:{entry['sha256']};".encode())
    if changed:
        try:  # a read-only cache only costs the next process the hashing again
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = book.with_name(f"{_DIGESTS}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=0))
            os.replace(tmp, book)
        except OSError as exc:
            log.debug("cannot remember model digests in %s: %s", book, exc)
    return total.hexdigest()


class OnnxEmbedder:
    """Runs an ONNX export of a sentence-transformers model; exports once into `cache_dir`."""

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: str | Path = ".lore/models",
                 batch_size: int = 32, quantize: bool = True, threads: int | None = None,
                 spin: bool = False) -> None:
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
        # ONNX Runtime's pool threads busy-wait for work by default: on a busy CPU they take the cores other
        # processes need. 41 sentences with two cores busy elsewhere: 410 -> 277 ms one by one, 267 -> 147 ms
        # batched without it; idle 138 -> 205 ms and 92 -> 96 ms (issue 16): off unless asked for
        self.spin = spin
        self.cache_dir = Path(cache_dir)
        label = _model_label(str(self.model_dir))
        self.model_id = f"onnx{'-int8' if quantize else ''}:{label}"
        self.pooling, self.normalize, self.max_tokens = st_pooling(self.model_dir)
        self._session = None
        self._tokenizer: WordPieces | None = None
        self._onnx_path: Path | None = None
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def onnx_path(self) -> Path:
        """Where the export lives: named by the model's content (weights and config), so any install of
        the same model finds it, and a changed model gets a new export."""
        if self._onnx_path is None:
            weights = [self.model_dir / p for p in ("model.safetensors", "pytorch_model.bin")
                       if (self.model_dir / p).exists()][:1]
            digest = content_digest([*weights, self.model_dir / "config.json"], self.cache_dir)
            key = f"{EXPORT_VERSION}|{digest}|{self.quantize}"  # no path: a folder's name differs per install
            name = f"onnx-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
            self._onnx_path = self.cache_dir / name / ("model_int8.onnx" if self.quantize else "model.onnx")
        return self._onnx_path

    def _load(self):
        with self._lock:
            if self._session is None:
                ort = onnxruntime()
                path = self.onnx_path
                if not path.exists():  # an export appears whole (os.replace) or not at all
                    self._export_once(path)
                opts = ort.SessionOptions()
                if self.threads:
                    opts.intra_op_num_threads = self.threads
                if not self.spin:
                    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                self._inputs = [i.name for i in self._session.get_inputs()]
        return self._session

    def _export_once(self, path: Path) -> None:
        """Export under a file lock, so concurrent first runs (CLI, server, workers) export once."""
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if path.exists():
                return
            t0 = time.perf_counter()
            # on stderr, not only in the log: the one slow start a user should see explained
            print("exporting the embedding model to ONNX (once, ~30 s)...", file=sys.stderr, flush=True)
            log.info("exporting %s to ONNX at %s (once)", self.model_dir, path)
            _export(self.model_dir, path, self.quantize)
            print(f"exported the embedding model to {path} in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)

    def _tok(self) -> WordPieces:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = WordPieces(self.model_dir, self.max_tokens)
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._tok().count(texts)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self._tok().offsets(text)

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
        tok = self._tok()
        out: list[np.ndarray] = []
        for i in range(0, len(texts), self.batch_size):  # tokenized in groups, run one by one
            for enc in tok.encode(texts[i:i + self.batch_size]):
                out.append(self._run(session, enc))
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
        enc = self._tok().encode(texts)
        order = sorted(range(len(texts)), key=lambda k: len(enc[k]["input_ids"]))
        out: dict[int, np.ndarray] = {}
        for i in range(0, len(order), 16):
            group = order[i:i + 16]
            width = max(len(enc[k]["input_ids"]) for k in group)
            feed = {n: np.asarray([enc[k][n] + [0] * (width - len(enc[k][n])) for k in group], dtype=np.int64)
                    for n in self._inputs}
            hidden = session.run(None, feed)[0]
            mask = feed["attention_mask"].astype(np.float32)[:, :, None]
            vecs = hidden[:, 0] if self.pooling == "cls" else (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            if self.normalize:
                vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            out.update(zip(group, vecs))
        return np.stack([out[k] for k in range(len(texts))]).astype(np.float32)

    def _run(self, session, enc: dict) -> np.ndarray:
        feed = {n: np.asarray([enc[n]], dtype=np.int64) for n in self._inputs}
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
