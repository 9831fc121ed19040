"""Opening a data dir written before schema versions (every database as Lore wrote it until issue 17)
migrates it forward in place: nothing stored is lost, and the new columns are there."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from retriever.search import Retriever
from ingest.access import Principal


def as_before_versions(db_path: Path, drop: dict[str, list[str]] | None = None, indexes: tuple[str, ...] = ()) -> None:
    """Turn a file back into what the code before migrations wrote: no user_version, no later columns."""
    db = sqlite3.connect(db_path)
    for name in indexes:
        db.execute(f"DROP INDEX {name}")
    for table, columns in (drop or {}).items():
        for col in columns:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    db.execute("PRAGMA user_version=0")
    db.commit()
    db.close()


def test_a_registry_from_before_versions_is_migrated_and_still_answers(tmp_path, corpus, make_ingestor):
    ing = make_ingestor()
    assert ing.ingest([corpus]).failed == []
    want = {d.id: (d.uri, d.version, d.acl, d.chunk_count) for d in ing.store.documents()}
    ing.store.close()
    path = tmp_path / "kb" / "lore.db"
    as_before_versions(path, {"documents": ["owners", "source", "external_id"]}, ("documents_source",))
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(documents)")]
    assert cols[-3:] == ["fingerprint", "text", "front_matter"]  # exactly the old table
    again = make_ingestor()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3
    assert {d.id: (d.uri, d.version, d.acl, d.chunk_count) for d in again.store.documents()} == want
    # folder ingest's documents belong to the files source (migration 3), by their paths
    assert all(d.owners == () and d.source == "files" and d.external_id == d.uri for d in again.store.documents())
    hits = Retriever(again.store, again.vectors, again.embedder).search("PTO carry over", Principal(), top_k=3).hits
    assert hits and hits[0].doc.id in want
    assert again.ingest([corpus]).unchanged == len(want)  # an ingest after the migration changes nothing


def test_the_other_databases_from_before_versions_open_with_their_rows(tmp_path):
    from ingest.keys import KeyStore
    from ingest.joblog import JobLog
    from api.slack.convo import Seen
    from evals.audit import AuditLog

    keys = KeyStore(tmp_path / "auth.db")
    key, info = keys.create("ana", ("hr",), "reader")
    keys._db.close()
    log = JobLog(tmp_path / "jobs.db")
    log._db.close()
    audit = AuditLog(tmp_path / "audit.db")
    audit._db.close()
    seen = Seen(tmp_path / "slack.db")
    assert seen.first("evt-1")
    seen.close()
    for name in ("auth.db", "jobs.db", "audit.db", "slack.db"):
        as_before_versions(tmp_path / name)
    assert KeyStore(tmp_path / "auth.db").verify(key).key_id == info.key_id
    assert JobLog(tmp_path / "jobs.db") is not None
    assert AuditLog(tmp_path / "audit.db").path.exists()
    assert not Seen(tmp_path / "slack.db").first("evt-1")  # the delivery is still remembered
    for name in ("auth.db", "jobs.db", "slack.db"):
        assert sqlite3.connect(tmp_path / name).execute("PRAGMA user_version").fetchone()[0] >= 1, name
