"""Who may call the service: API keys (CLI-managed, hashed), the SSO proxy mode, and the loopback-only demo mode."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import httpx
import pytest

from tests.support import LORE


def run(*args, env=None, data_dir):
    import os

    return subprocess.run([LORE, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_keys_cli_create_list_revoke_and_only_hashes_stored(tmp_path):
    made = run("keys", "create", "--user", "ana", "--groups", "hr,support", "--role", "admin", "--json",
               data_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout.splitlines()[-1])["key"]
    assert key.startswith("lore_")
    listed = json.loads(run("keys", "list", "--json", data_dir=tmp_path).stdout)
    assert [(k["user"], k["groups"], k["role"]) for k in listed] == [("ana", ["hr", "support"], "admin")]
    raw = sqlite3.connect(tmp_path / "auth.db").execute("SELECT * FROM api_keys").fetchall()
    assert key.split("_", 2)[2] not in repr(raw)  # the secret is not stored, only its sha256
    from ingest.keys import KeyStore

    assert KeyStore(tmp_path / "auth.db").verify(key).principal.groups == ("hr", "support")
    assert run("keys", "revoke", listed[0]["key_id"], data_dir=tmp_path).returncode == 0
    assert json.loads(run("keys", "list", "--json", data_dir=tmp_path).stdout) == []
    assert json.loads(run("keys", "list", "--all", "--json", data_dir=tmp_path).stdout)[0]["revoked_at"]


@pytest.mark.parametrize("args,words", [(["--role", "owner"], "role 'owner'"),
                                        (["--user", "a b"], "user id 'a b'"),
                                        (["--groups", "hr,bad/group"], "group 'bad/group'")])
def test_keys_cli_rejects_bad_input_naming_it(tmp_path, args, words):
    r = run("keys", "create", *args, data_dir=tmp_path)
    assert r.returncode == 2 and words in r.stderr


def test_revoking_an_unknown_key_says_how_to_find_ids(tmp_path):
    r = run("keys", "revoke", "nope", data_dir=tmp_path)
    assert r.returncode == 2 and "lore keys list" in r.stderr


def test_demo_mode_refuses_a_non_loopback_address(tmp_path):
    r = run("serve", "--host", "0.0.0.0", "--port", "9", env={"LORE_SERVER__AUTH": "none"}, data_dir=tmp_path)
    assert r.returncode == 2 and "refuses to listen on 0.0.0.0" in r.stderr


def test_proxy_mode_needs_trusted_addresses(tmp_path):
    r = run("serve", env={"LORE_SERVER__AUTH": "proxy"}, data_dir=tmp_path)
    assert r.returncode == 2 and "LORE_SERVER__TRUSTED_PROXIES" in r.stderr
    r = run("serve", env={"LORE_SERVER__AUTH": "proxy", "LORE_SERVER__TRUSTED_PROXIES": '["10.0.0.300"]'},
            data_dir=tmp_path)
    assert r.returncode == 2 and "10.0.0.300" in r.stderr


def _server(tmp_path, **server):
    from api.settings import Settings
    from tests.support.live import LiveServer

    return LiveServer(Settings(data_dir=tmp_path, server=server))


def test_demo_mode_needs_no_key_on_loopback(tmp_path):
    with _server(tmp_path, auth="none") as srv:
        assert httpx.get(srv.url + "/v1/me").json()["via"] == "demo"
        assert httpx.post(srv.url + "/v1/search", json={"query": "pto"}).status_code == 200


def test_proxy_headers_count_only_from_trusted_addresses(tmp_path):
    headers = {"X-Forwarded-User": "ana", "X-Forwarded-Groups": "hr, admins"}
    with _server(tmp_path / "a", auth="proxy", trusted_proxies=["127.0.0.0/8"], proxy_admin_group="admins") as srv:
        me = httpx.get(srv.url + "/v1/me", headers=headers).json()
        assert me == {"user": "ana", "groups": ["admins", "hr"], "role": "admin", "via": "proxy", "key_id": None}
        bad = httpx.get(srv.url + "/v1/me", headers={"X-Forwarded-User": "a b"})
        assert bad.status_code == 400 and "user id" in bad.json()["error"]["message"]
        assert httpx.get(srv.url + "/v1/me").status_code == 401  # no header, no key: not authenticated
    with _server(tmp_path / "b", auth="proxy", trusted_proxies=["10.9.9.9"]) as srv:
        r = httpx.get(srv.url + "/v1/me", headers=headers)  # the caller is not the proxy: headers ignored
        assert r.status_code == 401
        key = srv.services.keys.create("sam", "", "reader")[0]
        assert httpx.get(srv.url + "/v1/me", headers={**headers, "Authorization": f"Bearer {key}"}).json()["user"] == "sam"


def test_serve_says_how_to_get_a_key_when_there_is_none(tmp_path):
    import os
    import time

    from tests.support.live import free_port

    port = free_port()
    proc = subprocess.Popen([LORE, "serve", "--port", str(port), "--data-dir", str(tmp_path)], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "LORE_SERVER__AUTH": "keys"})
    try:
        deadline, seen = time.monotonic() + 120, ""
        while "lore keys create" not in seen and time.monotonic() < deadline and proc.poll() is None:
            seen += proc.stderr.readline()
        assert f"http://127.0.0.1:{port}" in seen and "no API keys yet" in seen, seen
        while time.monotonic() < deadline:  # the warning comes before uvicorn listens
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/v1/me").status_code == 401
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        else:
            raise AssertionError("lore serve did not start listening")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
