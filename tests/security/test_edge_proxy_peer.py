"""H1: in proxy mode the TCP peer, never X-Forwarded-For, decides whose identity headers are believed.

Run against `lore serve` itself (a subprocess), since the bug was in how it starts uvicorn."""

from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.support import LORE
from tests.support.live import free_port

MALLORY = {"X-Forwarded-For": "10.0.0.5", "X-Forwarded-User": "mallory", "X-Forwarded-Groups": "hr,lore-admins"}


@contextmanager
def lore_serve(data_dir: Path, trusted: list[str]):
    """`lore serve` in proxy mode on a free loopback port; yields its base URL."""
    data_dir.mkdir(parents=True)
    port = free_port()
    env = {**os.environ, "LORE_DATA_DIR": str(data_dir), "LORE_SERVER__AUTH": "proxy",
           "LORE_SERVER__TRUSTED_PROXIES": json.dumps(trusted), "LORE_SERVER__PROXY_ADMIN_GROUP": "lore-admins",
           "LORE_EMBEDDING__BACKEND": "hash"}
    env.pop("FORWARDED_ALLOW_IPS", None)  # uvicorn's own default (trust 127.0.0.1) is what a user gets
    log = open(data_dir / "serve.log", "w")
    proc = subprocess.Popen([LORE, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "lore serve exited"
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("lore serve did not start listening")


def test_forwarded_for_does_not_make_a_local_caller_the_proxy(tmp_path):
    with ExitStack() as stack:
        # started together: the two servers warm up in parallel
        attacked, p1 = stack.enter_context(lore_serve(tmp_path / "a", ["10.0.0.5"]))
        proxied, p2 = stack.enter_context(lore_serve(tmp_path / "b", ["127.0.0.1"]))
        wait_up(attacked, p1)
        wait_up(proxied, p2)

        # a caller on 127.0.0.1 naming the trusted proxy's address in X-Forwarded-For is not the proxy
        assert httpx.get(attacked + "/v1/me", headers=MALLORY).status_code == 401
        assert httpx.get(attacked + "/v1/audit", headers=MALLORY).status_code == 401
        assert httpx.post(attacked + "/v1/search", json={"query": "salary"}, headers=MALLORY).status_code == 401

        # the trusted proxy on the same host appends the real client's address: its headers still count
        who = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-User": "ana", "X-Forwarded-Groups": "hr"}
        me = httpx.get(proxied + "/v1/me", headers=who)
        assert me.status_code == 200, me.text
        assert me.json() == {"user": "ana", "groups": ["hr"], "role": "reader", "via": "proxy", "key_id": None}
        boss = {**who, "X-Forwarded-User": "root", "X-Forwarded-Groups": "lore-admins"}
        assert httpx.get(proxied + "/v1/audit", headers=boss).status_code == 200
        assert httpx.get(proxied + "/v1/audit", headers=who).status_code == 403


def test_the_test_server_uses_the_same_uvicorn_settings(tmp_path):
    """tests/support/live.py builds its server with the same config builder as `lore serve`."""
    from api.app import uvicorn_config
    from api.settings import Settings
    from tests.support.live import LiveServer

    settings = Settings(data_dir=tmp_path, embedding={"backend": "hash"},
                        server={"auth": "proxy", "trusted_proxies": ["10.0.0.5"]})
    srv = LiveServer(settings)
    assert srv.server.config.proxy_headers is False
    assert uvicorn_config(srv.app, "127.0.0.1", 1).proxy_headers is False
    with srv:
        assert httpx.get(srv.url + "/v1/me", headers=MALLORY).status_code == 401
