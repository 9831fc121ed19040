"""Optional second stage: a sentence-transformers CrossEncoder rescoring the fused top passages."""

from __future__ import annotations

import threading
from typing import Sequence

from ingest.errors import ConfigError


class CrossEncoderReranker:
    """Any sentence-transformers CrossEncoder name or local folder; loaded once, on first use."""

    def __init__(self, model: str, batch_size: int = 32) -> None:
        if not model or not model.strip():
            raise ConfigError("LORE_RETRIEVAL__RERANKER is empty; give a CrossEncoder name or folder, or unset it")
        if batch_size < 1:
            raise ConfigError(f"reranker batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.model_id = f"cross-encoder:{model.rstrip('/').rsplit('/', 1)[-1]}"
        self._ce = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._ce is None:
                from ingest.embedders import torch_threads_sleep

                with torch_threads_sleep():
                    from sentence_transformers import CrossEncoder
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI search
                try:
                    self._ce = CrossEncoder(self.model, device="cpu")
                except (OSError, ValueError) as exc:
                    raise ConfigError(
                        f"cannot load reranker {self.model!r} ({exc}); set LORE_RETRIEVAL__RERANKER to a local "
                        "CrossEncoder folder (no downloads happen at run time) or unset it") from exc
        return self._ce

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        scores = self._load().predict([(query, p) for p in passages], batch_size=self.batch_size,
                                      show_progress_bar=False)
        return [float(s) for s in scores]
