"""The web page's browser helpers: a page with a console-error log, a signed-in page, asking a question."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "api" / "web"
SHOTS = REPO / "docs" / "screenshots" if os.environ.get("LORE_SCREENSHOTS") == "1" else None


def new_page(browser: Browser, **kw) -> tuple[Page, list[str]]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="UTC", **kw)
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # an expected 401/404 logs "Failed to load resource"; anything else (a CSP violation above all) is a bug
    page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
            and problems.append(f"console: {m.text}"))
    return page, problems


@pytest.fixture()
def page(browser):
    page, problems = new_page(browser)
    yield page
    page.context.close()
    assert not problems


def sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def sign_in(page: Page, url: str, key: str, path: str = "/") -> None:
    page.goto(url + path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Ask a question")).to_be_visible()


def ask(page: Page, question: str) -> dict:
    """Ask through the page; the Answer JSON the page received (its stream's final event)."""
    box = page.get_by_label("Ask a question")
    box.fill(question)
    bodies: list[str] = []

    def keep(route) -> None:  # the stream is Cache-Control: no-store, so the browser keeps no copy to read back
        got = route.fetch()
        bodies.append(got.text())
        route.fulfill(response=got)

    page.route("**/v1/ask/stream", keep)
    try:
        with page.expect_response(lambda r: r.url.endswith("/v1/ask/stream")) as resp:
            box.press("Enter")
        r = resp.value
    finally:
        page.unroute("**/v1/ask/stream", keep)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "no-store" in r.headers["cache-control"]
    assert r.request.headers["x-lore-channel"] == "web"
    events = sse(bodies[-1])
    assert events[-1][0] == "answer"
    expect(page.locator("#answer")).to_have_attribute("aria-busy", "false")
    return events[-1][1]
