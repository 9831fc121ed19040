"""The Lore HTTP service: `create_app(settings)` for tests and embedding, `lore serve` to run it."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import errors
from api.deps import Services
from api.metrics import MetricsMiddleware
from api.routes import admin, analytics, ask, documents, health, openai_compat, slack, web
from api.settings import Settings

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
        yield
        svc.close()

    # /docs with Swagger UI's assets served from the package: offline users get it too (no CDN). ReDoc is
    # off: its page still fetches a logo from a CDN.
    app = FastAPIOffline(title="Lore", version="1", description=DESCRIPTION, lifespan=lifespan, redoc_url=None)
    app.state.services = svc
    errors.install(app)
    s = settings.server
    app.add_middleware(errors.BodyLimit, max_bytes=s.max_request_kb * 1024, upload_bytes=int(s.max_upload_mb * 2**20),
                       upload_paths=("/v1/documents",))
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)
    for module in (ask, documents, admin, analytics, openai_compat, slack, health, web):
        app.include_router(module.router)
    return app


def check_bind(settings: Settings, host: str) -> None:
    """Demo mode (no auth) answers anyone as an admin: only ever on loopback."""
    from api.auth import is_loopback
    from ingest.errors import ConfigError

    if settings.server.auth == "none" and not is_loopback(host):
        raise ConfigError(f"LORE_SERVER__AUTH=none (demo mode, no API keys) refuses to listen on {host}; use "
                          "--host 127.0.0.1, or create keys (lore keys create) and set LORE_SERVER__AUTH=keys")


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    check_bind(settings, host)
    app = create_app(settings, warm=True)
    log.warning("Lore is serving %s on http://%s:%d (auth: %s)", settings.data_dir, host, port, settings.server.auth)
    if settings.server.auth == "keys" and not app.state.services.keys.list():
        log.warning("no API keys yet, so every request will get 401: create one with "
                    "`lore keys create --user U --groups g1,g2 --role reader|admin`")
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
