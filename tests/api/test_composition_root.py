"""The composition root (api/deps.py::Services): parts built lazily and once, consumers given parts."""

from __future__ import annotations

import inspect
import threading
import time

from fastapi.testclient import TestClient


def _settings(tmp_path):
    from api.settings import Settings

    return Settings(data_dir=tmp_path / "kb", server={"auth": "none"}, embedding={"backend": "hash"})


def test_a_request_for_the_registry_loads_no_model(tmp_path):
    from api.app import create_app

    app = create_app(_settings(tmp_path))
    svc = app.state.services
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/v1/documents").status_code == 200
        assert c.get("/v1/keys").status_code == 200
    built = {k for k in vars(svc) if k.startswith("_") and k != "_lock"}
    assert "_store" in built and "_keys" in built
    assert not built & {"_embedder", "_vectors", "_retriever", "_assistant"}, built


def test_concurrent_first_uses_build_a_part_once(tmp_path, monkeypatch):
    from api import wiring
    from api.deps import Services

    calls = []
    real = wiring.build_store

    def slow(s):
        calls.append(1)
        time.sleep(0.2)
        return real(s)

    monkeypatch.setattr(wiring, "build_store", slow)
    svc = Services(_settings(tmp_path))
    got = []
    threads = [threading.Thread(target=lambda: got.append(svc.store)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(s) for s in got}) == 1
    svc.close()


def test_consumers_take_parts_not_the_container():
    from api.slack.bot import Bot
    from evals.analytics import conflicts_report, gaps_report, stale_report
    from ingest.jobs import Jobs
    from ingest.scheduler import Syncs

    for fn in (Jobs, Syncs, Bot, gaps_report, stale_report, conflicts_report):
        params = inspect.signature(fn).parameters
        assert not {"svc", "services"} & set(params), (fn, list(params))
