"""The Lore HTTP service: `create_app(settings)` for tests and embedding, `lore serve` to run it."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, mcp_server
from api.deps import Services
from api.metrics import MetricsMiddleware
from api.routes import admin, analytics, ask, documents, health, keys, openai_compat, slack, sources, web
from api.settings import Settings
from ingest.errors import LoreError

log = logging.getLogger(__name__)
DESCRIPTION = """Answers from your company's documents with verified citations, under each caller's permissions.

Authenticate with `Authorization: Bearer <API key>` (`lore keys create`). A passage you may not read is
indistinguishable from one that does not exist. Errors are JSON: `{"error": {"code", "message"}}`.
"""


def create_app(settings: Settings | None = None, *, services: Services | None = None, warm: bool = False) -> FastAPI:
    settings = settings or Settings()
    svc = services or Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            svc.warm_up()
        svc.audit.purge()  # retention applies from the start, then after each recorded answer
        svc.jobs.reconcile_once()  # files a killed upload left behind, before anyone writes (never fatal)
        if settings.sources.schedule:
            try:
                svc.syncs.start_scheduler()  # each source on its interval (`lore sources add --interval`)
            except LoreError as exc:  # answers go on; GET /v1/sources shows the same error
                log.error("source syncs are not scheduled: %s", exc)
        async with app.state.mcp.session_manager.run():  # /mcp's sessions: a mounted app's own lifespan never runs
            yield
        svc.close()

    # Swagger UI's assets are served from the package (fastapi-offline): offline users get /docs too (no CDN);
    # the page itself is api/routes/web.py's, under its own CSP. ReDoc is off: it fetches a logo from a CDN.
    app = FastAPIOffline(title="Lore", version="1", description=DESCRIPTION, lifespan=lifespan, redoc_url=None,
                         docs_url=None)
    app.state.services = svc
    errors.install(app)
    s = settings.server
    app.add_middleware(errors.BodyLimit, max_bytes=s.max_request_kb * 1024, upload_bytes=int(s.max_upload_mb * 2**20),
                       upload_paths=("/v1/documents",))
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)
    if s.auth == "none":
        app.add_middleware(LoopbackOnly)
    app.add_middleware(SecurityHeaders)  # outermost: its headers go on every response, rejections included
    for module in (ask, documents, admin, keys, analytics, sources, openai_compat, slack, health, web):
        app.include_router(module.router)
    app.state.mcp = mcp_server.mount(app, svc)  # the MCP server (Streamable HTTP) at /mcp, same callers as /v1
    return app


def check_bind(settings: Settings, host: str) -> None:
    """Demo mode (no auth) answers anyone as an admin: only ever on loopback."""
    from api.auth import is_loopback
    from ingest.errors import ConfigError

    if settings.server.auth == "none" and not is_loopback(host):
        raise ConfigError(f"LORE_SERVER__AUTH=none (demo mode, no API keys) refuses to listen on {host}; use "
                          "--host 127.0.0.1, or create keys (lore keys create) and set LORE_SERVER__AUTH=keys")


def uvicorn_config(app, host: str, port: int, log_level: str = "warning"):
    """How Lore runs under uvicorn, for `lore serve` and the test server alike.

    proxy_headers is off: uvicorn would otherwise (by default, for 127.0.0.1) replace the client address with
    one from X-Forwarded-For, and proxy mode would then believe identity headers from anyone on the host who
    names a trusted proxy there. Lore checks the TCP peer itself against LORE_SERVER__TRUSTED_PROXIES.
    """
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, proxy_headers=False,
                          server_header=False)


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    check_bind(settings, host)
    app = create_app(settings, warm=True)
    log.warning("Lore is serving %s on http://%s:%d (auth: %s)", settings.data_dir, host, port, settings.server.auth)
    if settings.server.auth == "keys" and not app.state.services.keys.list():
        log.warning("no API keys yet, so every request will get 401: create one with "
                    "`lore keys create --user U --groups g1,g2 --role reader|admin`")
    server = uvicorn.Server(uvicorn_config(app, host, port, settings.log_level.lower()))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:  # as uvicorn.run: the app failed to start (its lifespan logged why)
        raise SystemExit(3)


PRIVATE = ("/v1/", "/readyz", "/mcp")  # what the credentials decide: never kept by a browser or shared cache


class SecurityHeaders:
    """No framing and no MIME sniffing anywhere; `Cache-Control: no-store` on everything credentials decide."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        private = scope["path"].startswith(PRIVATE)

        async def sending(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = MutableHeaders(scope=msg)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if private:
                    headers["Cache-Control"] = "no-store"
            await send(msg)

        await self.app(scope, receive, sending)


class LoopbackOnly:
    """Demo mode: only requests addressed to this server's loopback address and port, and from its own pages.

    A web page elsewhere can point a DNS name of its own at 127.0.0.1 (DNS rebinding) and then read or upload
    as the demo's anonymous admin: its requests name that host (421), and cross-origin ones its origin (403).
    """

    NAMES = frozenset({"127.0.0.1", "localhost", "::1"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        port = (scope.get("server") or (None, None))[1]
        headers = Headers(scope=scope)
        host, origin = headers.get("host", ""), headers.get("origin")
        here = f"127.0.0.1:{port}, localhost:{port} or [::1]:{port}" if port else "127.0.0.1, localhost or [::1]"
        if not self._ours(f"http://{host}", port):
            return await errors.send_error(send, errors.WrongHost(
                f"this Lore runs in demo mode (LORE_SERVER__AUTH=none) and answers only requests addressed to "
                f"{here}, not to {host!r}: open http://127.0.0.1:{port}/ (another name for this address can be "
                "a web page reaching in through DNS rebinding)"))
        if origin is not None and not self._ours(origin, port):
            return await errors.send_error(send, errors.ForeignOrigin(
                f"this Lore runs in demo mode (LORE_SERVER__AUTH=none) and answers browsers only from its own "
                f"pages (Origin http://{here}), not from a page at Origin {origin!r}"))
        await self.app(scope, receive, send)

    @classmethod
    def _ours(cls, url: str, port: int | None) -> bool:
        try:
            parts = urlsplit(url)
            given = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:  # a port that is not a number
            return False
        if parts.username is not None or parts.path or parts.query or parts.fragment:  # not a bare host[:port]
            return False
        return (parts.scheme in ("http", "https") and (parts.hostname or "") in cls.NAMES
                and (port is None or given == port))
