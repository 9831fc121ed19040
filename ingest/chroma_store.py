"""Vectors in Chroma: embedded PersistentClient by default, a Chroma server through HttpClient."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Protocol, Sequence
from urllib.parse import urlparse

import numpy as np

from ingest.errors import ConfigError, StoreError

log = logging.getLogger(__name__)


class ChunkStore(Protocol):
    """Where chunk vectors live, keyed by chunk id, with filterable metadata.

    >>> store.upsert(["c1"], vectors, [{"doc_id": "d1"}]); store.ids()  # -> {"c1"}
    """

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def ids(self) -> set[str]: ...

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]: ...

    def count(self) -> int: ...


def collection_name(model_id: str) -> str:
    """One collection per embedding model, so switching models never mixes vector spaces."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", model_id).strip("-_").lower()
    return f"lore-{slug}"[:60].rstrip("-_")


class ChromaChunkStore:
    """ChunkStore on a Chroma collection (cosine space); vectors are supplied, never computed here."""

    def __init__(self, model_id: str, path: str | Path | None = None, url: str | None = None) -> None:
        if (path is None) == (url is None):
            raise ConfigError("ChromaChunkStore needs exactly one of path (embedded) or url (server)")
        self.model_id = model_id
        self.path, self.url = path, url
        self._col = None

    def _collection(self):
        if self._col is None:
            import chromadb
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False, allow_reset=False)
            try:
                if self.url:
                    u = urlparse(self.url)
                    if u.scheme not in ("http", "https") or not u.hostname:
                        raise ConfigError(f"LORE_CHROMA_URL={self.url!r} is not a URL like http://127.0.0.1:8000")
                    client = chromadb.HttpClient(host=u.hostname, port=u.port or (443 if u.scheme == "https" else 80),
                                                 ssl=u.scheme == "https", settings=settings)
                else:
                    Path(self.path).mkdir(parents=True, exist_ok=True)
                    client = chromadb.PersistentClient(path=str(self.path), settings=settings)
                self._col = client.get_or_create_collection(
                    collection_name(self.model_id), embedding_function=None,
                    metadata={"hnsw:space": "cosine", "lore:model": self.model_id})
                self._max_batch = client.get_max_batch_size()
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - chromadb raises many connection error types
                where = f"server {self.url}" if self.url else f"folder {self.path}"
                raise StoreError(f"cannot open Chroma at {where} ({exc}); check LORE_CHROMA_URL / LORE_DATA_DIR") from exc
        return self._col

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
        if not len(ids):
            return
        col = self._collection()
        step = max(1, min(self._max_batch, 1000))
        for i in range(0, len(ids), step):
            col.upsert(ids=list(ids[i:i + step]), embeddings=np.asarray(vectors[i:i + step], dtype=np.float32),
                       metadatas=list(metadatas[i:i + step]))

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        col = self._collection()
        for i in range(0, len(ids), 1000):
            col.delete(ids=ids[i:i + 1000])

    def ids(self) -> set[str]:
        col = self._collection()
        out: set[str] = set()
        offset = 0
        while True:
            got = col.get(include=[], limit=5000, offset=offset)["ids"]
            out.update(got)
            if len(got) < 5000:
                return out
            offset += len(got)

    def get(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict]]:
        res = self._collection().get(ids=list(ids), include=["embeddings", "metadatas"])
        return {i: (np.asarray(e, dtype=np.float32), m) for i, e, m in zip(res["ids"], res["embeddings"], res["metadatas"])}

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        res = self._collection().query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=k,
                                       where=where or None, include=["distances"])
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0])]

    def count(self) -> int:
        return self._collection().count()
