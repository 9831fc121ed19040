"""Folder ingest is the files source (ingest/sources/files.py) run through the one engine: a data dir
written before keeps its ids and is not re-embedded, and `lore ingest` and a configured files source over
the same folder hold one document per file. Real model, real Chroma and SQLite."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from typer.testing import CliRunner

from api.cli import app
from ingest.errors import ConfigError
from ingest.sources.files import FILES, FilesSource, doc_id_for
from ingest.sources.registry import SourceConfig, SourceRegistry
from ingest.sync import Syncer
from tests.support import SAMPLES, snapshot


def as_before_the_seam(db_path) -> None:
    """What folder ingest wrote until it became the files source: no source, no external id, version 2."""
    db = sqlite3.connect(db_path)
    db.execute("UPDATE documents SET source='', external_id=''")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()


def test_a_data_dir_from_before_the_seam_keeps_its_ids_and_nothing_is_embedded_again(corpus, make_ingestor, tmp_path):
    ing = make_ingestor()
    first = ing.ingest([corpus])
    assert first.failed == [] and first.added > 5
    want = snapshot(ing)
    assert set(want["docs"]) == {doc_id_for(p) for p in corpus.rglob("*") if p.is_file()}
    ing.store.close()
    as_before_the_seam(tmp_path / "kb" / "lore.db")
    events: list[str] = []
    again = make_ingestor(on_event=lambda kind, data: events.append(kind))
    docs = again.store.documents()
    assert {(d.source, d.external_id) for d in docs} == {(FILES, d.uri) for d in docs}  # migration 3
    rep = again.ingest([corpus])
    assert (rep.added, rep.updated, rep.deleted, rep.unchanged, rep.failed) == (0, 0, 0, len(want["docs"]), [])
    assert "embedded" not in events and "stored" not in events
    assert snapshot(again) == want  # same ids, chunks, vectors


def test_lore_ingest_and_a_files_source_over_one_folder_hold_one_document_per_file(corpus, make_ingestor):
    ing = make_ingestor()
    n = ing.ingest([corpus]).added
    want = snapshot(ing)
    drive = FilesSource("drive", [corpus])
    rep = Syncer(ing).sync(drive)
    assert (rep.status, rep.added, rep.updated, rep.unchanged) == ("ok", 0, 0, n), rep  # found by id, not again
    assert snapshot(ing) == want
    pto = corpus / "policies" / "pto-policy.md"
    pto.write_text(pto.read_text() + "\n\nCarry-over requests go to people-ops.\n")
    (corpus / "specs" / "payments-api.md").unlink()
    rep = Syncer(ing).sync(drive)
    assert (rep.updated, rep.deleted) == (1, 1), rep  # a file lore ingest stored leaves when the source drops it
    assert ing.store.get_document(doc_id_for(pto)).source == "drive"
    again = ing.ingest([corpus])
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, n - 1)
    assert len(ing.store.documents()) == n - 1 == len({d.uri for d in ing.store.documents()})
    shutil.rmtree(corpus / "incidents")
    assert Syncer(ing).sync(drive).deleted == 3  # stored by lore ingest, under the source's folder


def test_a_sub_folder_ingest_removes_only_below_it_and_the_files_name_is_kept(corpus, make_ingestor, tmp_path):
    ing = make_ingestor()
    n = ing.ingest([corpus]).added
    (corpus / "policies" / "pto-policy.md").unlink()
    (corpus / "specs" / "payments-api.md").unlink()
    rep = ing.ingest([corpus / "policies"])
    assert rep.deleted == 1 and len(ing.store.documents()) == n - 1
    with pytest.raises(ConfigError, match="kept for what `lore ingest` stores"):
        Syncer(ing).sync(FilesSource(FILES, [corpus]))
    reg = SourceRegistry(tmp_path / "sources.db")
    with pytest.raises(ConfigError, match="kept for"):
        reg.add(SourceConfig(FILES, "files", {"paths": [str(corpus)]}))


def test_lore_sources_add_kind_files_syncs_what_lore_ingest_stored(tmp_path):
    folder = tmp_path / "drive"
    shutil.copytree(SAMPLES / "policies", folder)
    d = ["--data-dir", str(tmp_path / "kb")]
    run = CliRunner().invoke
    ingested = run(app, ["ingest", str(folder), *d, "--json"])
    assert ingested.exit_code == 0, ingested.output
    n = json.loads(ingested.stdout.strip().splitlines()[-1])["added"]
    added = run(app, ["sources", "add", "drive", "--kind", "files", "--path", str(folder), *d, "--json"])
    assert added.exit_code == 0, added.output
    synced = run(app, ["sources", "sync", "drive", *d, "--json"])
    assert synced.exit_code == 0, synced.output
    rep = json.loads(synced.stdout.strip().splitlines()[-1])["reports"][0]
    assert (rep["status"], rep["listed"], rep["unchanged"], rep["added"]) == ("ok", n, n, 0), rep
    docs = json.loads(run(app, ["docs", *d, "--json"]).stdout.strip().splitlines()[-1])
    assert len(docs) == n
    assert run(app, ["sources", "add", "files", "--kind", "files", "--path", str(folder), *d]).exit_code != 0
