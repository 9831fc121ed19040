"""ZIP-based files (DOCX, PPTX) are refused from their declared unpacked size and compression ratio, before
any parser unpacks them: a 1 MB DOCX expanding to 300 MB ran 6+ minutes at 1.3 GB before."""

from __future__ import annotations

import io
import random
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from ingest.errors import FileTooLarge
from ingest.formats import check_archive, parse_file

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "acme"
DOCX = SAMPLES / "policies" / "information-security-policy.docx"
PPTX = SAMPLES / "incidents" / "q3-2025-incident-review.pptx"
PARAGRAPH = b"<w:p><w:r><w:t>The quarterly review is due.</w:t></w:r></w:p>"


def inflated(office: Path, part: str, mib: int, body: bytes = PARAGRAPH) -> bytes:
    """A copy of a real office file whose main part is padded to `mib` MiB of repeated XML (deflated)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(office) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != part:
                dst.writestr(item, src.read(item.filename))
        with dst.open(part, "w") as f:
            block = body * (2**20 // len(body) + 1)
            for _ in range(mib):
                f.write(block[:2**20])
    return buf.getvalue()


def wordy(mib: float) -> bytes:
    """A DOCX of `mib` MiB of ordinary prose: compresses about 5:1, like a genuine long document."""
    rng = random.Random(7)
    words = ("policy staff leave travel expense approve manager report quarter budget review access data "
             "security incident response owner deadline invoice receipt").split()
    text = " ".join(rng.choice(words) for _ in range(int(mib * 2**20 / 7)))
    return _with_body(text.encode())


def _with_body(xml: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(DOCX) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, xml if item.filename == "word/document.xml" else src.read(item.filename))
    return buf.getvalue()


def test_docx_bomb_is_refused_on_folder_ingest_without_unpacking(tmp_path, make_ingestor):
    src = tmp_path / "src"
    src.mkdir()
    bomb = inflated(DOCX, "word/document.xml", 200)
    assert len(bomb) < 2**20  # 200 MiB of XML in under 1 MiB: over both the ratio and the default 200 MiB
    (src / "bomb.docx").write_bytes(bomb)
    (src / "fine.md").write_text("# Fine\n\nThe quillfeather rule applies.\n")
    t0 = time.monotonic()
    report = make_ingestor().ingest([src])
    assert time.monotonic() - t0 < 60
    assert report.added == 1
    (failed,) = report.failed
    assert failed["path"].endswith("bomb.docx")
    assert "limit" in failed["error"] and "LORE_INGEST__MAX_FILE_MB" in failed["error"]


def test_pptx_and_the_unpacked_size_limit():
    bomb = inflated(PPTX, "ppt/slides/slide1.xml", 64, b"<a:p><a:r><a:t>Slide</a:t></a:r></a:p>")
    with pytest.raises(FileTooLarge, match="deck.pptx: .*compression ratio"):
        parse_file("deck.pptx", bomb)
    # the limit on what an archive may unpack to follows LORE_INGEST__MAX_FILE_MB (4 times it)
    genuine = DOCX.read_bytes()
    with pytest.raises(FileTooLarge, match=r"policy.docx: unpacks to .* over the 0 MiB limit .*LORE_INGEST__MAX_FILE_MB"):
        check_archive("policy.docx", genuine, max_unpacked=1000)
    with pytest.raises(FileTooLarge, match="renamed.md: .*compression ratio"):
        check_archive("renamed.md", bomb)  # any zip, whatever its name says


def test_real_office_files_pass():
    for office in [*SAMPLES.rglob("*.docx"), *SAMPLES.rglob("*.pptx")]:
        check_archive(office.name, office.read_bytes())
    check_archive("long.docx", wordy(12))  # 12 MiB of prose: under the 200 MiB default, ratio about 5


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer

    data = tmp_path_factory.mktemp("zip-bomb") / "data"
    settings = Settings(data_dir=data, server={"auth": "none", "max_upload_mb": 2}, ingest={"max_file_mb": 1})
    with LiveServer(settings) as srv:
        yield srv


def _upload(srv, name: str, content: bytes) -> httpx.Response:
    with httpx.Client(base_url=srv.url, timeout=120) as c:
        return c.post("/v1/documents", files={"file": (name, content, "application/octet-stream")})


def _stored(srv) -> list[str]:
    d = Path(srv.settings.data_dir) / "uploads"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_upload_of_a_bomb_is_413_and_stores_nothing(small_limits):
    r = _upload(small_limits, "bomb.docx", inflated(DOCX, "word/document.xml", 200))
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "too_large" and "bomb.docx" in err["message"] and "LORE_INGEST__MAX_FILE_MB" in err["message"]
    assert _stored(small_limits) == []


def test_upload_limit_follows_max_file_mb(small_limits):
    big = wordy(6)  # about 1 MiB packed, 6 MiB unpacked: over 4 x LORE_INGEST__MAX_FILE_MB=1
    assert len(big) < 2**20
    r = _upload(small_limits, "long.docx", big)
    assert r.status_code == 413, r.text
    assert "over the 4 MiB limit" in r.json()["error"]["message"]
    ok = _upload(small_limits, "policy.docx", DOCX.read_bytes())
    assert ok.status_code == 201, ok.text
    assert _stored(small_limits) == ["policy.docx"]
