"""Response headers and public probes: /readyz counts only for admins, /docs under its own CSP, no framing,
and nothing that depends on credentials kept in a cache."""

from __future__ import annotations

import re

import httpx
import pytest

DOC = "---\ntitle: Leave policy\n---\n# Carry-over\n\nEmployees may carry over 40 hours of PTO into the next year.\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from tests.support.live import small_service

    with small_service(tmp_path_factory.mktemp("headers"), DOC) as s:
        yield s


def test_readyz_counts_only_for_an_admin(srv):
    assert httpx.get(srv.url + "/healthz").json() == {"status": "ok"}
    for headers in ({}, {"Authorization": f"Bearer {srv.reader}"}, {"Authorization": "Bearer lore_x_y"}):
        r = httpx.get(srv.url + "/readyz", headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "ready", r.text
        assert not {"documents", "chunks", "vectors"} & set(r.json()), r.json()
    full = httpx.get(srv.url + "/readyz", headers={"Authorization": f"Bearer {srv.admin}"}).json()
    assert full["status"] == "ready" and full["documents"] == 1 and full["chunks"] >= 1 and full["vectors"] >= 1
    assert "no-store" in httpx.get(srv.url + "/readyz").headers["cache-control"]


def test_docs_has_its_own_csp_and_nothing_may_frame_anything(srv):
    docs = httpx.get(srv.url + "/docs")
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src and "'sha256-" in script_src
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    for path in ("/docs", "/healthz", "/readyz", "/openapi.json", "/v1/me", "/", "/nope",
                 "/static-offline-docs/swagger-ui.css"):
        r = httpx.get(srv.url + path)
        assert r.headers.get("x-frame-options") == "DENY", path
        assert r.headers.get("x-content-type-options") == "nosniff", path


def test_credential_dependent_responses_are_not_stored(srv):
    with srv.client(srv.reader) as c:
        responses = [c.get("/v1/me"), c.get("/v1/documents"), c.post("/v1/search", json={"query": "pto"}),
                     c.post("/v1/ask", json={"question": "how many PTO hours carry over?"}),
                     c.get("/v1/models"), c.get("/v1/passages/nope"), c.get("/v1/audit"),
                     c.post("/v1/chat/completions", json={"model": "lore", "messages": [{"role": "user",
                                                                                         "content": "pto?"}]})]
        with c.stream("POST", "/v1/ask/stream", json={"question": "pto carry over"}) as s:
            s.read()
            responses.append(s)
    responses.append(httpx.get(srv.url + "/v1/me"))  # a 401 too
    for r in responses:
        assert r.headers.get("cache-control") == "no-store", (r.request.url, r.status_code, r.headers)
    # the public page may be cached (revalidated each time), as before
    assert httpx.get(srv.url + "/").headers["cache-control"] == "no-cache"


def test_swagger_ui_renders_under_its_csp(srv, browser):
    ctx = browser.new_context()
    page = ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.goto(srv.url + "/docs")
    page.locator(".opblock-summary-path").first.wait_for(state="visible", timeout=20_000)
    page.locator(".opblock-summary-path").first.click()  # an operation opens: the UI is alive
    page.locator(".opblock-body").first.wait_for(state="visible", timeout=20_000)
    assert "/v1/ask" in page.content()
    ctx.close()
    assert not problems, problems
