"""The support agents' page in headless Chromium (Debian's, driven by Playwright) against a live Lore service.

`LORE_SCREENSHOTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/api/test_web.py` also writes
docs/screenshots/answer.png, passage.png and not-found.png.
"""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect
from tests.support.web import SHOTS, WEB, ask, new_page, page, sign_in  # noqa: F401

PTO = "How many PTO hours can I carry over into next year?"
ABSENT = "what is our parental leave policy?"
RESTRICTED = "salary band for a senior engineer in Lisbon"


def shot(page: Page, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name))


def test_sign_in_rejects_a_bad_key_then_accepts_the_reader(page, api_env):
    page.goto(api_env.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_focused()
    page.get_by_label("API key").fill("lore_abc_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text="not accepted")).to_contain_text("unknown or revoked")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.getItem('lore.apiKey')") is None

    page.get_by_label("API key").fill(api_env.keys["reader"])
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_text("Signed in as sam")).to_be_visible()
    expect(page.get_by_label("Ask a question")).to_be_focused()
    assert page.evaluate("sessionStorage.getItem('lore.apiKey')") == api_env.keys["reader"]
    page.reload()  # the key lives in the tab's session storage
    expect(page.get_by_text("Signed in as sam")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('lore.apiKey')") is None


def test_a_key_that_stops_working_returns_to_sign_in(page, api_env):
    sign_in(page, api_env.url, api_env.keys["reader"])
    page.evaluate("sessionStorage.setItem('lore.apiKey', 'lore_abc_revoked')")
    page.get_by_label("Ask a question").fill(PTO)
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#signin-error")).to_contain_text("sign in again")


def test_ask_shows_a_cited_answer_and_a_citation_opens_its_quote(page, api_env):
    sign_in(page, api_env.url, api_env.keys["reader"])
    a = ask(page, PTO)
    assert a["status"] in ("answered", "extractive") and a["citations"]
    expect(page.locator("#answer")).to_have_text(a["text"])  # the final answer replaced the streamed text
    expect(page.locator("#result-title")).to_have_text("Answer")

    markers = sorted({c["marker"] for c in a["citations"]})
    cites = page.locator("#answer a.cite")
    expect(cites).to_have_count(len(re.findall(r"\[\d+\]", a["text"])))
    first = cites.first
    expect(first).to_have_text("[1]")
    assert "passage=" in first.get_attribute("href")

    hits = {h["chunk_id"]: h for h in a["hits"]}
    sources = page.locator("#sources li.source")
    expect(sources).to_have_count(len(markers))
    for m in markers:
        cits = [c for c in a["citations"] if c["marker"] == m]
        li = page.locator(f"#source-{m}")
        expect(li.locator(".source-title")).to_have_text(cits[0]["title"])
        expect(li.locator(".badge")).to_have_text({"policy": "Policy", "spec": "Spec",
                                                  "incident": "Incident"}.get(cits[0]["doc_type"], "Document"))
        updated = hits[cits[0]["chunk_id"]]["updated_at"]
        expect(li.locator("time")).to_have_attribute("datetime", updated)
        day = int(updated[8:10])
        expect(li.locator(".updated")).to_contain_text(re.compile(rf"Updated \w{{3}} {day}, {updated[:4]}"))
        expect(li.locator("blockquote")).to_have_text([c["quote"] for c in cits])
    shot(page, "answer.png")

    first.click()
    panel = page.get_by_role("complementary")
    expect(panel).to_be_visible()
    cits = [c for c in a["citations"] if c["marker"] == 1]
    expect(page.locator("#passage-title")).to_have_text(cits[0]["title"])
    expect(page.locator("#passage-title")).to_be_focused()
    expect(panel.locator("mark")).to_have_text([c["quote"] for c in cits])
    expect(panel.locator(".badge")).to_be_visible()
    assert "passage=" in page.url and f"start={cits[0]['start']}" in page.url
    shot(page, "passage.png")

    page.keyboard.press("Escape")  # closes, and focus goes back to the link that opened it
    expect(panel).to_be_hidden()
    expect(first).to_be_focused()
    assert "passage=" not in page.url


def test_thumbs_down_is_recorded_in_the_audit_log(page, api_env):
    sign_in(page, api_env.url, api_env.keys["reader"])
    a = ask(page, PTO)
    page.get_by_label("Comment (optional)").fill("should mention contractors")
    down = page.get_by_role("button", name="Not helpful")
    down.click()
    expect(page.get_by_role("status").filter(has_text="Thanks")).to_be_visible()
    expect(down).to_be_disabled()
    expect(page.get_by_role("button", name="Helpful", exact=True)).to_be_disabled()
    expect(down).to_have_attribute("aria-pressed", "true")

    with api_env.client(api_env.keys["admin"]) as c:
        r = c.get("/v1/audit", params={"trace_id": a["trace_id"]})
    assert r.status_code == 200, r.text
    [record] = r.json()["records"]
    assert record["channel"] == "web" and record["user"] == "sam"
    fb = record["feedback"]
    assert (fb["rating"], fb["comment"], fb["channel"], fb["user"]) == ("down", "should mention contractors", "web", "sam")


def test_not_found_state_lists_the_closest_sources(page, api_env):
    sign_in(page, api_env.url, api_env.keys["reader"])
    a = ask(page, ABSENT)
    assert a["status"] == "no_evidence" and a["hits"]
    result = page.locator("#result")
    expect(result).to_have_class(re.compile("is-notfound"))
    expect(page.get_by_role("heading", name="Not found in the knowledge base")).to_be_visible()
    expect(page.get_by_role("heading", name="Closest sources")).to_be_visible()
    expect(page.locator("#answer a.cite")).to_have_count(0)
    closest = page.locator("#sources li.closest")
    expect(closest).to_have_count(len(a["hits"]))
    expect(closest.locator(".source-title")).to_have_text([h["title"] for h in a["hits"]])
    expect(closest.first.locator("time")).to_have_attribute("datetime", a["hits"][0]["updated_at"])
    shot(page, "not-found.png")

    closest.first.locator(".source-title").click()
    expect(page.locator("#passage-title")).to_have_text(a["hits"][0]["title"])
    expect(page.locator("#passage-text")).to_contain_text(a["hits"][0]["text"][:40])
    expect(page.locator("#passage-text mark")).to_have_count(0)


def test_reader_never_sees_a_restricted_source_that_hr_does(browser, api_env):
    reader, problems = new_page(browser)
    sign_in(reader, api_env.url, api_env.keys["reader"])
    ask(reader, RESTRICTED)
    expect(reader.locator("#sources li").first).to_be_visible()
    assert "compensation" not in reader.content().lower()

    hr, more = new_page(browser)
    sign_in(hr, api_env.url, api_env.keys["hr"])
    a = ask(hr, RESTRICTED)
    expect(hr.locator("#sources .source-title").filter(has_text="Compensation Bands").first).to_be_visible()
    restricted = next(x["chunk_id"] for x in a["citations"] + a["hits"] if "compensation" in x["uri"])

    # the deep link the Slack bot would post: HR sees the passage, the reader only "not available"
    link = api_env.url + "/?" + str(httpx.QueryParams({"passage": restricted}))
    hr.goto(link)
    expect(hr.locator("#passage-title")).to_contain_text("Compensation Bands")
    reader.goto(link)
    expect(reader.locator("#passage-title")).to_have_text("Passage unavailable")
    expect(reader.locator("#passage-error")).to_contain_text("do not have access")
    assert "compensation" not in reader.locator("body").inner_text().lower()
    for p in (reader, hr):
        p.context.close()
    assert not problems + more


def test_deep_link_opens_the_passage_with_the_quote_highlighted(page, api_env):
    with api_env.client(api_env.keys["reader"]) as c:
        a = c.post("/v1/ask", json={"question": "what's the rate limit on the payments api?"}).json()
    cit = a["citations"][0]
    link = "/?" + str(httpx.QueryParams({"passage": cit["chunk_id"], "start": cit["start"], "end": cit["end"]}))
    sign_in(page, api_env.url, api_env.keys["reader"], path=link)  # signs in, then opens what the link named
    expect(page.locator("#passage-title")).to_have_text(cit["title"])
    expect(page.locator("#passage-text mark")).to_have_text([cit["quote"]])

    page.goto(api_env.url + link)  # already signed in (this tab): straight to the passage
    expect(page.locator("#passage-text mark")).to_have_text([cit["quote"]])
    here = page.url
    nxt = page.get_by_role("button", name="Next passage")
    if nxt.is_enabled():
        nxt.click()
        expect(page).not_to_have_url(here)
        expect(page.locator("#passage-title")).to_have_text(cit["title"])  # the same document, further on
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: one column, the passage over the page
    expect(page.locator("#passage")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_stream_parser_survives_any_chunking(page, api_env):
    """The page's SSE reader (api.js) in the browser: events split mid-line, mid-CRLF and mid-character."""
    page.goto(api_env.url + "/")
    got = page.evaluate(r"""async () => {
        const { events } = await import("/static/api.js");
        const enc = new TextEncoder(), e = enc.encode("é");
        const parts = [enc.encode("event: delta\r"), enc.encode("\ndata: {\"text\": \"caf"), e.slice(0, 1),
                       e.slice(1), enc.encode("\"}\r\n\r\n: keep-alive\n\nevent: answer\ndata: {\"a\""),
                       enc.encode(": 1}\n\nevent: error\ndata: {}")];
        const body = new ReadableStream({ start(c) { parts.forEach((p) => c.enqueue(p)); c.close(); } });
        const out = [];
        for await (const ev of events(body)) out.push([ev.event, JSON.parse(ev.data)]);
        return out;
    }""")
    assert got == [["delta", {"text": "café"}], ["answer", {"a": 1}], ["error", {}]]


def test_page_headers_and_assets(api_env):
    r = httpx.get(api_env.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert "no-cache" in r.headers["cache-control"] and r.headers["etag"]
    assert httpx.get(api_env.url + "/", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    for name, kind in [("app.js", "text/javascript"), ("api.js", "text/javascript"), ("view.js", "text/javascript"),
                       ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")]:
        s = httpx.get(f"{api_env.url}/static/{name}")
        assert s.status_code == 200 and s.headers["content-type"].startswith(kind), name
        assert s.headers["content-security-policy"] == csp and s.headers["x-content-type-options"] == "nosniff"
    for bad in ["nope.js", "..%2Fapp.py", "%2E%2E%2Froutes%2Fweb.py", "index.html"]:
        s = httpx.get(f"{api_env.url}/static/{bad}")
        assert s.status_code == 404 and s.json()["error"]["code"] == "not_found", bad
    assert "/" not in httpx.get(api_env.url + "/openapi.json").json()["paths"]


def test_page_never_turns_server_text_into_markup():
    """Documents are untrusted: no HTML sinks in the scripts, no inline script or style for the CSP to allow."""
    html = (WEB / "index.html").read_text()
    assert re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S) == [(' type="module" src="/static/app.js"', "")]
    assert not re.search(r"\son[a-z]+\s*=", html) and not re.search(r"\sstyle\s*=", html)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN: the page works offline
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new Function|"
                       r"srcdoc|createContextualFragment|DOMParser|setAttribute\(\s*[\"']on|\.on[a-z]+\s*=|"
                       r"javascript:")
    for js in WEB.glob("*.js"):
        text = js.read_text()
        assert not sinks.search(text), f"{js.name}: {sinks.search(text).group()}"
        assert "https://" not in text and "http://" not in text, js.name
        # the only URL the page puts in an attribute is its own deep link, never one from a document
        for line in text.splitlines():
            assert "href" not in line or "deepLink(" in line, f"{js.name}: {line.strip()}"
            assert not re.search(r"\b(src|action|formaction)\b\s*[:=]", line), f"{js.name}: {line.strip()}"


def test_untrusted_document_text_is_shown_as_text_in_demo_mode(browser, tmp_path):
    """A document carrying markup, served in demo mode (no sign-in): every bit of it is shown as plain text."""
    from api.settings import ServerSettings, Settings
    from tests.support.live import LiveServer, ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "widgets.txt").write_text(  # plain text keeps the markup (a Markdown parser would drop it)
        "---\ntitle: Widget <img src=x onerror=\"window.__pwned=1\"> handbook\n---\n\n"
        "Widget resets\n\nThe widget reset code is 7731 <script>window.__pwned=2</script>, entered twice.\n"
        "Widgets are reset every quarter by the facilities team <b onmouseover=\"window.__pwned=3\">now</b>.\n")
    settings = Settings(data_dir=tmp_path / "kb", server=ServerSettings(auth="none"))
    ingest(settings, [docs])
    page, problems = new_page(browser)
    with LiveServer(settings) as srv:
        page.goto(srv.url + "/")
        expect(page.get_by_text("Demo mode: no sign-in")).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        a = ask(page, "what is the widget reset code?")
        assert a["citations"], a
        expect(page.locator("#answer")).to_have_text(a["text"])
        page.locator("#answer a.cite").first.click()
        expect(page.locator("#passage-title")).to_have_text(a["citations"][0]["title"])
        # ingest drops the closing tag as an HTML remnant (ingest/markup.py); the opening one is literal text
        expect(page.locator("#passage-text")).to_contain_text("<script>window.__pwned=2")
        shown = page.locator("body").inner_text()
        pwned = page.evaluate("window.__pwned")
        tags = page.locator("#result img, #result script, #result b, #passage img, #passage script, #passage b")
        expect(tags).to_have_count(0)
    page.context.close()
    assert pwned is None and not problems
    assert '<img src=x onerror="window.__pwned=1">' in shown and "<script>window.__pwned=2" in shown


def test_api_docs_render_offline(browser, api_env):
    """/docs loads Swagger UI from Lore itself: it works for offline users too."""
    page, problems = new_page(browser)
    hosts = []
    page.on("request", lambda r: hosts.append(re.sub(r"^\w+://([^/]+).*", r"\1", r.url)))
    page.goto(api_env.url + "/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert "/v1/ask" in page.content()
    external = [h for h in hosts if h != f"127.0.0.1:{api_env.port}" and not h.startswith("data:")]
    assert hosts and not external, external
    page.context.close()
