"""Keys over HTTP (GET/POST/DELETE /v1/keys) and the record of admin actions (GET /v1/audit/actions), live."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live import LiveServer, ingest

ACTION_FIELDS = {"seq", "recorded_at", "user", "key_id", "role", "via", "action", "target", "outcome", "detail"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A small knowledge base (hash embedder: the edges, not search quality) with an ingest root and two keys."""
    from api.settings import Settings

    base = tmp_path_factory.mktemp("admin-actions")
    root = base / "root"
    (root / "handbook").mkdir(parents=True)
    (root / "handbook" / "travel.md").write_text("# Travel\n\nBook trains through the quillfeather portal.\n")
    (base / "docs").mkdir()
    (base / "docs" / "leave.md").write_text("# Leave\n\nEveryone gets 25 days of leave a year.\n")
    settings = Settings(data_dir=base / "kb", embedding={"backend": "hash"}, ingest={"parse_workers": 0},
                        server={"ingest_roots": [str(root)]})
    ingest(settings, [base / "docs"])
    with LiveServer(settings) as s:
        keys = s.services.keys
        s.keys = {"reader": keys.create("sam", "", "reader")[0], "admin": keys.create("root", "", "admin")[0]}
        s.admin_id = s.keys["admin"].split("_")[1]
        yield s


def actions(srv, **params) -> list[dict]:
    with srv.client(srv.keys["admin"]) as c:
        r = c.get("/v1/audit/actions", params=params)
    assert r.status_code == 200, r.text
    page = r.json()
    assert all(set(a) == ACTION_FIELDS for a in page["actions"])
    return page["actions"]


def latest(srv, action: str) -> dict:
    return actions(srv, action=action, limit=1)[0]


def test_keys_create_list_and_revoke_over_http(srv, caplog):
    caplog.set_level(logging.DEBUG)
    with srv.client(srv.keys["admin"]) as c:
        r = c.post("/v1/keys", json={"user": "ana", "groups": ["hr", "people"], "role": "reader", "note": "HR bot"})
        assert r.status_code == 201, r.text
        made = r.json()
        key = made.pop("key")
        assert key.startswith(f"lore_{made['key_id']}_")
        assert made == {"key_id": made["key_id"], "user": "ana", "groups": ["hr", "people"], "role": "reader",
                        "created_at": made["created_at"], "revoked_at": None, "last_used_at": None, "note": "HR bot",
                        "current": False}
        with srv.client(key) as ana:  # the key works at once, as ana with her groups
            assert ana.get("/v1/me").json() == {"user": "ana", "groups": ["hr", "people"], "role": "reader",
                                                "via": "key", "key_id": made["key_id"]}
        listed = c.get("/v1/keys").json()["keys"]
        assert [k["key_id"] for k in listed if k["current"]] == [srv.admin_id]
        assert made["key_id"] in {k["key_id"] for k in listed}
        assert key.split("_")[2] not in c.get("/v1/keys").text  # never the key again

        gone = c.delete(f"/v1/keys/{made['key_id']}")
        assert gone.status_code == 200 and gone.json()["revoked_at"], gone.text
        with srv.client(key) as ana:
            r = ana.get("/v1/me")
            assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
        assert made["key_id"] not in {k["key_id"] for k in c.get("/v1/keys").json()["keys"]}
        revoked = c.get("/v1/keys", params={"include_revoked": True}).json()["keys"]
        assert next(k for k in revoked if k["key_id"] == made["key_id"])["revoked_at"]
        again = c.delete(f"/v1/keys/{made['key_id']}")  # revoking twice changes nothing
        assert again.status_code == 200 and again.json()["revoked_at"] == gone.json()["revoked_at"]

    create, revoke = latest(srv, "key.create"), latest(srv, "key.revoke")
    assert (create["outcome"], create["target"], create["user"], create["key_id"], create["role"], create["via"]) == \
        ("succeeded", made["key_id"], "root", srv.admin_id, "admin", "key")
    assert create["detail"] == "user ana, groups hr,people, role reader"
    assert (revoke["outcome"], revoke["target"]) == ("succeeded", made["key_id"])
    # the secret is nowhere: not in the audit answer, the audit file, nor the logs
    secret = key.split("_", 2)[2]
    assert secret not in str(actions(srv))
    db = Path(srv.settings.data_dir) / "audit.db"
    for f in (db, Path(str(db) + "-wal")):
        if f.exists():
            assert secret.encode() not in f.read_bytes()
    assert secret not in caplog.text


def test_an_admin_cannot_revoke_the_key_they_are_signed_in_with(srv):
    with srv.client(srv.keys["admin"]) as c:
        r = c.delete(f"/v1/keys/{srv.admin_id}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
        msg = r.json()["error"]["message"]
        assert "the key you are signed in with" in msg and f"lore keys revoke {srv.admin_id}" in msg
        assert c.get("/v1/me").status_code == 200  # still signed in
        r = c.delete("/v1/keys/nope")
        assert r.status_code == 404 and "GET /v1/keys" in r.json()["error"]["message"]
    refused = actions(srv, action="key.revoke", outcome="failed")
    assert refused[0]["target"] == "nope" and refused[0]["detail"].startswith("not_found: ")
    assert refused[1]["target"] == srv.admin_id and refused[1]["detail"].startswith("conflict: ")


def test_bad_key_requests_are_400_or_422_and_recorded_when_they_reach_the_store(srv):
    with srv.client(srv.keys["admin"]) as c:
        r = c.post("/v1/keys", json={"user": "ana", "role": "owner"})
        assert r.status_code == 422
        r = c.post("/v1/keys", json={"user": "ana", "extra": 1})
        assert r.status_code == 422
        r = c.post("/v1/keys", json={"user": "bad user id with spaces\n", "groups": ["a b"]})
        assert r.status_code == 400, r.text
    failed = latest(srv, "key.create")
    assert failed["outcome"] == "failed" and failed["detail"].startswith("bad_request: ")


def test_uploads_deletions_and_ingests_are_recorded(srv):
    with srv.client(srv.keys["admin"]) as c:
        r = c.post("/v1/documents", files={"file": ("expenses.md", b"# Expenses\n\nReceipts within 30 days.\n")},
                   data={"doc_type": "policy", "acl": "group:finance"})
        assert r.status_code == 201, r.text
        doc = r.json()["document"]
        up = latest(srv, "document.upload")
        assert (up["outcome"], up["target"], up["user"]) == ("succeeded", doc["id"], "root")
        assert up["detail"].startswith("expenses.md as 'Expenses' (policy), acl group:finance, ")

        r = c.post("/v1/documents", files={"file": ("notes.pdf", b"just text, not a PDF")})
        assert r.status_code == 415
        bad = latest(srv, "document.upload")
        assert (bad["outcome"], bad["target"]) == ("failed", "notes.pdf")
        assert bad["detail"].startswith("unsupported_type: notes.pdf: is not a PDF")

        r = c.delete(f"/v1/documents/{doc['id']}")
        assert r.status_code == 200, r.text
        gone = latest(srv, "document.delete")
        assert (gone["outcome"], gone["target"], gone["detail"].split(" (")[0]) == ("succeeded", doc["id"], "'Expenses'")

        r = c.post("/v1/ingest", json={"paths": ["handbook"], "doc_type": "policy"})
        assert r.status_code == 202, r.text
        job = r.json()["job_id"]
        deadline = time.monotonic() + 60
        while c.get(f"/v1/jobs/{job}").json()["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        started = latest(srv, "ingest.start")
        assert (started["outcome"], started["target"], started["detail"]) == \
            ("succeeded", "handbook", f"job {job}, doc type policy, acl default")
        r = c.post("/v1/ingest", json={"paths": ["../etc"]})
        assert r.status_code == 400
        assert latest(srv, "ingest.start")["outcome"] == "failed"

    page = actions(srv)  # newest first, one record per action
    assert [a["seq"] for a in page] == sorted((a["seq"] for a in page), reverse=True)
    assert all(a["recorded_at"].endswith("+00:00") for a in page)


def test_a_reader_gets_403_and_the_attempt_is_recorded(srv):
    with srv.client(srv.keys["reader"]) as c:
        calls = [("GET", "/v1/keys", {}), ("POST", "/v1/keys", {"json": {"user": "eve", "role": "admin"}}),
                 ("DELETE", f"/v1/keys/{srv.admin_id}", {}), ("GET", "/v1/audit/actions", {}),
                 ("DELETE", "/v1/documents/anything", {}), ("POST", "/v1/ingest", {"json": {"paths": ["handbook"]}}),
                 ("POST", "/v1/documents", {"files": {"file": ("x.md", b"# X\n\nx\n")}}), ("GET", "/v1/jobs", {})]
        for method, path, kw in calls:
            r = c.request(method, path, **kw)
            assert r.status_code == 403, (method, path, r.status_code)
            assert r.json()["error"]["code"] == "forbidden"
        docs = c.get("/v1/documents").json()["documents"]  # readers list what they may read, never an ACL
        assert docs and all(d["acl"] is None for d in docs)
    assert len(httpx.get(srv.url + "/v1/keys").json()["error"]["message"]) > 0  # no key: 401
    denied = actions(srv, outcome="denied")
    assert {a["action"] for a in denied} == {"key.create", "key.revoke", "document.delete", "ingest.start",
                                             "document.upload"}
    assert all(a["user"] == "sam" and a["role"] == "reader" for a in denied)
    assert next(a for a in denied if a["action"] == "key.revoke")["target"] == srv.admin_id
    assert "eve" not in {a["target"] for a in denied}  # a refused request's body is not trusted as a target


def test_the_admin_actions_table_is_append_only(srv):
    db = sqlite3.connect(Path(srv.settings.data_dir) / "audit.db")
    try:
        for sql in ("UPDATE admin_actions SET outcome='succeeded'", "DELETE FROM admin_actions",
                    "INSERT OR REPLACE INTO admin_actions (seq, recorded_at, role, via, action, outcome) "
                    "VALUES (1, 'x', 'admin', 'key', 'key.create', 'succeeded')"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()


def test_audit_actions_filters_and_validation(srv):
    assert {a["action"] for a in actions(srv, action="key.create")} == {"key.create"}
    assert actions(srv, user="nobody") == []
    assert actions(srv, since="2999-01-01") == []
    assert len(actions(srv, limit=2)) == 2
    with srv.client(srv.keys["admin"]) as c:
        for bad in ({"action": "key.delete"}, {"since": "yesterday"}, {"limit": 0}, {"outcome": "ok"}):
            assert c.get("/v1/audit/actions", params=bad).status_code == 422, bad
        spec = c.get("/openapi.json").json()
    for path, methods in {"/v1/keys": ("get", "post"), "/v1/keys/{key_id}": ("delete",),
                          "/v1/audit/actions": ("get",)}.items():
        for m in methods:
            op = spec["paths"][path][m]
            assert op["summary"].endswith("(admin)") and "403" in op["responses"], (path, m)
    assert spec["paths"]["/v1/keys/{key_id}"]["delete"]["responses"]["409"]
