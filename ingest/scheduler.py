"""Source syncs in a running service: on demand (POST /v1/sources/{name}/sync) and on each source's interval.

A sync takes the service's write slot like an ingest job or an upload (`Jobs.writing`), so writes never
interleave; a sync that finds the slot taken is skipped (the scheduler tries again on its next tick, an
on-demand one is 409).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable, ContextManager

from ingest.errors import LoreError
from ingest.jobs import Busy
from ingest.sources.registry import SourceConfig, SourceRegistry

log = logging.getLogger(__name__)
TICK_S = 30.0  # how often the scheduler looks for due sources


class Syncs:
    """`Syncs(registry, sync, writing, observe)`: `sync(name)` syncs one source and returns its report (the
    service's `api.wiring.sync_source`); `writing()` holds the write slot; `observe(report)` counts it."""

    def __init__(self, registry: SourceRegistry, sync: Callable[[str], dict],
                 writing: Callable[[], ContextManager[None]], observe: Callable[[dict], None],
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.registry, self._sync, self._writing, self._observe = registry, sync, writing, observe
        self._on_change = on_change
        self._lock = threading.Lock()
        self._running: str | None = None
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None
        for cfg in registry.list():  # a restarted service still shows when each source last synced
            last = registry.last_success(cfg.name)
            if last:
                observe({**last, "failed": []})

    @property
    def running(self) -> str | None:
        return self._running

    def start(self, name: str) -> None:
        """Sync `name` in the background now; Busy if a sync or another write is running."""
        self.registry.get(name)  # NotFound first
        with self._lock:
            if self._running is not None:
                raise Busy(f"source {self._running!r} is syncing; wait until GET /v1/sources shows it finished")
            self._running = name
        threading.Thread(target=self._guarded, args=(name,), name=f"lore-sync-{name}", daemon=True).start()

    def run(self, name: str) -> dict | None:
        """Sync now in this thread; None when the write slot is taken (nothing recorded)."""
        with self._lock:
            if self._running is not None and self._running != name:
                return None
            self._running = name
        return self._guarded(name)

    def _guarded(self, name: str) -> dict | None:
        try:
            with self._writing():
                report = self._sync(name)
        except Busy as exc:
            log.info("sync %s skipped: %s", name, exc)
            return None
        except LoreError as exc:  # the registry itself failed: nothing could be recorded
            log.error("sync %s could not run: %s", name, exc)
            return None
        finally:
            with self._lock:
                self._running = None
        self._observe(report)
        if report.get("added") or report.get("updated") or report.get("deleted"):
            self._on_change()
        return report

    # -- schedule ------------------------------------------------------------------------------
    def due(self, cfg: SourceConfig, now: float | None = None) -> bool:
        if cfg.interval_s <= 0:
            return False
        last = self.registry.last(cfg.name)
        if last is None:
            return True
        when = last.get("finished_at") or last.get("started_at") or ""
        try:
            at = datetime.fromisoformat(when).timestamp()
        except ValueError:
            return True
        return (now if now is not None else datetime.now(timezone.utc).timestamp()) - at >= cfg.interval_s

    def tick(self) -> list[str]:
        """Sync every due source, one after another; the names synced."""
        done = []
        for cfg in self.registry.list():
            if self._stop.is_set():
                break
            if self.due(cfg) and self.run(cfg.name) is not None:
                done.append(cfg.name)
        return done

    def start_scheduler(self, tick_s: float = TICK_S) -> None:
        def loop() -> None:
            while not self._stop.wait(tick_s):
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - the scheduler outlives any one sync's bug
                    log.exception("source scheduler tick failed")
                    time.sleep(tick_s)

        self._scheduler = threading.Thread(target=loop, name="lore-sync-scheduler", daemon=True)
        self._scheduler.start()

    def close(self) -> None:
        self._stop.set()
