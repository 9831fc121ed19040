"""Owners in the learning loop: documents get owners from front matter or `lore ingest --owner`, and the
stale, gaps and conflicts reports carry them, filter on one (`--owner`, `?owner=`) and count items by owner.
Real model, the `lore` command line and the service over HTTP."""

from __future__ import annotations

import json

import pytest

from tests.support.analytics import ANSWERED, CORPUS, PARENTAL, VPN, ask, lore

PEOPLE = ["group:people-ops", "user:hr-lead"]
HANDBOOK = ["group:handbook-team", "user:editor"]
FILES = {
    "policies/pto-policy.md": CORPUS["policies/pto-policy.md"].replace(
        "owner: People Operations", "owners: [group:people-ops, user:hr-lead]"),
    # --owner at ingest replaces the front matter's owner
    "handbook/employee-handbook.md": CORPUS["policies/employee-handbook.md"],
    "policies/travel-policy.md": CORPUS["policies/travel-policy.md"].replace("---\n#", "owner: group:finance\n---\n#"),
    "specs/payments-api.md": CORPUS["specs/payments-api.md"],  # nobody's
}
NO_OWNER = "(no owner)"


@pytest.fixture(scope="module")
def kb(tmp_path_factory, onnx_cache):
    from api.settings import IngestSettings, Settings
    from tests.support.live import LiveServer

    base = tmp_path_factory.mktemp("owners")
    for rel, text in FILES.items():
        (base / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "corpus" / rel).write_text(text)
    d = str(base / "kb")
    r = lore("ingest", str(base / "corpus" / "policies"), str(base / "corpus" / "specs"), "--data-dir", d, "--json")
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[-1])["added"] == 3, r.stderr[-3000:]
    r = lore("ingest", str(base / "corpus" / "handbook"), *(f"--owner={o}" for o in HANDBOOK), "--data-dir", d,
             "--json")
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[-1])["added"] == 1, r.stderr[-3000:]
    settings = Settings(data_dir=base / "kb", ingest=IngestSettings(parse_workers=0))
    with LiveServer(settings) as srv:
        keys = srv.services.keys
        admin, reader = keys.create("root", "", "admin")[0], keys.create("sam", "", "reader")[0]
        srv.c, srv.reader = srv.client(admin), srv.client(reader)
        for q in [*PARENTAL, *VPN, *ANSWERED]:
            ask(srv.reader, q)
        srv.owners = {doc.title: list(doc.owners) for doc in srv.services.store.documents()}
        yield srv
        srv.c.close()
        srv.reader.close()


def get(kb, path: str, **params) -> dict:
    r = kb.c.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_owners_come_from_front_matter_or_the_ingest_flag(kb):
    assert kb.owners == {"Paid Time Off Policy": PEOPLE, "Employee Handbook": HANDBOOK,
                         "Travel and Expenses Policy": ["group:finance"], "Payments API": []}


def test_stale_carries_filters_and_groups_by_owner(kb):
    report = get(kb, "/v1/analytics/stale")
    docs = {d["title"]: d for d in report["documents"]}
    assert {"Travel and Expenses Policy", "Payments API"} <= set(docs), list(docs)
    assert all(d["owners"] == kb.owners[t] for t, d in docs.items())
    assert docs["Payments API"]["owner"] is None and docs["Travel and Expenses Policy"]["owner"] == "group:finance"
    want: dict[str, int] = {}
    for t in docs:
        for o in kb.owners[t] or [NO_OWNER]:
            want[o] = want.get(o, 0) + 1
    assert report["by_owner"] == dict(sorted(want.items(), key=lambda x: (-x[1], x[0]))) and report["owner"] is None
    finance = get(kb, "/v1/analytics/stale", owner="group:finance")
    assert [d["title"] for d in finance["documents"]] == ["Travel and Expenses Policy"]
    assert finance["by_owner"] == report["by_owner"] and finance["owner"] == "group:finance"
    unowned = get(kb, "/v1/analytics/stale", owner=NO_OWNER)["documents"]
    assert [d["title"] for d in unowned] == ["Payments API"]
    assert get(kb, "/v1/analytics/stale", owner="group:nobody")["documents"] == []
    assert kb.c.get("/v1/analytics/stale", params={"owner": ""}).status_code == 422


def keys(documents: list[dict]) -> list[str]:
    """An item's owner keys: its documents' owners, NO_OWNER for each document without any."""
    return list(dict.fromkeys(o for d in documents for o in d["owners"] or [NO_OWNER]))


def test_gaps_take_the_owners_of_their_nearest_documents(kb):
    report = get(kb, "/v1/analytics/gaps")
    assert len(report["clusters"]) >= 2
    counts: dict[str, int] = {}
    for c in report["clusters"]:
        assert c["nearest_documents"]
        assert all(d["owners"] == kb.owners[d["title"]] for d in c["nearest_documents"])
        assert c["owners"] == list(dict.fromkeys(o for d in c["nearest_documents"] for o in d["owners"]))
        for o in keys(c["nearest_documents"]):
            counts[o] = counts.get(o, 0) + 1
    assert report["by_owner"] == dict(sorted(counts.items(), key=lambda x: (-x[1], x[0])))
    for owner in report["by_owner"]:
        mine = get(kb, "/v1/analytics/gaps", owner=owner)
        want = [c["id"] for c in report["clusters"] if owner in keys(c["nearest_documents"])]
        assert [c["id"] for c in mine["clusters"]] == want and len(want) == report["by_owner"][owner]
        assert mine["by_owner"] == report["by_owner"]
    assert get(kb, "/v1/analytics/gaps", owner="group:nobody")["clusters"] == []


def test_conflicts_carry_both_documents_owners(kb):
    report = get(kb, "/v1/analytics/conflicts")
    pto = [c for c in report["conflicts"] if {c["a"]["title"], c["b"]["title"]} == {"Paid Time Off Policy",
                                                                                    "Employee Handbook"}]
    assert len(pto) == 1, json.dumps(report, indent=1)
    c = pto[0]
    assert sorted(c["owners"]) == sorted(PEOPLE + HANDBOOK)
    assert all(side["owners"] == kb.owners[side["title"]] for side in (c["a"], c["b"]))
    assert all(report["by_owner"].get(o, 0) >= 1 for o in PEOPLE + HANDBOOK)
    team = get(kb, "/v1/analytics/conflicts", owner="group:handbook-team")["conflicts"]
    assert c in team and all("group:handbook-team" in x["owners"] for x in team)
    finance = get(kb, "/v1/analytics/conflicts", owner="group:finance")["conflicts"]
    assert c not in finance and all("group:finance" in x["owners"] for x in finance)
    assert get(kb, "/v1/analytics/conflicts", owner="group:nobody")["conflicts"] == []


def test_openapi_documents_the_owner_parameter(kb):
    spec = get(kb, "/openapi.json")
    for path in ("/v1/analytics/stale", "/v1/analytics/gaps", "/v1/analytics/conflicts"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert "owner" in params and "owner" in params["owner"]["description"]
    schemas = spec["components"]["schemas"]
    for name in ("StaleOut", "GapsOut", "ConflictsOut"):
        assert {"owner", "by_owner"} <= set(schemas[name]["properties"])
    for name in ("StaleDoc", "GapCluster", "GapDocument", "Conflict", "ConflictSide"):
        assert "owners" in schemas[name]["properties"], name


def test_cli_filters_and_groups_by_owner_as_the_api_does(kb):
    d = str(kb.settings.data_dir)
    r = lore("stale", "--owner", "group:finance", "--json", "--data-dir", d)
    assert r.returncode == 0, r.stderr[-3000:]
    cli = json.loads(r.stdout.splitlines()[-1])
    http = get(kb, "/v1/analytics/stale", owner="group:finance")
    assert [x["doc_id"] for x in cli["documents"]] == [x["doc_id"] for x in http["documents"]]
    assert cli["by_owner"] == http["by_owner"] and cli["owner"] == "group:finance"
    r = lore("conflicts", "--owner", "group:handbook-team", "--json", "--data-dir", d)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.splitlines()[-1])["conflicts"] == get(
        kb, "/v1/analytics/conflicts", owner="group:handbook-team")["conflicts"]
    r = lore("gaps", "--owner", NO_OWNER, "--json", "--data-dir", d)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.splitlines()[-1])["clusters"] == get(
        kb, "/v1/analytics/gaps", owner=NO_OWNER)["clusters"]
    r = lore("stale", "--data-dir", d)  # the table: an owners column and the counts per owner
    assert r.returncode == 0 and "group:finance" in r.stdout and "by owner:" in r.stdout, r.stderr[-3000:]
    r = lore("stale", "--owner", " ", "--data-dir", d)
    assert r.returncode == 2 and "--owner" in r.stderr
