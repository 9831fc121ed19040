"""A corrupt auth.db is the documented storage error (CLI exit code 5, HTTP 503), naming the file, not a traceback."""

from __future__ import annotations

import logging
import os
import subprocess

import httpx

from tests.support import LORE

GARBAGE = b"this is not an SQLite database\n" * 200


def test_keys_cli_exits_5_naming_the_file(tmp_path):
    (tmp_path / "auth.db").write_bytes(GARBAGE)
    for args in (["keys", "list"], ["keys", "list", "--json"], ["keys", "create", "--user", "ana"],
                 ["keys", "revoke", "abc"]):
        r = subprocess.run([LORE, *args, "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "300"})
        assert r.returncode == 5, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and "auth.db" in r.stderr and "lore keys create" in r.stderr, r.stderr


def test_a_live_server_answers_503_json(tmp_path, caplog):
    from api.settings import Settings
    from tests.support.live import LiveServer

    (tmp_path / "auth.db").write_bytes(GARBAGE)
    caplog.set_level(logging.WARNING)
    with LiveServer(Settings(data_dir=tmp_path, embedding={"backend": "hash"})) as srv:
        r = httpx.get(srv.url + "/v1/me", headers={"Authorization": "Bearer lore_abc_def"})
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "store_unavailable" and "auth.db" in err["message"], err
        assert httpx.get(srv.url + "/healthz").status_code == 200
    assert not [x for x in caplog.records if x.exc_info], "a traceback was logged"
