"""Builds Lore's components from settings: the only place that picks backends.

Each builder imports its component's module when called: a CLI command loads only what it uses (the
ingest pipeline and its parsers are not a search's business; issue 16).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from api.settings import Settings
from ingest.embedders import Embedder, HashEmbedder, SentenceTransformerEmbedder
from ingest.errors import ConfigError, LoreError, StoreLocked
from ingest.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from ingest.chroma_store import ChromaChunkStore
    from ingest.pipeline import Ingestor
    from ingest.sources.base import Source
    from ingest.sources.registry import SourceConfig, SourceRegistry
    from assistant.llm import LLM
    from assistant.service import Assistant
    from retriever.search import Retriever

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Lore never downloads a model at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def build_embedder(s: Settings) -> Embedder:
    match s.embedding.backend:
        case "torch":
            return SentenceTransformerEmbedder(s.embedding.model, batch_size=s.embedding.batch_size)
        case "onnx":
            from ingest.onnx_embedder import OnnxEmbedder

            return OnnxEmbedder(s.embedding.model, cache_dir=s.embedding.onnx_cache_dir or Path(s.data_dir) / "models",
                                batch_size=s.embedding.batch_size, spin=s.embedding.spin)
        case "hash":
            return HashEmbedder()
    raise AssertionError(s.embedding.backend)


def build_store(s: Settings) -> SqliteStore:
    return SqliteStore(Path(s.data_dir) / "lore.db")


def build_vectors(s: Settings, embedder: Embedder) -> ChromaChunkStore:
    from ingest.chroma_store import ChromaChunkStore

    if s.chroma_url:
        return ChromaChunkStore(embedder.model_id, url=s.chroma_url)
    return ChromaChunkStore(embedder.model_id, path=Path(s.data_dir) / "chroma")


def build_ingestor(s: Settings, on_event: Callable[[str, dict], None] | None = None, *,
                   embedder: Embedder | None = None, store: SqliteStore | None = None) -> Ingestor:
    from ingest.pipeline import Ingestor

    embedder = embedder or build_embedder(s)
    store = store or build_store(s)
    return Ingestor(store, build_vectors(s, embedder), embedder,
                    max_file_bytes=int(s.ingest.max_file_mb * 2**20), batch_chunks=s.ingest.batch_chunks,
                    parse_workers=s.ingest.parse_workers, on_event=on_event)


def build_keyword_index(s: Settings, store: SqliteStore):
    """The in-memory BM25 accelerator over the registry (docs/decisions/0004-keyword-index.md)."""
    from retriever.keyword_index import KeywordAccelerator

    r = s.retrieval
    return KeywordAccelerator(store, Path(s.data_dir) / "keyword-index", (r.title_weight, r.section_weight, 1.0),
                              r.keyword_index, r.keyword_index_min_chunks)


def refresh_keyword_index(s: Settings, store: SqliteStore) -> bool:
    """After an ingest: build and save the keyword index now when searches would use it, so the first
    search does not wait for it or fall back to FTS5. Returns whether an index was prepared."""
    r = s.retrieval
    if r.keyword_index == "fts5" or (r.keyword_index == "auto" and store.counts()[1] < r.keyword_index_min_chunks):
        return False
    return build_keyword_index(s, store).prepare() is not None


def build_retriever(s: Settings, embedder: Embedder | None = None, store: SqliteStore | None = None,
                    vectors: ChromaChunkStore | None = None) -> Retriever:
    from retriever.rerank import CrossEncoderReranker
    from retriever.search import RetrievalConfig, Retriever

    embedder = embedder or build_embedder(s)
    store = store or build_store(s)
    r = s.retrieval
    weights = (r.title_weight, r.section_weight, 1.0)
    config = RetrievalConfig(fusion=r.fusion, dense_weight=r.dense_weight, rrf_k=r.rrf_k, depth=r.depth,
                             field_weights=weights, dedup_threshold=r.dedup_threshold, rerank_depth=r.rerank_depth)
    reranker = CrossEncoderReranker(r.reranker) if r.reranker else None
    keyword_index = build_keyword_index(s, store)
    return Retriever(store, vectors or build_vectors(s, embedder), embedder, default_acl=tuple(s.default_acl), config=config,
                     reranker=reranker, keyword_index=keyword_index)


def build_llm(s: Settings) -> LLM | None:
    """The configured chat model, or None: answers are then extractive and offline."""
    if not s.llm.enabled:
        return None
    c = s.llm
    if c.gguf is not None:
        from assistant.gguf import GgufLLM

        return GgufLLM(c.gguf, n_ctx=c.context, threads=c.threads, max_tokens=c.max_tokens,
                       temperature=c.temperature, timeout=max(c.timeout, 120.0))
    from assistant.llm import OpenAIChatLLM

    assert c.base_url and c.model  # noqa: S101 - `enabled` says both are set
    return OpenAIChatLLM(c.base_url, c.model, api_key=c.api_key.get_secret_value(), api_version=c.api_version,
                         timeout=c.timeout, max_retries=c.max_retries, temperature=c.temperature,
                         max_tokens=c.max_tokens)


def build_assistant(s: Settings, retriever: Retriever | None = None) -> Assistant:
    from assistant.extractive import ExtractiveConfig
    from assistant.service import Assistant

    retriever = retriever or build_retriever(s)
    return Assistant(retriever, retriever.embedder, llm=build_llm(s), top_k=s.answer.top_k,
                     config=ExtractiveConfig(threshold=s.answer.threshold),
                     prompt_version=s.llm.prompt_version, llm_passages=s.llm.passages, condense=s.llm.condense)


def _clean_url(url: str | None) -> str | None:
    """A URL without user:password, which may carry a credential."""
    from urllib.parse import urlsplit, urlunsplit

    if not url:
        return url
    u = urlsplit(url)
    return urlunsplit(u._replace(netloc=u.hostname + (f":{u.port}" if u.port else ""))) if u.hostname else url


def settings_snapshot(s) -> dict:
    """What decides quality in a run: embedding, retrieval, answer and model settings; never a secret."""
    llm = s.llm
    return {"embedding": {"model": s.embedding.model, "backend": s.embedding.backend},
            "retrieval": s.retrieval.model_dump(mode="json"), "answer": s.answer.model_dump(mode="json"),
            "llm": {"enabled": llm.enabled, "model": llm.model, "base_url": _clean_url(llm.base_url),
                    "azure": bool(llm.api_version), "prompt_version": llm.prompt_version,
                    "passages": llm.passages, "temperature": llm.temperature, "max_tokens": llm.max_tokens,
                    "condense": llm.condense},
            "chroma": "server" if s.chroma_url else "embedded", "default_acl": list(s.default_acl),
            "ingest_exclude": list(s.ingest.exclude)}


class EvalStack:
    """`evals.stack.Stack` from settings: what `lore eval ...` hands an evaluation (evals never import api)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    @property
    def exclude(self) -> list[str]:
        return list(self.settings.ingest.exclude)

    def at(self, data_dir: Path) -> EvalStack:
        return EvalStack(self.settings.model_copy(update={"data_dir": Path(data_dir)}))

    def ingestor(self, on_event: Callable[[str, dict], None] | None = None) -> Ingestor:
        return build_ingestor(self.settings, on_event=on_event)

    def retriever(self):
        return build_retriever(self.settings)

    def assistant(self):
        return build_assistant(self.settings)

    def snapshot(self) -> dict:
        return settings_snapshot(self.settings)


def source_registry(s: Settings) -> SourceRegistry:
    from ingest.sources.registry import SourceRegistry

    return SourceRegistry(Path(s.data_dir) / "sources.db")


def build_source(s: Settings, cfg: SourceConfig) -> Source:
    """The configured source, with its credentials from LORE_SOURCES__TOKENS (never from the data dir)."""
    o = cfg.options
    match cfg.kind:
        case "files":  # a saved `lore ingest`: the same documents, the settings' excludes too
            from ingest.sources.files import FilesSource

            return FilesSource(cfg.name, o["paths"], exclude=[*s.ingest.exclude, *(o.get("exclude") or ())])
        case "git":
            from ingest.sources.git import DEFAULT_LINK, GitSource

            return GitSource(cfg.name, o["repo"], branch=o.get("branch") or "main", paths=o.get("paths") or (),
                             cache_dir=Path(s.data_dir) / "source-cache" / cfg.name,
                             link=o.get("link") or DEFAULT_LINK, exclude=o.get("exclude") or (), acl=cfg.acl)
        case "confluence":
            from ingest.sources.confluence import ConfluenceSource

            secret = s.sources.tokens.get(cfg.name)
            if secret is None or not secret.get_secret_value():
                raise ConfigError(f"source {cfg.name!r} needs a token: set LORE_SOURCES__TOKENS='{{\"{cfg.name}\": "
                                  "\"<API token or personal access token>\"}'")
            flavor = o.get("flavor") or "cloud"
            creds = ({"email": o.get("email"), "token": secret.get_secret_value()} if flavor == "cloud"
                     else {"pat": secret.get_secret_value()})
            return ConfluenceSource(cfg.name, o["base_url"], flavor=flavor, spaces=o.get("spaces") or (), **creds)
    raise ConfigError(f"source {cfg.name!r} has kind {cfg.kind!r}, which this Lore cannot sync")


def sync_source(s: Settings, name: str, *, ingestor: Ingestor | None = None, allow_empty: bool = False,
                registry: SourceRegistry | None = None) -> dict:
    """Sync one configured source and record its report (also when it fails); the report as a dict."""
    from ingest.sync import SyncReport, Syncer

    reg = registry or source_registry(s)
    cfg = reg.get(name)
    run = reg.start(name)
    try:
        ing = ingestor or build_ingestor(s)
        report = Syncer(ing).sync(build_source(s, cfg), doc_type=cfg.doc_type, acl=cfg.acl, owners=cfg.owners,
                                  allow_empty=allow_empty).to_dict()
        if report["added"] or report["updated"] or report["deleted"]:
            refresh_keyword_index(s, ing.store)
    except StoreLocked as exc:  # another writer: not the source's failure
        report = {**SyncReport(name).to_dict(), "status": "busy", "error": f"{exc}; the next sync tries again"}
    except LoreError as exc:  # settings, credentials, a broken cache: recorded like any failed sync
        report = {**SyncReport(name).to_dict(), "status": "failed", "error": str(exc)}
    reg.finish(run, report)
    return report
