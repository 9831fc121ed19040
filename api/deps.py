"""The composition root: the shared components (built lazily, once, from settings) and the caller.

`Services` builds one embedder, registry, retriever and assistant per process, and the service's stores
(keys, audit log, ingest jobs, source syncs), each on first use. It is the one object that knows them all:
a consumer gets the typed parts it uses (`Jobs(data_dir, open_store, ingestor, ...)`, `Bot(assistant, ...)`,
`gaps_report(audit, store, ...)`), built here or handed out by the FastAPI dependencies below (`get_store`,
`get_assistant`, ...). A part that may fail to open is handed out as a function (`Lazy`), so the request
fails, or goes on, where it did when it reached the part itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from fastapi import Depends, Request

from api import wiring
from api.auth import bearer, trusted
from api.settings import Settings
from ingest.access import Access, Principal
from ingest.errors import LoreError, StoreError
from ingest.keys import Caller, Forbidden, KeyStore, Unauthorized

if TYPE_CHECKING:
    from api.metrics import Metrics
    from assistant.service import Assistant
    from evals.audit import AuditLog
    from ingest.chroma_store import ChromaChunkStore
    from ingest.embedders import Embedder
    from ingest.jobs import Jobs
    from ingest.pipeline import Ingestor
    from ingest.scheduler import Syncs
    from ingest.sqlite_store import SqliteStore
    from retriever.search import Retriever

T = TypeVar("T")
Lazy = Callable[[], T]  # a part built (once) on first call


@dataclass(frozen=True, slots=True)
class Writer:
    """`Writer(ingestor, changed)`: `ingestor()` builds an ingestor on the shared embedder and registry;
    `changed()` runs after a write changed the knowledge base."""

    ingestor: Callable[[], Ingestor]
    changed: Callable[[], None]


class Services:
    """Components built on first use: a request that needs only the registry does not load the model."""

    def __init__(self, settings: Settings) -> None:
        from api.metrics import Metrics

        self.settings = settings
        self.metrics: Metrics = Metrics()
        self._lock = threading.RLock()

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:  # cached_property alone may build twice under concurrent first requests
            if name not in self.__dict__:
                self.__dict__[name] = build()
            return self.__dict__[name]

    @property
    def store(self) -> SqliteStore:
        return self._once("_store", lambda: wiring.build_store(self.settings))

    @property
    def embedder(self) -> Embedder:
        return self._once("_embedder", lambda: wiring.build_embedder(self.settings))

    @property
    def retriever(self) -> Retriever:
        return self._once("_retriever", lambda: wiring.build_retriever(self.settings, self.embedder, self.store,
                                                                      self.vectors))

    @property
    def vectors(self) -> ChromaChunkStore:
        """The vector store the retriever searches (one Chroma client per process)."""
        return self._once("_vectors", lambda: wiring.build_vectors(self.settings, self.embedder))

    @property
    def assistant(self) -> Assistant:
        return self._once("_assistant", lambda: wiring.build_assistant(self.settings, self.retriever))

    @property
    def keys(self) -> KeyStore:
        return self._once("_keys", lambda: KeyStore(Path(self.settings.data_dir) / "auth.db"))

    @property
    def audit(self) -> AuditLog:
        from evals.audit import AuditLog

        a = self.settings.audit
        return self._once("_audit", lambda: AuditLog(Path(self.settings.data_dir) / "audit.db", redact=a.redact,
                                                      retention_days=a.retention_days))

    @property
    def jobs(self) -> Jobs:
        return self._once("_jobs", self._build_jobs)

    def _build_jobs(self) -> Jobs:
        from ingest.jobs import Jobs

        s = self.settings
        return Jobs(s.data_dir, lambda: wiring.build_store(s), self._writer, roots=s.server.ingest_roots,
                    exclude=s.ingest.exclude, max_file_mb=s.ingest.max_file_mb, on_change=self.keyword_index_changed)

    def _writer(self, store: SqliteStore, on_event: Callable[[str, dict], None] | None) -> Ingestor:
        """An ingestor writing through `store` (a write's own registry connection), on the shared embedder."""
        return wiring.build_ingestor(self.settings, on_event, embedder=self.embedder, store=store)

    @property
    def syncs(self) -> Syncs:
        return self._once("_syncs", self._build_syncs)

    def _build_syncs(self) -> Syncs:
        from ingest.scheduler import Syncs

        registry = wiring.source_registry(self.settings)
        return Syncs(registry, lambda name: wiring.sync_source(self.settings, name, ingestor=self.ingestor(),
                                                                registry=registry),
                     self.jobs.writing, self.metrics.observe_sync, self.keyword_index_changed)

    def keyword_index_changed(self, wait: bool = False) -> None:
        """After a write: bring the running retriever's keyword index to the new registry generation
        (in the background unless `wait`; searches use FTS5 meanwhile). One index is built, by the
        retriever that uses it and saves it; a retriever not built yet loads or builds it on first use."""
        retriever = self.__dict__.get("_retriever")
        acc = retriever.keyword_index if retriever is not None else None
        if acc is not None:
            acc.prepare() if wait else acc.current()

    def ingestor(self, on_event: Callable[[str, dict], None] | None = None) -> Ingestor:
        return wiring.build_ingestor(self.settings, on_event, embedder=self.embedder, store=self.store)

    def access(self, principal: Principal) -> Access:
        return Access.for_principal(principal, tuple(self.settings.default_acl))

    def warm_up(self) -> None:
        """Load the model and open the stores now, so the first question is not the slow one."""
        _ = self.assistant  # builds it
        self.retriever.embedder.embed_query("warm up")

    def ready(self) -> dict:
        """What /readyz reports; raises when a store is unreachable or the data directory cannot be written."""
        docs, chunks = self.store.counts()
        vectors = self.retriever.vectors.count()
        self.check_writable()
        return {"documents": docs, "chunks": chunks, "vectors": vectors, "model_loaded": "_retriever" in self.__dict__}

    def check_writable(self) -> None:
        """A cheap write probe (one page, synced, removed): a full or read-only disk is not ready, though reads
        still work, since answers are audited and keys, uploads and ingests all write."""
        import os
        import tempfile

        where = Path(self.settings.data_dir)
        try:
            fd, name = tempfile.mkstemp(prefix=".lore-probe-", dir=where)
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            raise StoreError(f"the data directory {where} cannot be written ({exc.strerror or exc}); free disk "
                             "space or fix its permissions") from None

    def close(self) -> None:
        for name in ("_syncs", "_store", "_keys", "_audit", "_jobs"):
            obj = self.__dict__.get(name)
            if obj is not None and hasattr(obj, "close"):
                obj.close()


def services(request: Request) -> Services:
    return request.app.state.services


# -- the parts a route depends on (`store: SqliteStore = Depends(get_store)`); each is built on first use --
def get_settings(svc: Services = Depends(services)) -> Settings:
    return svc.settings


def get_store(svc: Services = Depends(services)) -> SqliteStore:
    return svc.store


def get_retriever(svc: Services = Depends(services)) -> Retriever:
    return svc.retriever


def get_vectors(svc: Services = Depends(services)) -> ChromaChunkStore:
    return svc.vectors


def get_embedder(svc: Services = Depends(services)) -> Embedder:
    return svc.embedder


def get_assistant(svc: Services = Depends(services)) -> Assistant:
    return svc.assistant


def get_keys(svc: Services = Depends(services)) -> KeyStore:
    return svc.keys


def get_jobs(svc: Services = Depends(services)) -> Jobs:
    return svc.jobs


def get_syncs(svc: Services = Depends(services)) -> Syncs:
    return svc.syncs


def get_metrics(svc: Services = Depends(services)) -> Metrics:
    return svc.metrics


def get_access(svc: Services = Depends(services)) -> Callable[[Principal], Access]:
    """What a principal may read, under the configured default ACL."""
    return svc.access


def get_audit(svc: Services = Depends(services)) -> Lazy[AuditLog]:
    """The audit log, opened when first called: a route records after its work, and an audit log that
    cannot be opened is logged there, not a refused request (api/routes/admin.py `audited`)."""
    return lambda: svc.audit


def get_writer(svc: Services = Depends(services)) -> Writer:
    """What a write outside the ingest jobs needs: an ingestor on the shared embedder, and the hook that
    brings the keyword index up to date afterwards."""
    return Writer(svc.ingestor, svc.keyword_index_changed)


def caller(request: Request, svc: Services = Depends(services)) -> Caller:
    """The authenticated caller, or 401. Which credentials count depends on LORE_SERVER__AUTH."""
    cfg = svc.settings.server
    if cfg.auth == "none":
        return Caller(Principal(None, ()), "admin", "demo")
    client = request.client.host if request.client else None
    if cfg.auth == "proxy" and trusted(client, cfg.trusted_proxies):
        user = request.headers.get(cfg.proxy_user_header)
        if user:
            groups = request.headers.get(cfg.proxy_groups_header, "")
            principal = Principal.of(user.strip(), groups)
            admin = cfg.proxy_admin_group is not None and cfg.proxy_admin_group in principal.groups
            return Caller(principal, "admin" if admin else "reader", "proxy")
    key = bearer(request.headers.get("authorization"))
    if key is None:
        raise Unauthorized("this API needs an API key: send 'Authorization: Bearer <key>' (lore keys create)")
    return svc.keys.verify(key)


def optional_caller(request: Request) -> Caller | None:
    """The caller if the request authenticates, else None: for public routes that show admins more."""
    try:
        return caller(request, services(request))
    except LoreError:  # no, bad or unverifiable credentials: the public answer
        return None


def authenticate_first(request: Request) -> None:
    """Raise Unauthorized if the request's route needs a caller and it has none: called before a body error is
    reported, since FastAPI reads the body before it runs the dependencies (no credentials, no 422)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is not None and _needs(dependant, caller):
        caller(request, services(request))


def _needs(dependant, fn) -> bool:
    return dependant.call is fn or any(_needs(d, fn) for d in dependant.dependencies)


def admin(who: Caller = Depends(caller)) -> Caller:
    if not who.is_admin:
        raise Forbidden("this action needs an admin API key (lore keys create --role admin)")
    return who
