"""A real Lore service on loopback for tests: uvicorn in a thread, requests over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`with LiveServer(settings) as srv: httpx.get(srv.url + "/healthz")`."""

    def __init__(self, settings, services=None) -> None:
        from api.app import create_app, uvicorn_config

        self.settings = settings
        self.app = create_app(settings, services=services, warm=True)
        self.services = self.app.state.services
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the same uvicorn settings as `lore serve` (no proxy headers: the TCP peer is the client)
        self.server = uvicorn.Server(uvicorn_config(self.app, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)


def ingest(settings, paths: list[Path], acl: tuple[str, ...] = ()) -> dict:
    from api.wiring import build_ingestor, build_store, refresh_keyword_index

    report = build_ingestor(settings).ingest(paths, acl=acl)
    refresh_keyword_index(settings, build_store(settings))
    return report.to_dict()


def wait_job(c: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    """Poll an ingest job until it ends (or `timeout` s pass) and return its last state."""
    deadline = time.monotonic() + timeout
    while True:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


@contextmanager
def running(settings):
    with LiveServer(settings) as srv:
        yield srv


@contextmanager
def small_service(base: Path, text: str):
    """A live service over one Markdown document, with the hash embedder (fast; for tests of the edges, not
    of search quality), a reader key (`.reader`) and an admin key (`.admin`)."""
    from api.settings import Settings

    (base / "docs").mkdir()
    (base / "docs" / "leave.md").write_text(text)
    settings = Settings(data_dir=base / "kb", embedding={"backend": "hash"}, ingest={"parse_workers": 0})
    ingest(settings, [base / "docs"])
    with LiveServer(settings) as s:
        s.reader = s.services.keys.create("sam", "", "reader")[0]
        s.admin = s.services.keys.create("root", "", "admin")[0]
        yield s


def run_async(main):
    """`anyio.run(main)` in a thread of its own: the session's Playwright browser (sync API) keeps an event
    loop running in the main thread once a browser test has run, and asyncio refuses a second one there."""
    import anyio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="lore-test-async") as pool:
        return pool.submit(anyio.run, main).result()
