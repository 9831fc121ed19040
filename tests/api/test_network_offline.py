"""Lore never reaches for the network: the real commands under `strace -f -e trace=network` (issue 16).

`lore ingest` (with a fresh ONNX export), `lore search`, `lore ask`, a short `lore serve` session that
answers a question over HTTP and over MCP, and `lore mcp` over stdio must make no DNS query and connect to
nothing outside loopback. ONNX Runtime
used to look up its telemetry host from every process that loaded it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.support import LORE, REPO, SAMPLES
from tests.support.live import free_port

# a connect or send to an internet address: anything but loopback, the unspecified address or a Unix socket
_INET = re.compile(r"(connect|sendto|sendmsg|sendmmsg)\([^)]*sa_family=AF_INET6?,\s*sin6?_port=htons\((\d+)\)"
                   r".*?(?:inet_addr\(\"([^\"]+)\"\)|inet_pton\(AF_INET6,\s*\"([^\"]+)\")")


def _strace() -> str:
    exe = shutil.which("strace")
    if exe is None:
        pytest.fail("strace is not installed: `make install` installs Debian's strace", pytrace=False)
    return exe


def outbound(trace: str) -> list[str]:
    """Lines of an strace log that leave the machine or ask DNS (port 53 anywhere, a DNS name in a payload)."""
    bad = []
    for line in trace.splitlines():
        m = _INET.search(line)
        if m:
            port, addr = int(m.group(2)), m.group(3) or m.group(4)
            loop = addr.startswith("127.") or addr in ("::1", "0.0.0.0", "::")
            if port == 53 or not loop:
                bad.append(line.strip()[:300])
        elif "htons(53)" in line or re.search(r"\\6events\\4data", line):
            bad.append(line.strip()[:300])
    return bad


def traced(args: list[str], log: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([_strace(), "-f", "-qq", "-e", "trace=network", "-o", str(log), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def clean_env(tmp_path) -> dict:
    """The environment a user has: none of the opt-outs the Makefile or the tests set, a fresh model cache."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORT_", "HF_", "TRANSFORMERS_", "ANONYMIZED_", "DO_NOT_TRACK"))}
    env["LORE_EMBEDDING__ONNX_CACHE_DIR"] = str(tmp_path / "models")  # the export path loads ONNX Runtime too
    return env


def test_cli_commands_make_no_outbound_lookups(tmp_path, clean_env):
    data = tmp_path / "kb"
    runs = {
        "ingest": [LORE, "ingest", str(SAMPLES), "--data-dir", str(data)],
        "search": [LORE, "search", "how many PTO hours carry over", "--data-dir", str(data)],
        "ask": [LORE, "ask", "How many PTO hours can I carry over?", "--data-dir", str(data)],
    }
    for name, args in runs.items():
        log = tmp_path / f"{name}.strace"
        r = traced(args, log, clean_env)
        assert r.returncode == 0, (name, r.stderr[-2000:])
        assert log.stat().st_size > 0, f"strace wrote nothing for {name}"
        assert outbound(log.read_text()) == [], (name, outbound(log.read_text())[:5])
        # the fresh cache's export is announced once, then found again; no library progress bars
        assert ("exporting the embedding model to ONNX" in r.stderr) == (name == "ingest"), (name, r.stderr[-500:])
        assert "Loading weights" not in r.stderr, (name, r.stderr[-500:])


def test_serve_session_makes_no_outbound_lookups(tmp_path, clean_env):
    data = tmp_path / "kb"
    assert subprocess.run([LORE, "ingest", str(SAMPLES), "--data-dir", str(data)], cwd=REPO, env=clean_env,
                          capture_output=True, timeout=600).returncode == 0
    key = json.loads(subprocess.run([LORE, "keys", "create", "--user", "sam", "--json", "--data-dir", str(data)],
                                    cwd=REPO, env=clean_env, capture_output=True, text=True).stdout)["key"]
    port, log = free_port(), tmp_path / "serve.strace"
    proc = subprocess.Popen([_strace(), "-f", "-qq", "-e", "trace=network", "-o", str(log), LORE, "serve", "--port",
                             str(port), "--data-dir", str(data)], cwd=REPO, env=clean_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "lore serve did not start"
            time.sleep(0.5)
        r = httpx.post(url + "/v1/ask", json={"question": "How many PTO hours can I carry over?"},
                       headers={"Authorization": f"Bearer {key}"}, timeout=120)
        assert r.status_code == 200 and r.json()["citations"], r.text[:500]
        got = mcp_ask(_http_mcp(f"{url}/mcp", key))  # the MCP server mounted at /mcp (issue 19)
        assert not got.is_error and got.structured_content["citations"], got.content
        time.sleep(5)  # a background uploader would have tried by now
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # strace and the server it runs
        proc.wait(timeout=60)
    trace = log.read_text()
    assert "bind(" in trace  # strace saw the server's own socket: the trace is real
    assert outbound(trace) == [], outbound(trace)[:5]
    # `lore mcp` over stdio, as a coding assistant starts it, on the same knowledge base (the server is gone)
    log = tmp_path / "mcp.strace"
    server = StdioServerParameters(command=_strace(), args=["-f", "-qq", "-e", "trace=network", "-o", str(log), LORE,
                                                            "mcp", "--data-dir", str(data)],
                                   env={**clean_env, "LORE_API_KEY": key}, cwd=str(REPO))
    with open(tmp_path / "mcp.stderr", "w") as errlog:
        got = mcp_ask(lambda: stdio_client(server, errlog=errlog))
    assert not got.is_error and got.structured_content["citations"], got.content
    assert log.stat().st_size > 0 and outbound(log.read_text()) == [], outbound(log.read_text())[:5]


def _http_mcp(url: str, key: str):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    return lambda: streamable_http_client(url, http_client=httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=120))


def mcp_ask(transport):
    """The ask tool through the SDK's own client; `transport()` is built inside the event loop."""
    from mcp import Client

    from tests.support.live import run_async

    async def main():
        async with Client(transport()) as client:
            return await client.call_tool("ask", {"question": "How many PTO hours can I carry over?"})

    return run_async(main)


def test_the_checker_catches_a_dns_query():
    line = ('123 sendto(5, "\\34\\333\\1\\0\\0\\1\\0\\0\\0\\0\\0\\0\\6mobile\\6events\\4data\\t"..., 50, MSG_NOSIGNAL, '
            'NULL, 0) = 50')
    dns = '123 connect(27, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0'
    web = '9 connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2a00::1")'
    local = '9 connect(3, {sa_family=AF_INET, sin_port=htons(8000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0'
    assert len(outbound("\n".join([line, dns, web, local]))) == 3
