"""Legacy single-byte text files are stored exactly: "naïve" must not become "naďve" (cp1250 guessed)."""

from __future__ import annotations

import pytest

from ingest.formats import decode_text

PHRASE = "naïve café résumé"


@pytest.mark.parametrize("name,body", [
    ("notes.txt", f"Meeting notes\n\nThe {PHRASE} was discussed.\n"),
    ("guide.md", f"# Guide\n\nA {PHRASE} for new hires.\n"),
    ("short.txt", f"{PHRASE}\n"),
])
def test_latin1_text_is_stored_exactly(tmp_path, make_ingestor, name, body):
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(body.encode("latin-1"))
    ing = make_ingestor()
    report = ing.ingest([src])
    assert report.failed == [] and report.added == 1
    (doc,) = ing.store.documents()
    assert PHRASE in ing.store.document_text(doc.id)
    assert any(PHRASE in c.text for c in ing.store.chunks(doc.id))


@pytest.mark.parametrize("text,encoding", [
    (f"Le {PHRASE} de la réunion à Zürich est très complet.", "latin-1"),
    ("Straße für Größe Übermaß", "latin-1"),
    ("Smart “quotes” – dashes… and €5 fees", "cp1252"),
    (f"\ufeff{PHRASE} with a byte order mark", "utf-8"),
    ("Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.", "cp1250"),
    ("Γειά σου κόσμε, αυτό είναι ένα έγγραφο.", "cp1253"),
])
def test_decode_order(text, encoding):
    assert decode_text("x.txt", text.encode(encoding)) == text.lstrip("\ufeff")
