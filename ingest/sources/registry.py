"""The configured sources and the report of each sync, in DATA_DIR/sources.db.

    reg = SourceRegistry(data_dir / "sources.db")
    reg.add(SourceConfig("handbook", "git", {"repo": "/srv/handbook", "branch": "main"}, interval_s=3600))
    run = reg.start("handbook"); ...; reg.finish(run, report.to_dict())

Secrets are never stored here: they are settings (LORE_SOURCE_TOKENS), looked up by source name.
"""

from __future__ import annotations

import builtins
import json
import re
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from ingest.errors import ConfigError, NotFound
from ingest.sources.files import FILES
from ingest.sqlite_db import Schema, connect

KINDS = ("files", "git", "confluence")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
KEEP_RUNS = 100  # reports kept per source
_V1 = """
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, options TEXT NOT NULL, interval_s INTEGER NOT NULL,
    acl TEXT NOT NULL, owners TEXT NOT NULL, doc_type TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL, report TEXT
);
CREATE INDEX IF NOT EXISTS runs_source ON runs(source, id);
"""
SCHEMA = Schema("sources", (_V1,), "move sources.db aside and add the sources again (`lore sources add`); the "
                "documents they synced stay in the knowledge base")


@dataclass(frozen=True)
class SourceConfig:
    """A source as configured: kind-specific options (never secrets), how often it syncs, and the readers
    and owners of items whose source states none."""

    name: str
    kind: str
    options: dict = field(default_factory=dict)
    interval_s: int = 3600  # 0 = only on demand
    acl: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    doc_type: str | None = None
    created_at: str = ""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ConfigError(f"source name {self.name!r} must be 1-63 lowercase letters, digits, - or _, "
                              "starting with a letter or digit")
        if self.kind not in KINDS:
            raise ConfigError(f"source kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.interval_s < 0:
            raise ConfigError(f"sync interval must be 0 (on demand) or more seconds, got {self.interval_s}")


class SourceRegistry:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = connect(self.path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # -- sources -----------------------------------------------------------------------------------
    def add(self, cfg: SourceConfig) -> SourceConfig:
        if cfg.name == FILES:  # checked here, not in SourceConfig: a sources.db from before still lists its rows
            raise ConfigError(f"the source name {FILES!r} is kept for what `lore ingest` stores; pick another name")
        if self.find(cfg.name) is not None:
            raise ConfigError(f"a source named {cfg.name!r} exists; remove it first (lore sources rm {cfg.name}) "
                              "or pick another name")
        stamped = replace(cfg, created_at=cfg.created_at or _now())
        with self._lock:
            self._db.execute("INSERT INTO sources VALUES (?,?,?,?,?,?,?,?)",
                             (stamped.name, stamped.kind, json.dumps(stamped.options), stamped.interval_s,
                              json.dumps(list(stamped.acl)), json.dumps(list(stamped.owners)), stamped.doc_type,
                              stamped.created_at))
        return stamped

    def find(self, name: str) -> SourceConfig | None:
        row = self._db.execute("SELECT * FROM sources WHERE name=?", (name,)).fetchone()
        return _config(row) if row else None

    def get(self, name: str) -> SourceConfig:
        cfg = self.find(name)
        if cfg is None:
            raise NotFound(f"no source named {name!r}; `lore sources list` shows the configured ones")
        return cfg

    def list(self) -> list[SourceConfig]:
        return [_config(r) for r in self._db.execute("SELECT * FROM sources ORDER BY name")]

    def remove(self, name: str) -> SourceConfig:
        cfg = self.get(name)
        with self._lock:
            self._db.execute("DELETE FROM sources WHERE name=?", (name,))
        return cfg

    # -- sync reports ------------------------------------------------------------------------------
    def start(self, name: str) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO runs (source, started_at, status) VALUES (?,?, 'running')",
                                   (name, _now()))
        return int(cur.lastrowid or 0)

    def finish(self, run: int, report: dict) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET finished_at=?, status=?, report=? WHERE id=?",
                             (report.get("finished_at") or _now(), report.get("status", "failed"),
                              json.dumps(report), run))
            self._db.execute("DELETE FROM runs WHERE source=(SELECT source FROM runs WHERE id=?) AND id NOT IN "
                             "(SELECT id FROM runs WHERE source=(SELECT source FROM runs WHERE id=?) "
                             "ORDER BY id DESC LIMIT ?)", (run, run, KEEP_RUNS))

    def runs(self, name: str, limit: int = 10) -> builtins.list[dict]:
        """The latest reports first; a run that never finished (the process died) says so."""
        rows = self._db.execute("SELECT id, started_at, status, report FROM runs WHERE source=? "
                                "ORDER BY id DESC LIMIT ?", (name, limit)).fetchall()
        out = []
        for rid, started, status, report in rows:
            rep = json.loads(report) if report else {"source": name, "started_at": started, "status": status,
                                                     "error": "the sync stopped before it finished (the process "
                                                     "ended); the next sync completes it"}
            out.append({"run": rid, **rep})
        return out

    def last(self, name: str) -> dict | None:
        got = self.runs(name, 1)
        return got[0] if got else None

    def last_success(self, name: str) -> dict | None:
        row = self._db.execute("SELECT report FROM runs WHERE source=? AND status IN ('ok', 'partial') "
                               "ORDER BY id DESC LIMIT 1", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def failures_in_a_row(self, name: str) -> int:
        n = 0
        for r in self._db.execute("SELECT status FROM runs WHERE source=? AND status != 'running' ORDER BY id DESC "
                                  "LIMIT 50", (name,)):
            if r[0] != "failed":
                break
            n += 1
        return n


def _config(row) -> SourceConfig:
    return SourceConfig(row[0], row[1], json.loads(row[2]), row[3], tuple(json.loads(row[4])),
                        tuple(json.loads(row[5])), row[6], row[7])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
