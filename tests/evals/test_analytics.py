"""Gap, stale-source and conflict analytics over a seeded corpus, fed through the real service over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.analytics import ANSWERED, CORPUS, PARENTAL, VPN, ask, clocked_kb, lore  # noqa: F401

UPVOTED = "How many hours of PTO do employees accrue per month?"
DOWNVOTED = "What is the meal allowance on business trips?"
ADMIN_ONLY = ["/v1/analytics/gaps", "/v1/analytics/stale", "/v1/analytics/conflicts"]


@pytest.fixture(scope="module")
def kb(tmp_path_factory, onnx_cache):
    """The seeded corpus behind a running service; questions fed over HTTP, two weeks apart; then the
    travel policy's meal allowance changed from $75 to $90 and re-ingested (its old version stays cited)."""
    from tests.support.live import LiveServer

    base = tmp_path_factory.mktemp("analytics")
    settings, services, clock = clocked_kb(base, CORPUS)

    srv = LiveServer(settings, services=services)
    with srv:
        keys = srv.services.keys
        k = {name: keys.create(user, groups, role)[0] for name, user, groups, role in (
            ("admin", "root", "", "admin"), ("sam", "sam", "", "reader"), ("ana", "ana", "hr", "reader"),
            ("kim", "kim", "eng", "reader"), ("lee", "lee", "eng,support", "reader"))}
        c = {name: srv.client(key) for name, key in k.items()}
        now = datetime.now(timezone.utc)
        answers: dict[str, dict] = {}
        clock.at = now - timedelta(days=14)
        for who, q, ch in (("sam", PARENTAL[0], "api"), ("ana", PARENTAL[1], "web"), ("sam", VPN[0], "api")):
            answers[q] = ask(c[who], q, ch)
        clock.at = None
        for who, q, ch in (("kim", PARENTAL[2], "openai"), ("ana", PARENTAL[3], "api"), ("kim", VPN[1], "web"),
                           ("sam", VPN[2], "web"), ("lee", UPVOTED, "api"), ("sam", DOWNVOTED, "web"),
                           ("ana", ANSWERED[0], "api"), ("sam", ANSWERED[1], "api"), ("kim", ANSWERED[2], "api"),
                           ("ana", ANSWERED[3], "api")):
            answers[q] = ask(c[who], q, ch)
        for q in PARENTAL + VPN:
            assert answers[q]["status"] == "no_evidence", (q, answers[q]["status"])
        for q in [UPVOTED, DOWNVOTED, *ANSWERED]:
            assert answers[q]["status"] != "no_evidence" and answers[q]["citations"], q
        for who, q, rating in (("lee", UPVOTED, "up"), ("sam", DOWNVOTED, "down")):
            r = c[who].post("/v1/feedback", json={"trace_id": answers[q]["trace_id"], "rating": rating})
            assert r.status_code == 200, r.text
        travel = base / "corpus" / "policies" / "travel-policy.md"
        travel.write_text(travel.read_text().replace("$75 per day", "$90 per day"))
        assert srv.services.ingestor().ingest([base / "corpus"]).updated == 1
        srv.answers, srv.c, srv.started = answers, c, now
        yield srv
        for client in c.values():
            client.close()


def get(kb, path: str, **params) -> dict:
    r = kb.c["admin"].get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_gaps_cluster_the_missing_topics_ranked_by_people(kb):
    report = get(kb, "/v1/analytics/gaps")
    assert report["questions_considered"] == len(PARENTAL) + len(VPN) + 1  # + the down-voted answer
    parental, vpn, meal = report["clusters"]
    assert [c["id"] for c in report["clusters"]] == [1, 2, 3]
    assert sorted(parental["questions"]) == sorted(PARENTAL) and parental["label"] in PARENTAL
    assert (parental["size"], parental["people"]) == (4, 3)
    assert parental["reasons"] == {"no_evidence": 4, "low_confidence": 0, "down_voted": 0}
    assert parental["channels"] == {"api": 2, "web": 1, "slack": 0, "openai": 1, "mcp": 0}
    assert parental["groups"] == {"hr": 2, "eng": 1}
    assert [p["count"] for p in parental["trend"]] == [2, 0, 2]
    y, w, _ = kb.started.isocalendar()
    assert parental["trend"][-1]["period"] == f"{y}-W{w:02d}"
    first = datetime.fromisoformat(parental["first_seen"])
    assert timedelta(days=13) < kb.started - first < timedelta(days=15)
    assert sorted(vpn["questions"]) == sorted(VPN) and (vpn["size"], vpn["people"]) == (3, 2)
    assert vpn["channels"] == {"api": 1, "web": 2, "slack": 0, "openai": 0, "mcp": 0} and vpn["groups"] == {"eng": 1}
    assert [p["count"] for p in vpn["trend"]] == [1, 0, 2] and "vpn" in vpn["terms"]
    # an answered question is a gap only when down-voted; the up-voted and the other answered ones are not
    assert meal["questions"] == [DOWNVOTED] and meal["reasons"]["down_voted"] == 1 and meal["people"] == 1
    asked = {q for c in report["clusters"] for q in c["questions"]}
    assert UPVOTED not in asked and not asked & set(ANSWERED)
    titles = {d["title"] for d in meal["nearest_documents"]}
    assert "Travel and Expenses Policy" in titles and len(meal["nearest_documents"]) <= 3
    assert all(d["uri"] and d["doc_type"] for c in report["clusters"] for d in c["nearest_documents"])


def test_gaps_filters_by_period_and_size(kb):
    week_ago = (kb.started - timedelta(days=7)).isoformat()
    recent = get(kb, "/v1/analytics/gaps", since=week_ago, min_size=2)
    assert [(c["size"], c["people"]) for c in recent["clusters"]] == [(2, 2), (2, 2)]
    assert recent["since"] is not None and recent["questions_considered"] == 5
    old = get(kb, "/v1/analytics/gaps", until=week_ago)
    assert sorted(len(c["questions"]) for c in old["clusters"]) == [1, 2]
    daily = get(kb, "/v1/analytics/gaps", period="day")["clusters"][0]["trend"]
    assert len(daily) == 15 and [p["count"] for p in daily if p["count"]] == [2, 2]
    assert daily[-1]["period"] == kb.started.date().isoformat()
    later = (kb.started + timedelta(days=1)).date().isoformat()
    assert get(kb, "/v1/analytics/gaps", since=later)["clusters"] == []
    assert kb.c["admin"].get("/v1/analytics/gaps", params={"since": "last week"}).status_code == 422


def cited_counts(answers: dict) -> Counter:
    return Counter(d for a in answers.values() for d in {c["doc_id"] for c in a["citations"]})


def test_stale_orders_most_cited_documents_by_age(kb):
    report = get(kb, "/v1/analytics/stale")
    docs = report["documents"]
    expected = cited_counts(kb.answers)
    assert {d["doc_id"]: d["citations"] for d in docs} == dict(expected)
    titles = [d["title"] for d in docs]
    assert titles == ["Paid Time Off Policy", "Travel and Expenses Policy", "Payments API", "Employee Handbook"]
    ages = [d["age_days"] for d in docs]
    assert ages == sorted(ages, reverse=True) and ages[0] > 365
    pto = docs[0]
    assert pto["updated_at"].startswith("2024-01-10") and pto["owner"] == "People Operations"
    assert pto["owners"] == ["People Operations"]  # front matter `owner:` (tests/evals/test_analytics_owners.py: more)
    assert report["by_owner"] == {"People Operations": 2, "(no owner)": 2}  # the handbook has the same owner
    travel = docs[1]
    assert travel["cited_old_versions"] == travel["citations"] == 2  # both cited the $75 version
    assert all(d["cited_old_versions"] == 0 for d in docs if d is not travel)
    assert all(d["last_cited_at"] >= kb.started.isoformat()[:10] for d in docs)
    top2 = get(kb, "/v1/analytics/stale", limit=2)["documents"]
    most = sorted(expected.values(), reverse=True)[:2]
    assert sorted((d["citations"] for d in top2), reverse=True) == most
    assert [d["age_days"] for d in top2] == sorted((d["age_days"] for d in top2), reverse=True)


def test_conflicts_find_the_seeded_pair_and_the_superseded_version(kb):
    found = get(kb, "/v1/analytics/conflicts")["conflicts"]
    by_scope = {s: [c for c in found if c["scope"] == s] for s in ("documents", "versions")}
    assert len(by_scope["documents"]) == 1 and len(by_scope["versions"]) == 1, json.dumps(found, indent=1)
    pto = by_scope["documents"][0]
    sides = {pto["a"]["title"]: pto["a"], pto["b"]["title"]: pto["b"]}
    assert set(sides) == {"Paid Time Off Policy", "Employee Handbook"}
    assert sides["Paid Time Off Policy"]["values"] == ["40 hours"]
    assert sides["Employee Handbook"]["values"] == ["80 hours"]
    assert pto["kind"] == "limit" and pto["similarity"] > 0.6 and "PTO" in pto["subject"]
    store = kb.services.store
    for side in (pto["a"], pto["b"]):
        chunk = store.get_chunks([side["chunk_id"]])[side["chunk_id"]]
        assert side["quote"] in chunk.text and side["current"]
        assert side["version"] == store.get_document(side["doc_id"]).version
    meal = by_scope["versions"][0]
    assert {meal["a"]["title"], meal["b"]["title"]} == {"Travel and Expenses Policy"}
    assert (meal["a"]["values"], meal["b"]["values"]) == (["$90"], ["$75"])
    assert meal["a"]["current"] and not meal["b"]["current"] and "$75 per day" in meal["b"]["quote"]
    # the agreeing 8 accrued hours, the API's 24 hours and the restricted salary band are not conflicts
    values = {v for c in found for side in (c["a"], c["b"]) for v in side["values"]}
    assert values == {"40 hours", "80 hours", "$90", "$75"}
    assert get(kb, "/v1/analytics/conflicts", limit=1)["conflicts"] == found[:1]


@pytest.mark.parametrize("path", ADMIN_ONLY)
def test_analytics_are_for_admins_only(kb, path):
    assert kb.c["sam"].get(path).status_code == 403
    assert kb.c["ana"].get(path).status_code == 403
    r = kb.client().get(path)
    assert r.status_code == 401 and r.json()["error"]["code"]


def test_openapi_documents_the_analytics_routes(kb):
    spec = get(kb, "/openapi.json")
    for path in ADMIN_ONLY:
        op = spec["paths"][path]["get"]
        assert "(admin)" in op["summary"] and {"401", "403"} <= set(op["responses"])
    gaps = spec["components"]["schemas"]["GapCluster"]["properties"]
    assert {"id", "label", "size", "people", "questions", "reasons", "nearest_documents", "groups", "channels",
            "trend", "first_seen", "last_seen"} <= set(gaps)


def test_cli_prints_the_same_reports(kb):
    d = str(kb.settings.data_dir)
    r = lore("gaps", "--json", "--data-dir", d)
    assert r.returncode == 0, r.stderr[-3000:]
    cli = json.loads(r.stdout.strip().splitlines()[-1])
    assert cli["clusters"] == get(kb, "/v1/analytics/gaps")["clusters"]
    r = lore("stale", "--data-dir", d)
    assert r.returncode == 0 and "Paid Time Off Policy" in r.stdout, r.stderr[-3000:]
    r = lore("gaps", "--since", "yesterday", "--data-dir", d)
    assert r.returncode == 2 and "not a date" in r.stderr


def test_quantities_are_normalized_for_comparison():
    from evals.analytics.quantities import quantities

    got = [(q.unit, q.value, q.text) for q in quantities(
        "Carry over up to 40 hours, a 40-hour week or 5 business days; $1.5m, EUR 68,000 and 150 USD; 10% "
        "from March 1, 2026 (or 2026-03-01, 1 March) and 100 requests. Employees may take May off.")]
    assert got == [("hour", "40", "40 hours"), ("hour", "40", "40-hour"), ("business day", "5", "5 business days"),
                   ("USD", "1500000", "$1.5m"), ("EUR", "68000", "EUR 68,000"), ("USD", "150", "150 USD"),
                   ("percent", "10", "10%"), ("date", "2026-03-01", "March 1, 2026"),
                   ("date", "2026-03-01", "2026-03-01"), ("date", "--03-01", "1 March"),
                   ("request", "100", "100 requests")]


def test_compare_flags_only_the_same_subject_with_disjoint_values():
    from evals.analytics.conflicts import ConflictConfig, compare, statements

    cfg = ConflictConfig()

    def one(doc: str, text: str):
        return statements(doc, f"{doc}#1", "v1", text)

    a = one("pto", "Employees may carry over up to 40 hours of unused PTO into the next calendar year.")
    b = one("hb", "Unused PTO of up to 80 hours can be carried over to the following year.")
    assert compare(a[0], b[0], cfg)["kind"] == "limit"
    same = one("x", "Employees may carry over up to 40 hours of unused PTO into the next year.")
    assert compare(a[0], same[0], cfg) is None
    other = one("api", "Idempotency keys of the payments API expire after 40 hours of inactivity.")
    assert compare(b[0], other[0], cfg) is None
    # a schedule: each document gives the same set of values, only in other sentences
    s1 = one("medical", "Covering AE receives 100% attainment credit for deal closure. "
                        "Covering AE receives 80% attainment credit for deal closure.")
    s2 = one("parental", "Covering AE receives 80% attainment credit for deal closure.")
    assert compare(s1[0], s2[0], cfg) is not None and compare(s1[0], s2[0], cfg, s1, s2) is None
    # dates in a version table differ by nature; an effective date is a rule
    assert one("a", "1.1 | 2023-05-31 | Dora Neumeier | Annual review") == []
    e1 = one("a", "The new travel rates are effective from 2026-03-01 for all employees worldwide.")
    e2 = one("b", "The new travel rates are effective from 2026-04-01 for all employees worldwide.")
    assert compare(e1[0], e2[0], cfg)["kind"] == "date"
