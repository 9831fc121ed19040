"""What a request needs: the shared components (built lazily, once) and the caller (authenticated).

`Services` is the service-side wiring: one embedder, registry, retriever and assistant per process,
shared by every route, the web page and the Slack bot. FastAPI dependencies below hand them out.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from fastapi import Depends, Request

from api import wiring
from api.auth import Caller, Forbidden, KeyStore, Unauthorized, bearer, trusted
from api.settings import Settings
from ingest.errors import LoreError, StoreError
from ingest.access import Access
from ingest.access import Principal

if TYPE_CHECKING:
    from api.jobs import Jobs
    from api.syncs import Syncs
    from assistant.service import Assistant
    from evals.audit import AuditLog
    from ingest.embedders import Embedder
    from ingest.pipeline import Ingestor
    from ingest.sqlite_store import SqliteStore
    from retriever.search import Retriever

T = TypeVar("T")


class Services:
    """Components built on first use: a request that needs only the registry does not load the model."""

    def __init__(self, settings: Settings) -> None:
        from api.metrics import Metrics

        self.settings = settings
        self.metrics = Metrics()
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
        return self._once("_retriever", lambda: wiring.build_retriever(self.settings, self.embedder, self.store))

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
        from api.jobs import Jobs

        return self._once("_jobs", lambda: Jobs(self))

    @property
    def syncs(self) -> Syncs:
        from api.syncs import Syncs

        return self._once("_syncs", lambda: Syncs(self.settings, wiring.source_registry(self.settings), self.jobs,
                                                  self.ingestor, self.metrics, self.keyword_index_changed))

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
