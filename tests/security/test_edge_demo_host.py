"""M6: demo mode (no auth) answers only requests addressed to its own loopback address and port, so a web page
elsewhere cannot read or upload through DNS rebinding; the web page itself keeps working."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from api.settings import Settings
    from tests.support.live import LiveServer

    settings = Settings(data_dir=tmp_path_factory.mktemp("demo"), embedding={"backend": "hash"},
                        server={"auth": "none"})
    with LiveServer(settings) as srv:
        yield srv


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.nip.io:{port}",
                                  "127.0.0.1:{other}", "localhost", "10.0.0.7:{port}"])
def test_a_foreign_host_header_is_refused(demo, host):
    host = host.format(port=demo.port, other=demo.port + 1)
    for method, path in (("GET", "/v1/me"), ("POST", "/v1/search"), ("GET", "/"), ("GET", "/v1/documents")):
        r = httpx.request(method, demo.url + path, headers={"Host": host}, json={"query": "pto"})
        assert r.status_code == 421, (host, path, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] == "misdirected_request"
        assert f"127.0.0.1:{demo.port}" in err["message"] and "LORE_SERVER__AUTH" in err["message"]


@pytest.mark.parametrize("origin", ["http://evil.example", "http://evil.example:{port}", "null",
                                    "http://127.0.0.1:{other}", "https://attacker.test"])
def test_a_foreign_origin_is_refused(demo, origin):
    origin = origin.format(port=demo.port, other=demo.port + 1)
    r = httpx.post(demo.url + "/v1/search", json={"query": "pto"}, headers={"Origin": origin})
    assert r.status_code == 403, (origin, r.text)
    assert r.json()["error"]["code"] == "forbidden" and "Origin" in r.json()["error"]["message"]
    up = httpx.post(demo.url + "/v1/documents", files={"file": ("x.md", b"# hi\n\nhello", "text/markdown")},
                    headers={"Origin": origin})
    assert up.status_code == 403, up.text


def test_the_page_and_api_work_at_the_right_addresses(demo):
    for name in ("127.0.0.1", "localhost", "[::1]"):
        here = f"{name}:{demo.port}"
        page = httpx.get(demo.url + "/", headers={"Host": here})
        assert page.status_code == 200 and "<html" in page.text.lower()
        r = httpx.post(demo.url + "/v1/search", json={"query": "pto"},
                       headers={"Host": here, "Origin": f"http://{here}"})
        assert r.status_code == 200, (here, r.text)
        assert httpx.get(demo.url + "/v1/me", headers={"Host": here.upper()}).json()["via"] == "demo"
    assert httpx.get(demo.url + "/healthz").status_code == 200  # no Origin (curl, probes): fine


def test_the_web_page_runs_in_a_browser(demo, browser):
    ctx = browser.new_context()
    page = ctx.new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(demo.url + "/")
    got = page.evaluate("""async () => {
        const r = await fetch('/v1/search', {method: 'POST', headers: {'content-type': 'application/json'},
                                              body: JSON.stringify({query: 'pto'})});
        return r.status; }""")
    ctx.close()
    assert got == 200 and not problems
