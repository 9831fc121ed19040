"""The support agents' page (`/`), the admins' page (`/admin`) and their static assets: plain files with no
build step and no CDN."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.errors import NotFound

router = APIRouter(include_in_schema=False)
WEB = Path(__file__).resolve().parent.parent / "web"
# a fixed whitelist: the URL never names a path on disk
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
ASSETS = {"app.js": JS, "api.js": JS, "signin.js": JS, "view.js": JS, "style.css": CSS, "favicon.svg": "image/svg+xml",
          "admin.js": JS, "charts.js": JS, "admin.css": CSS}
# documents are untrusted: no inline script or style, nothing fetched from elsewhere, no framing
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
           # revalidate each time (cheap with the ETag), so an upgraded server never runs a stale app.js
           "Cache-Control": "no-cache"}


@lru_cache(maxsize=16)
def _read(name: str, mtime_ns: int) -> tuple[bytes, str]:
    data = (WEB / name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _serve(request: Request, name: str, media_type: str) -> Response:
    data, etag = _read(name, (WEB / name).stat().st_mtime_ns)  # an edited file is served fresh
    headers = {**HEADERS, "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@router.get("/")
def index(request: Request) -> Response:
    """The page; `/?passage=<chunk id>&start=&end=` opens a passage with that span highlighted."""
    return _serve(request, "index.html", "text/html; charset=utf-8")


@router.get("/admin")
def admin_page(request: Request) -> Response:
    """Gaps, stale sources and conflicts with charts; the page itself is public, its data needs an admin key."""
    return _serve(request, "admin.html", "text/html; charset=utf-8")


@router.get("/static/{name}")
def static(name: str, request: Request) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no static file {name!r}")
    return _serve(request, name, ASSETS[name])
