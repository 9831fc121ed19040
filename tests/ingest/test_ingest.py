"""Incremental, idempotent ingest with full provenance, over the real model and embedded Chroma."""

import os
import shutil

import pytest

from ingest.errors import ConfigError, DocumentNotFound, StoreLocked
from ingest.pipeline import doc_id_for

from tests.support import snapshot


def test_ingest_samples_provenance_complete(make_ingestor, corpus):
    ing = make_ingestor()
    rep = ing.ingest([corpus])
    assert rep.failed == [] and rep.added == 10 and rep.chunks > 10
    docs = {os.path.basename(d.uri): d for d in ing.store.documents()}
    assert docs["pto-policy.md"].doc_type == "policy" and docs["payments-api.md"].doc_type == "spec"
    assert docs["2025-06-02-eu-latency.eml"].doc_type == "incident"  # from the folder name
    assert docs["compensation-bands.md"].acl == ("group:hr",)  # from front matter
    assert docs["pto-policy.md"].updated_at.startswith("2026-03-01")
    assert docs["remote-work-policy.pdf"].title == "Remote Work Policy"
    for d in docs.values():
        text = ing.store.document_text(d.id)
        chunks = ing.store.chunks(d.id)
        assert len(chunks) == d.chunk_count > 0
        for c in chunks:
            assert text[c.start:c.end] == c.text and c.text
            assert c.section and c.version == d.version and c.token_count <= ing.chunker.max_tokens
            if d.uri.endswith((".pdf", ".pptx")):
                assert c.page_start >= 1 and c.page_end >= c.page_start
            else:
                assert c.page_start is None
    snap = snapshot(ing)
    assert snap["vector_ids"] == set(snap["chunks"]) and snap["fts_rows"] == len(snap["chunks"])


def test_rerun_changes_nothing_and_never_reembeds(make_ingestor, corpus):
    ing = make_ingestor()
    ing.ingest([corpus])
    before = snapshot(ing)
    calls = []
    real = ing.embedder.embed_documents
    ing.embedder.embed_documents = lambda texts: calls.append(len(texts)) or real(texts)
    try:
        rep = ing.ingest([corpus])
    finally:
        del ing.embedder.embed_documents
    assert rep.to_dict() == {"added": 0, "updated": 0, "unchanged": 10, "deleted": 0, "failed": [], "chunks": 0,
                             "excluded": 0, "acl_changed": []}
    assert calls == [] and snapshot(ing) == before


def test_changed_file_replaces_old_version_everywhere(make_ingestor, corpus):
    ing = make_ingestor()
    ing.ingest([corpus])
    pto = corpus / "policies" / "pto-policy.md"
    doc_id = doc_id_for(pto)
    old_ids = {c.id for c in ing.store.chunks(doc_id)}
    pto.write_text(pto.read_text().replace("up to 40 hours", "up to 80 hours"))
    embedded = []
    real = ing.embedder.embed_documents
    ing.embedder.embed_documents = lambda texts: embedded.extend(texts) or real(texts)
    try:
        rep = ing.ingest([corpus])
    finally:
        del ing.embedder.embed_documents
    assert (rep.updated, rep.unchanged, rep.added) == (1, 9, 0)
    assert len(embedded) == 1 and "80 hours" in embedded[0]  # only the changed chunk is re-embedded
    new = ing.store.chunks(doc_id)
    assert not old_ids & {c.id for c in new}
    snap = snapshot(ing)
    assert not old_ids & snap["vector_ids"] and snap["vector_ids"] == set(snap["chunks"])
    hits = ing.store._db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH '\"up to 40 hours\"'").fetchone()[0]
    assert hits == 0


def test_removed_file_is_deleted_from_every_index(make_ingestor, corpus):
    ing = make_ingestor()
    ing.ingest([corpus])
    victim = corpus / "specs" / "payments-api.md"
    doc_id = doc_id_for(victim)
    victim.unlink()
    rep = ing.ingest([corpus])
    assert rep.deleted == 1 and ing.store.get_document(doc_id) is None
    snap = snapshot(ing)
    assert not any(i.startswith(doc_id) for i in snap["vector_ids"]) and snap["fts_rows"] == len(snap["chunks"])
    # ingesting a single file never deletes its siblings
    rep = ing.ingest([corpus / "specs" / "data-retention.txt"])
    assert rep.deleted == 0 and rep.unchanged == 1


def test_rm_by_id(make_ingestor, corpus):
    ing = make_ingestor()
    ing.ingest([corpus])
    doc_id = doc_id_for(corpus / "policies" / "pto-policy.md")
    ing.remove(doc_id)
    assert ing.store.get_document(doc_id) is None
    assert not any(i.startswith(doc_id) for i in ing.vectors.ids())
    with pytest.raises(DocumentNotFound, match="lore docs"):
        ing.remove(doc_id)


def test_bad_files_reported_rest_ingested_nothing_lost(make_ingestor, corpus, tmp_path):
    ing = make_ingestor(max_file_bytes=100_000)
    ing.ingest([corpus])
    before = snapshot(ing)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.md").write_bytes(b"")
    (bad / "garbage.txt").write_bytes(os.urandom(4096) + b"\x00")
    (bad / "corrupt.pdf").write_bytes(b"%PDF-1.4 truncated")
    (bad / "huge.txt").write_text("word " * 50_000)
    (bad / "notes.xyz").write_text("unknown type")
    (bad / "loop").symlink_to(bad / "loop")
    (bad / "dangling.md").symlink_to(bad / "missing.md")
    (bad / "sub").mkdir()
    (bad / "sub" / "back").symlink_to(bad, target_is_directory=True)
    shutil.copy(corpus / "specs" / "data-retention.txt", bad / "good.txt")
    rep = ing.ingest([bad, tmp_path / "no-such-dir"])
    reasons = {os.path.basename(f["path"]): f["error"] for f in rep.failed}
    assert rep.added == 1
    assert "empty" in reasons["empty.md"] and "binary" in reasons["garbage.txt"]
    assert "PDF" in reasons["corrupt.pdf"] and "MiB limit" in reasons["huge.txt"]
    assert "unsupported" in reasons["notes.xyz"] and "loop" in reasons["loop"]
    assert "dangling" in reasons["dangling.md"] and "does not exist" in reasons["no-such-dir"]
    assert any("loop" in r for p, r in reasons.items() if p == "back")
    after = snapshot(ing)
    assert set(before["docs"]) < set(after["docs"])  # nothing previously stored lost


def test_a_folder_linked_beside_itself_is_walked_once_and_is_no_failure(tmp_path):
    """A link to a sibling folder is a second route, not a loop: nothing is reported, each file found once."""
    from ingest.discover import discover

    root = tmp_path / "kb"
    (root / "policies").mkdir(parents=True)
    (root / "policies" / "pto.md").write_text("# PTO\n\nTwenty days.\n")
    (root / "aaa-shortcut").symlink_to(root / "policies", target_is_directory=True)  # walked first
    found = discover([root])
    assert found.failures == () and found.roots == (root,)
    assert [c.path.name for c in found.candidates] == ["pto.md"]


def test_corrupted_update_keeps_previous_version(make_ingestor, corpus):
    ing = make_ingestor()
    ing.ingest([corpus])
    pdf = corpus / "policies" / "remote-work-policy.pdf"
    doc = ing.store.get_document(doc_id_for(pdf))
    pdf.write_bytes(pdf.read_bytes()[:500])
    rep = ing.ingest([corpus])
    assert [os.path.basename(f["path"]) for f in rep.failed] == ["remote-work-policy.pdf"] and rep.deleted == 0
    assert ing.store.get_document(doc.id).version == doc.version


def test_acl_and_doc_type_arguments(make_ingestor, corpus):
    ing = make_ingestor()
    rep = ing.ingest([corpus / "specs"], doc_type="incident", acl=["group:eng", "user:ana"])
    assert rep.added == 2
    for d in ing.store.documents():
        assert d.doc_type == "incident" and d.acl == ("group:eng", "user:ana")
    meta = ing.vectors.get(sorted(ing.vectors.ids()))
    assert all(m["acl"] == ["group:eng", "user:ana"] for _, m in meta.values())
    # changing the ACL alone updates the document without re-embedding
    rep = ing.ingest([corpus / "specs"], doc_type="incident", acl=["public"])
    assert rep.updated == 2
    with pytest.raises(ConfigError, match="invalid ACL token"):
        ing.ingest([corpus], acl=["everyone"])
    with pytest.raises(ConfigError, match="--doc-type"):
        ing.ingest([corpus], doc_type="memo")


def test_second_writer_is_refused(make_ingestor, corpus):
    from filelock import FileLock

    ing = make_ingestor()
    with FileLock(str(ing.lock_path)):
        with pytest.raises(StoreLocked, match="another ingest"):
            ing.ingest([corpus])
