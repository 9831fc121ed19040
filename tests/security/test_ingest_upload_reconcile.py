"""What a kill -9 during an upload leaves in DATA_DIR/uploads is reconciled before the service's first
write: half-written files removed, a replaced version put back, untracked files moved aside, tracked kept."""

from __future__ import annotations

from pathlib import Path

import httpx


def md(title: str, text: str) -> bytes:
    return f"# {title}\n\n{text}\n".encode()


def upload(c: httpx.Client, name: str, content: bytes) -> dict:
    r = c.post("/v1/documents", files={"file": (name, content, "application/octet-stream")})
    assert r.status_code == 201, r.text
    return r.json()["document"]


def test_stray_upload_files_are_reconciled_on_restart(tmp_path, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer

    def settings():
        return Settings(data_dir=tmp_path / "data", server={"auth": "none"})

    kept_v1, replaced_v1 = md("Kept", "The ferrule rule stays."), md("Replaced", "Version one of the grommet rule.")
    with LiveServer(settings()) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        upload(c, "kept.md", kept_v1)
        upload(c, "replaced.md", replaced_v1)
    uploads = tmp_path / "data" / "uploads"
    # as kill -9 leaves them: a temporary file cut short, a file placed but never ingested, a re-upload
    # killed after it moved the stored version aside, and a backup left after its upload committed
    (uploads / ".5f1c0e2d9a.part").write_bytes(b"# Half\n\nwrit")
    (uploads / "stray.md").write_bytes(md("Stray", "Never ingested."))
    (uploads / ".aa11.previous").write_bytes(replaced_v1)
    (uploads / "replaced.md").write_bytes(md("Replaced", "Version two, never ingested."))
    (uploads / ".bb22.previous").write_bytes(md("Old", "A version no document holds."))

    with LiveServer(settings()) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        upload(c, "trigger.md", md("Trigger", "The first write after the restart."))
        listed = sorted(Path(d["uri"]).name for d in c.get("/v1/documents").json()["documents"])
    assert sorted(p.name for p in uploads.iterdir()) == ["kept.md", "replaced.md", "trigger.md"]
    assert (uploads / "kept.md").read_bytes() == kept_v1
    assert (uploads / "replaced.md").read_bytes() == replaced_v1  # the file again matches the stored version
    assert listed == ["kept.md", "replaced.md", "trigger.md"]
    orphaned = tmp_path / "data" / "orphaned-uploads"
    assert [p.name for p in orphaned.iterdir()] == ["stray.md"]  # kept aside, not destroyed


def test_reconcile_keeps_what_is_tracked_and_is_idempotent(tmp_path, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer

    settings = Settings(data_dir=tmp_path / "data", server={"auth": "none"})
    with LiveServer(settings) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        doc = upload(c, "a#b.md", md("Hash", "Named with a hash sign."))
        twin = upload(c, "a_b.md", md("Underscore", "Named with an underscore."))
        jobs = srv.services.jobs
        assert jobs.reconcile_uploads() == {"removed": [], "restored": [], "quarantined": []}
        assert Path(doc["uri"]).exists() and Path(twin["uri"]).exists()
        again = upload(c, "a#b.md", md("Hash", "Named with a hash sign, edited."))
    assert again["id"] == doc["id"]  # the recorded name survived the reconcile
