"""The admin page (/admin: knowledge gaps, stale sources, conflicts) in headless Chromium against a seeded service.

`LORE_SCREENSHOTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/api/test_web_admin.py` also writes
docs/screenshots/admin.png.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.analytics import clocked_kb
from tests.support.web import SHOTS, WEB, new_page

CORPUS = {
    "policies/pto-policy.md": """---
title: Paid Time Off Policy
doc_type: policy
updated: 2024-01-10
owner: People Operations
---
# Paid Time Off Policy

## Carry-over

Employees may carry over up to 40 hours of unused PTO into the next calendar year. Hours above the limit
are forfeited on January 1.
""",
    # the seeded conflict: 80 carry-over hours here, 40 in the PTO policy
    "policies/employee-handbook.md": """---
title: Employee Handbook
doc_type: policy
updated: 2026-01-05
---
# Employee Handbook

## Time off

Unused PTO of up to 80 hours can be carried over to the following year.

## Equipment

Every employee receives a laptop on the first day. Laptops are replaced every 36 months.
""",
    "policies/travel-policy.md": """---
title: Travel and Expenses Policy
doc_type: policy
updated: 2025-06-01
---
# Travel and Expenses Policy

## Meals

The meal allowance on business trips is $75 per day, receipts required.
""",
    "specs/payments-api.md": """---
title: Payments API
doc_type: spec
updated: 2025-11-20
---
# Payments API

## Rate limits

Each API key may send 100 requests per minute. Idempotency keys expire after 24 hours.
""",
}
# questions are user input: on the admin page they must stay text
HOSTILE = 'Connecting to the corporate VPN from Linux <img src=x onerror="window.__pwned=1">'
GAPS = [  # (days ago, who, question, channel)
    (10, "sam", "what is our parental leave policy?", "api"),
    (0, "ana", "How many weeks of maternity leave do we get?", "web"),
    (0, "kim", "Is there paid paternity leave for new fathers?", "api"),
    (0, "sam", "How do I set up the VPN on Linux?", "web"),
    (0, "kim", HOSTILE, "api"),
]
ANSWERED = [("sam", "How many PTO hours can I carry over?"), ("kim", "How long until idempotency keys expire?"),
            ("ana", "when are laptops replaced?")]
DOWNVOTED = ("ana", "What is the meal allowance on business trips?")


def ask(c: httpx.Client, question: str, channel: str = "api") -> dict:
    r = c.post("/v1/ask", json={"question": question}, headers={"X-Lore-Channel": channel})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def kb(tmp_path_factory, onnx_cache):
    """The seeded corpus behind a running service: gap questions from several people (one back-dated),
    answered ones citing documents, a down-vote, then the travel policy changed ($75 -> $90)."""
    from tests.support.live import LiveServer

    base = tmp_path_factory.mktemp("admin-page")
    settings, services, clock = clocked_kb(base, CORPUS)

    with LiveServer(settings, services=services) as srv:
        keys = srv.services.keys
        srv.keys = {name: keys.create(user, groups, role)[0] for name, user, groups, role in (
            ("admin", "root", "", "admin"), ("sam", "sam", "", "reader"), ("ana", "ana", "hr", "reader"),
            ("kim", "kim", "eng", "reader"))}
        c = {name: srv.client(key) for name, key in srv.keys.items()}
        now = datetime.now(timezone.utc)
        for days, who, q, channel in GAPS:
            clock.at = now - timedelta(days=days) if days else None
            assert ask(c[who], q, channel)["status"] == "no_evidence", q
        for who, q in [*ANSWERED, DOWNVOTED]:
            a = ask(c[who], q)
            assert a["status"] != "no_evidence" and a["citations"], q
        r = c[DOWNVOTED[0]].post("/v1/feedback", json={"trace_id": a["trace_id"], "rating": "down"})
        assert r.status_code == 200, r.text
        travel = base / "corpus" / "policies" / "travel-policy.md"
        travel.write_text(travel.read_text().replace("$75 per day", "$90 per day"))
        assert srv.services.ingestor().ingest([base / "corpus"]).updated == 1
        srv.admin = c["admin"]
        yield srv
        for client in c.values():
            client.close()


def report(kb, name: str, **params) -> dict:
    r = kb.admin.get(f"/v1/analytics/{name}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def loaded(page: Page) -> None:
    """Wait until the three reports have arrived (or failed)."""
    for name in ("gaps", "stale", "conflicts"):
        expect(page.locator(f"#{name}")).to_have_attribute("aria-busy", "false")
        expect(page.locator(f"#{name}-status")).to_contain_text("Generated")


def days_ago(n: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=n)).date().isoformat()


def check_gaps(page: Page, gaps: dict) -> None:
    """The gaps section shows exactly `gaps` (an API report): cards, chart bars and sparklines."""
    clusters = gaps["clusters"]
    expect(page.locator("#tile-gaps")).to_have_text(str(len(clusters)))
    expect(page.locator("#tile-questions")).to_have_text(str(gaps["questions_considered"]))
    cards = page.locator("#gaps-list > li.gap")
    expect(cards).to_have_count(len(clusters))
    expect(cards.locator(".gap-label")).to_have_text([c["label"] for c in clusters])
    expect(cards.locator(".stat-people strong")).to_have_text([str(c["people"]) for c in clusters])
    expect(cards.locator(".stat-size strong")).to_have_text([str(c["size"]) for c in clusters])
    bars = page.locator("#gaps-chart rect.bar")
    expect(bars).to_have_count(len(clusters))
    widths = [float(w) for w in bars.evaluate_all("bs => bs.map(b => b.getAttribute('width'))")]
    assert widths == sorted(widths, reverse=True)  # ranked by people, and the bars say so
    for c, w in zip(clusters, widths):  # same people, same bar
        assert abs(w - widths[0] * c["people"] / clusters[0]["people"]) < 0.5 or c["people"] == 0
    label = page.locator("#gaps-chart").get_attribute("aria-label")
    assert all(f"#{c['id']} {c['label']}: {c['people']} " in label for c in clusters), label
    sparks = cards.locator("svg.spark")
    expect(sparks).to_have_count(len(clusters))
    for c, spark in zip(clusters, sparks.all()):
        expect(spark).to_have_attribute("aria-label", re.compile(
            re.escape(", ".join(f"{p['period']} {p['count']}" for p in c["trend"])) + "$"))


def test_admin_sees_gaps_stale_sources_and_conflicts(browser, kb):
    gaps, stale, conflicts = report(kb, "gaps"), report(kb, "stale"), report(kb, "conflicts")
    clusters = gaps["clusters"]
    assert len(clusters) >= 3 and clusters[0]["people"] == 3 and clusters[0]["size"] == 3  # parental leave
    page, problems = new_page(browser)
    # signed in on the main page, the admin goes straight in: the same key in the same tab
    page.goto(kb.url + "/")
    page.get_by_label("API key").fill(kb.keys["admin"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as root")).to_be_visible()
    page.goto(kb.url + "/admin")
    expect(page.get_by_role("heading", name="Knowledge base health")).to_be_visible()
    expect(page.get_by_text("Signed in as root")).to_be_visible()
    loaded(page)

    check_gaps(page, gaps)
    top = page.locator("#gap-1")
    expect(top.locator(".reason")).to_have_text([f"{clusters[0]['reasons']['no_evidence']} not found"])
    expect(top.locator(".examples li")).to_have_text(clusters[0]["questions"])
    expect(top.locator(".nearest .doc-title")).to_have_text([d["title"] for d in clusters[0]["nearest_documents"]])
    expect(top.locator(".nearest .uri")).to_have_text([d["uri"] for d in clusters[0]["nearest_documents"]])
    meal = next(c for c in clusters if c["reasons"]["down_voted"])
    expect(page.locator(f"#gap-{meal['id']} .reason-down_voted")).to_have_text("1 rated down")
    expect(page.locator("#gaps-list")).to_contain_text(HOSTILE)  # shown as text, never run
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#gaps-list img")).to_have_count(0)

    docs = stale["documents"]
    assert [d["title"] for d in docs][0] == "Paid Time Off Policy"
    rows = page.locator("#stale-table tbody tr")
    expect(rows).to_have_count(len(docs))
    expect(rows.locator(".doc-title")).to_have_text([d["title"] for d in docs])
    expect(rows.locator("td:nth-child(5)")).to_have_text([str(round(d["age_days"])) for d in docs])
    expect(rows.locator("td:nth-child(6)")).to_have_text([str(d["citations"]) for d in docs])
    expect(rows.locator("td:nth-child(8)")).to_have_text([str(d["cited_old_versions"]) for d in docs])
    expect(rows.first.locator("td:nth-child(4) time")).to_have_attribute("datetime", docs[0]["updated_at"])
    expect(page.locator("#tile-stale")).to_have_text(str(len(docs)))
    expect(page.locator("#stale-chart rect.bar")).to_have_count(len(docs))
    outdated = [d for d in docs if d["cited_old_versions"]]
    assert [d["title"] for d in outdated] == ["Travel and Expenses Policy"]
    expect(page.locator("#stale-chart .is-outdated title")).to_have_text(
        [re.compile(r"^Travel and Expenses Policy: updated \d+ days ago, 1 citation, 1 of an old version$")])

    found = conflicts["conflicts"]
    items = page.locator("#conflicts-list > li.conflict")
    expect(items).to_have_count(len(found))
    expect(page.locator("#tile-conflicts")).to_have_text(str(len(found)))
    pto = next(c for c in found if c["scope"] == "documents")
    item = page.locator(f"#conflict-{pto['id']}")
    expect(item).to_contain_text(f"{round(pto['similarity'] * 100)}% similar")
    for s in ("a", "b"):
        side = item.locator(f".side[data-side={s}]")
        expect(side.locator(".doc-title")).to_have_text(pto[s]["title"])
        expect(side.locator("blockquote")).to_have_text(pto[s]["quote"])
        expect(side.locator("blockquote mark")).to_have_text(pto[s]["values"])
        expect(side.locator(".version code")).to_have_text(pto[s]["version"][:12])
        link = "/?" + str(httpx.QueryParams({"passage": pto[s]["chunk_id"]}))
        expect(side.locator("a.open-passage")).to_have_attribute("href", link)
    marks = sorted(item.locator("blockquote mark").all_text_contents())
    assert marks == ["40 hours", "80 hours"]
    old = next(c for c in found if c["scope"] == "versions")
    item = page.locator(f"#conflict-{old['id']}")
    expect(item.locator("blockquote mark")).to_have_text(["$90", "$75"])
    expect(item.locator(".side[data-side=b] .superseded")).to_have_text("superseded, still cited")
    expect(item.locator(".side[data-side=b] a.open-passage")).to_have_count(0)  # that passage is gone

    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "admin.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: one column, nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#gaps-chart").bounding_box()["width"] < 390  # the chart shrinks to fit
    page.get_by_role("link", name="Ask", exact=True).click()  # and back to the main page, still signed in
    expect(page.get_by_label("Ask a question")).to_be_visible()
    page.context.close()
    assert not problems


def test_changing_the_period_refetches_the_reports(browser, kb):
    page, problems = new_page(browser)
    page.goto(kb.url + "/admin")
    page.get_by_label("API key").fill(kb.keys["admin"])
    page.get_by_label("API key").press("Enter")
    loaded(page)
    expect(page.get_by_role("button", name="All time")).to_have_attribute("aria-pressed", "true")

    tomorrow = days_ago(-1)
    page.get_by_label("From", exact=True).fill(tomorrow)
    with page.expect_response(lambda r: "/v1/analytics/gaps?" in r.url) as g, \
            page.expect_response(lambda r: "/v1/analytics/stale?" in r.url) as s:
        page.get_by_role("button", name="Apply").click()
    assert f"since={tomorrow}" in g.value.url and f"since={tomorrow}" in s.value.url
    expect(page.locator("#gaps-empty")).to_have_text("No knowledge gaps in this period.")
    expect(page.locator("#gaps-empty")).to_be_visible()
    expect(page.locator("#stale-empty")).to_be_visible()
    expect(page.locator("#gaps-list > li, #gaps-chart rect, #stale-table tbody tr")).to_have_count(0)
    expect(page.locator("#gaps-figure")).to_be_hidden()
    expect(page.locator("#tile-gaps")).to_have_text("0")
    expect(page.locator("#conflicts-list > li").first).to_be_visible()  # conflicts do not depend on the period
    assert f"since={tomorrow}" in page.url

    page.get_by_role("button", name="7 days").click()  # the back-dated question drops out
    expect(page.get_by_label("From", exact=True)).to_have_value(days_ago(6))
    expect(page.get_by_role("button", name="7 days")).to_have_attribute("aria-pressed", "true")
    loaded(page)
    recent = report(kb, "gaps", since=days_ago(6))
    assert recent["clusters"][0]["people"] == 2
    check_gaps(page, recent)

    with page.expect_response(lambda r: "/v1/analytics/gaps?" in r.url) as g:
        page.get_by_label("Trend by").select_option("day")
    assert "period=day" in g.value.url
    loaded(page)
    expect(page.locator("#gaps-list svg.spark").first).to_have_attribute("aria-label", re.compile("^Questions per day"))
    check_gaps(page, report(kb, "gaps", since=days_ago(6), period="day"))
    page.reload()  # the period is in the URL
    loaded(page)
    expect(page.get_by_label("From", exact=True)).to_have_value(days_ago(6))
    expect(page.get_by_label("Trend by")).to_have_value("day")

    page.get_by_label("To", exact=True).fill(days_ago(8))
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#filters-error")).to_have_text("The start date is after the end date.")
    page.get_by_role("button", name="All time").click()
    expect(page.locator("#filters-error")).to_have_text("")
    loaded(page)
    check_gaps(page, report(kb, "gaps", period="day"))

    page.get_by_role("button", name="Sign out").click()  # and nothing of the reports stays behind
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(".gap, #stale-table tbody tr, .conflict, svg.hbar *")).to_have_count(0)
    page.context.close()
    assert not problems


def test_a_reader_key_is_told_it_needs_an_admin_key(browser, kb):
    page, problems = new_page(browser)
    asked: list[str] = []
    page.on("request", lambda r: "/v1/analytics" in r.url and asked.append(r.url))
    page.goto(kb.url + "/admin")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill(kb.keys["sam"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="This page needs an admin key")).to_be_visible()
    expect(page.locator("#denied-text")).to_contain_text("sam’s key has the reader role")
    expect(page.locator("#app")).to_be_hidden()
    body = page.locator("body").inner_text()
    content = page.content()
    for c in report(kb, "gaps")["clusters"]:
        assert c["label"] not in body and c["label"] not in content
    assert "Paid Time Off Policy" not in content and "80 hours" not in content
    expect(page.locator(".gap, #stale-table tbody tr, .conflict, svg rect")).to_have_count(0)

    page.reload()  # the key stays in the tab: still the same answer, still no report requested
    expect(page.get_by_role("heading", name="This page needs an admin key")).to_be_visible()
    assert asked == []
    page.get_by_role("button", name="Use another key").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('lore.apiKey')") is None
    page.get_by_label("API key").fill("lore_abc_wrong")
    page.get_by_label("API key").press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("not accepted")
    page.context.close()
    assert not problems


def test_demo_mode_on_a_fresh_install_shows_the_empty_states(browser, tmp_path):
    from api.settings import ServerSettings, Settings
    from tests.support.live import LiveServer

    settings = Settings(data_dir=tmp_path / "kb", server=ServerSettings(auth="none"))
    page, problems = new_page(browser)
    with LiveServer(settings) as srv:
        page.goto(srv.url + "/admin")
        expect(page.get_by_text("Demo mode: no sign-in")).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        loaded(page)
        expect(page.locator("#gaps-empty")).to_be_visible()
        expect(page.locator("#stale-empty")).to_have_text("No cited sources in this period.")
        expect(page.locator("#conflicts-empty")).to_have_text("No conflicting passages found.")
        expect(page.locator("#tile-gaps, #tile-questions, #tile-stale, #tile-conflicts")).to_have_text(["0"] * 4)
        expect(page.locator("#gaps-figure, #stale-figure, #stale-wrap")).to_have_count(3)
        for part in ("#gaps-figure", "#stale-figure", "#stale-wrap"):
            expect(page.locator(part)).to_be_hidden()
    page.context.close()
    assert not problems


def test_a_failing_report_shows_its_error_and_keeps_the_others(browser, kb):
    page, problems = new_page(browser)
    page.route("**/v1/analytics/stale*", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": {"code": "unavailable", "message": "The audit log is busy; try again.", "trace_id": "t"}}'))
    page.goto(kb.url + "/admin")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.evaluate("k => sessionStorage.setItem('lore.apiKey', k)", kb.keys["admin"])
    page.reload()
    expect(page.locator("#stale-error")).to_have_text("Could not load this report: The audit log is busy; try again.")
    expect(page.locator("#stale")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#stale-empty")).to_be_hidden()
    expect(page.locator("#tile-stale")).to_have_text("–")
    expect(page.locator("#gaps-list > li.gap").first).to_be_visible()
    expect(page.locator("#conflicts-list > li").first).to_be_visible()
    page.context.close()
    assert not problems


def test_admin_page_headers_and_assets(kb):
    main = httpx.get(kb.url + "/")
    r = httpx.get(kb.url + "/admin")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Knowledge base health" in r.text
    for h in ("content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options",
              "cache-control"):
        assert r.headers[h] == main.headers[h], h
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert httpx.get(kb.url + "/admin", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    for name, kind in [("admin.js", "text/javascript"), ("charts.js", "text/javascript"), ("admin.css", "text/css")]:
        s = httpx.get(f"{kb.url}/static/{name}")
        assert s.status_code == 200 and s.headers["content-type"].startswith(kind), name
        assert s.headers["content-security-policy"] == r.headers["content-security-policy"], name
        assert s.headers["x-content-type-options"] == "nosniff" and s.headers["etag"], name
        assert s.content == (WEB / name).read_bytes()
    for bad in ["admin.html", "admin.jsx", "charts.js.map", "admin.CSS", "..%2Fadmin.html", "%2E%2E%2Fweb.py"]:
        s = httpx.get(f"{kb.url}/static/{bad}")
        assert s.status_code == 404 and s.json()["error"]["code"] == "not_found", bad
    assert "/admin" not in httpx.get(kb.url + "/openapi.json").json()["paths"]


def test_admin_files_never_turn_server_text_into_markup():
    """The main page's rules for the admin page's files: no HTML sinks, no inline script or style, no CDN."""
    html = (WEB / "admin.html").read_text()
    assert re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S) == [(' type="module" src="/static/admin.js"', "")]
    assert not re.search(r"\son[a-z]+\s*=", html) and not re.search(r"\sstyle\s*=", html)
    assert "http://" not in html and "https://" not in html
    css = (WEB / "admin.css").read_text()
    assert "@import" not in css and "url(" not in css and "expression(" not in css
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new Function|"
                       r"srcdoc|createContextualFragment|DOMParser|setAttribute\(\s*[\"']on|\.on[a-z]+\s*=|"
                       r"javascript:|setAttribute\(\s*[\"']style|\.href\s*=")
    for name in ("admin.js", "charts.js"):
        text = (WEB / name).read_text()
        assert not sinks.search(text), f"{name}: {sinks.search(text).group()}"
        assert "https://" not in text and "http://" not in text, name
        for line in text.splitlines():
            assert "href" not in line or "deepLink(" in line, f"{name}: {line.strip()}"
            assert not re.search(r"\b(src|action|formaction)\b\s*[:=]", line), f"{name}: {line.strip()}"
    # the charts' SVG elements come from the HTML parser's namespace, never from a string in the scripts
    assert "createElementNS(parent.namespaceURI" in (WEB / "charts.js").read_text()


def test_an_owner_sees_only_their_work_list(browser, kb):
    """The owner filter reaches all three reports and the URL; an owner of nothing sees empty reports."""
    page, problems = new_page(browser)
    page.goto(kb.url + "/admin")
    page.get_by_label("API key").fill(kb.keys["admin"])
    page.get_by_label("API key").press("Enter")
    loaded(page)
    expect(page.locator("#conflicts-list > li").first).to_be_visible()
    page.get_by_label("Owner", exact=True).fill("group:nobody")
    with page.expect_response(lambda r: "/v1/analytics/gaps?" in r.url) as g, \
            page.expect_response(lambda r: "/v1/analytics/stale?" in r.url) as s, \
            page.expect_response(lambda r: "/v1/analytics/conflicts?" in r.url) as c:
        page.get_by_role("button", name="Apply").click()
    for got in (g, s, c):
        assert "owner=group%3Anobody" in got.value.url and got.value.status == 200
    expect(page.locator("#gaps-empty")).to_be_visible()
    expect(page.locator("#stale-empty")).to_be_visible()
    expect(page.locator("#conflicts-list > li")).to_have_count(0)
    assert "owner=group%3Anobody" in page.url
    page.reload()  # the owner is in the URL
    expect(page.get_by_label("Owner", exact=True)).to_have_value("group:nobody")
    page.get_by_label("Owner", exact=True).fill("")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#conflicts-list > li").first).to_be_visible()
    page.context.close()
    assert not problems
