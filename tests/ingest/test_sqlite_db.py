"""The SQLite helper (ingest/sqlite_db.py): versions, forward migrations, and files from before versions."""

from __future__ import annotations

import sqlite3

import pytest

from ingest.errors import StoreError
from ingest.sqlite_db import Schema, connect, statements

V1 = """
CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notes_body ON notes(body);
"""
V2 = "ALTER TABLE notes ADD COLUMN owner TEXT NOT NULL DEFAULT '';"


def schema(*migrations) -> Schema:
    return Schema("notes", migrations or (V1,), "move notes.db aside")


def test_a_new_file_gets_every_migration(tmp_path):
    db = connect(tmp_path / "n.db", schema(V1, V2))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("INSERT INTO notes (body, owner) VALUES ('a', 'group:hr')")


def test_a_file_from_before_versions_is_migrated_with_its_rows(tmp_path):
    old = sqlite3.connect(tmp_path / "n.db")
    old.executescript(V1)  # as the code before versions wrote it: executescript, user_version 0
    old.execute("INSERT INTO notes (body) VALUES ('kept')")
    old.commit()
    old.close()
    db = connect(tmp_path / "n.db", schema(V1, V2))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT body, owner FROM notes").fetchall() == [("kept", "")]
    db.close()
    again = connect(tmp_path / "n.db", schema(V1, V2))  # opening again changes nothing
    assert again.execute("SELECT count(*) FROM notes").fetchone()[0] == 1


def test_a_failing_migration_leaves_the_previous_version_and_runs_again_next_time(tmp_path):
    connect(tmp_path / "n.db", schema(V1)).close()

    def broken(db):
        db.execute("ALTER TABLE notes ADD COLUMN owner TEXT")
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        connect(tmp_path / "n.db", schema(V1, broken))
    check = sqlite3.connect(tmp_path / "n.db")
    assert check.execute("PRAGMA user_version").fetchone()[0] == 1
    assert [r[1] for r in check.execute("PRAGMA table_info(notes)")] == ["id", "body"]  # rolled back
    check.close()
    db = connect(tmp_path / "n.db", schema(V1, V2))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_file_from_a_newer_lore_is_refused_and_left_alone(tmp_path):
    connect(tmp_path / "n.db", schema(V1, V2)).close()
    with pytest.raises(StoreError, match="newer Lore.*version 2.*up to 1.*upgrade Lore"):
        connect(tmp_path / "n.db", schema(V1))
    assert sqlite3.connect(tmp_path / "n.db").execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_damaged_file_names_itself_and_the_fix(tmp_path):
    (tmp_path / "n.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"n\.db is not a SQLite database.*move notes\.db aside"):
        connect(tmp_path / "n.db", schema())


def test_statements_split_a_script_without_committing():
    assert [s.strip() for s in statements(V1)] == [
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        "CREATE INDEX IF NOT EXISTS notes_body ON notes(body);"]
    with pytest.raises(ValueError, match="incomplete"):
        list(statements("CREATE TABLE x (a"))
