"""The support agents' page (`/`), the admins' page (`/admin`) and their static assets: plain files with no
build step and no CDN."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response

from api.errors import NotFound

router = APIRouter(include_in_schema=False)
WEB = Path(__file__).resolve().parent.parent / "web"
# a fixed whitelist: the URL never names a path on disk
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
ASSETS = {"app.js": JS, "api.js": JS, "signin.js": JS, "view.js": JS, "style.css": CSS, "favicon.svg": "image/svg+xml",
          "admin.js": JS, "charts.js": JS, "admin.css": CSS, "console.js": JS, "console-util.js": JS,
          "console-docs.js": JS, "console-jobs.js": JS, "console-keys.js": JS}
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


DOCS_ASSETS = "/static-offline-docs"  # where fastapi-offline serves Swagger UI's files
_INLINE = re.compile(rb"<script>(.*?)</script>", re.S)


@router.get("/docs")
def docs(request: Request) -> Response:
    """Swagger UI under the pages' CSP, with its one inline script (the UI's settings) allowed by its hash."""
    app, root = request.app, request.scope.get("root_path", "")
    page = get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                               swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                               swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
                               swagger_ui_parameters=app.swagger_ui_parameters)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'"
                      for s in _INLINE.findall(page.body))
    csp = CSP.replace("script-src 'self'", f"script-src 'self' {hashes}")
    return Response(page.body, media_type="text/html; charset=utf-8",
                    headers={**HEADERS, "Content-Security-Policy": csp})


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
