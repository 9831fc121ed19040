"""Two different upload names are two documents, even when they sanitize to the same stored name;
uploading the same name again replaces its document, as before."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest


def md(title: str, text: str) -> bytes:
    return f"# {title}\n\n{text}\n".encode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer

    settings = Settings(data_dir=tmp_path_factory.mktemp("names") / "data", server={"auth": "none"})
    with LiveServer(settings) as s:
        yield s


def upload(srv, name: str, content: bytes) -> httpx.Response:
    with httpx.Client(base_url=srv.url, timeout=120) as c:
        r = c.post("/v1/documents", files={"file": (name, content, "application/octet-stream")})
    assert r.status_code == 201, r.text
    return r


def documents(srv) -> dict[str, dict]:
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        return {d["id"]: d for d in c.get("/v1/documents", params={"limit": 500}).json()["documents"]}


def text_of(srv, doc_id: str) -> str:
    """The document's stored passages, as a reader gets them."""
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        chunks = c.get(f"/v1/documents/{doc_id}").json()["chunks"]
        return " ".join(c.get(f"/v1/passages/{quote(ch['chunk_id'], safe='')}").json()["text"] for ch in chunks)


@pytest.mark.parametrize("first,second", [
    ("a b.md", "a_b.md"),            # a space is kept, so these two never collided: still two
    ("a#b.md", "a_b.md"),            # '#' is replaced by '_'
    ("a_b!.md", "a_b?.md"),          # two different characters both replaced
    ("plan\u200b.md", "plan.md"),    # a zero-width space (a format character) is dropped
    ("..report.md", "report.md"),    # leading dots are dropped
    ("note\uff03.md", "note#.md"),   # fullwidth number sign vs ASCII: both become '_'
])
def test_different_names_are_different_documents(srv, first, second):
    one = upload(srv, first, md("First", f"The first text is {first!r}, the ferrule rule."))
    two = upload(srv, second, md("Second", f"The second text is {second!r}, the grommet rule."))
    a, b = one.json()["document"], two.json()["document"]
    assert a["id"] != b["id"] and a["uri"] != b["uri"]
    docs = documents(srv)
    assert a["id"] in docs and b["id"] in docs
    assert "ferrule" in text_of(srv, a["id"]) and "grommet" in text_of(srv, b["id"])
    assert Path(a["uri"]).read_bytes().startswith(b"# First") and Path(b["uri"]).read_bytes().startswith(b"# Second")


def test_same_name_replaces_and_each_name_keeps_its_own_document(srv):
    first = upload(srv, "x y#z.md", md("Plan", "Version one of the ossifrage plan.")).json()["document"]
    other = upload(srv, "x y_z.md", md("Other", "Another file.")).json()["document"]
    again = upload(srv, "x y#z.md", md("Plan", "Version two of the ossifrage plan."))
    assert again.json()["report"]["updated"] == 1
    assert again.json()["document"]["id"] == first["id"] and again.json()["document"]["uri"] == first["uri"]
    other_again = upload(srv, "x y_z.md", md("Other", "Another file, edited."))
    assert other_again.json()["document"]["id"] == other["id"]
    assert "Version two" in text_of(srv, first["id"]) and "edited" in text_of(srv, other["id"])


def test_canonically_equal_names_are_the_same_name(srv):
    nfc = unicodedata.normalize("NFC", "café.md")
    nfd = unicodedata.normalize("NFD", "café.md")
    a = upload(srv, nfc, md("Cafe", "Opening hours one.")).json()["document"]
    b = upload(srv, nfd, md("Cafe", "Opening hours two."))
    assert b.json()["document"]["id"] == a["id"] and b.json()["report"]["updated"] == 1


def test_deleting_frees_the_name(srv):
    a = upload(srv, "gone#.md", md("Gone", "Soon deleted.")).json()["document"]
    b = upload(srv, "gone_.md", md("Kept", "Stays.")).json()["document"]
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.delete(f"/v1/documents/{a['id']}").status_code == 200
    assert not Path(a["uri"]).exists() and Path(b["uri"]).exists()
    again = upload(srv, "gone#.md", md("Gone", "Back again.")).json()["document"]
    assert again["id"] != b["id"] and "Back again" in text_of(srv, again["id"]) and "Stays" in text_of(srv, b["id"])
