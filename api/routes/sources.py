"""Sources that stay in sync (admin): list with their last sync report, add, remove, sync now."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field

from ingest.keys import Caller
from api.deps import Writer, admin, get_jobs, get_settings, get_syncs, get_writer
from api.settings import Settings
from api.schemas import CoreView, errors
from ingest.errors import ConfigError
from ingest.jobs import Jobs
from ingest.scheduler import Syncs
from ingest.sources.registry import SourceConfig
from ingest.sync import SyncReport

router = APIRouter(prefix="/v1/sources", tags=["sources"])
Name = Annotated[str, Path(max_length=63, description="the source's name")]


class FailureOut(BaseModel):
    item: str = Field(..., description="the item's path or title in its source")
    reason: str = Field(..., description="why it was skipped, and what to do")


class SyncReportOut(CoreView):
    core = SyncReport

    source: str
    started_at: str
    finished_at: str | None = None
    duration_s: float = 0.0
    status: Literal["running", "ok", "partial", "failed", "busy"] = Field(
        ..., description="ok; partial (some items failed, the rest took effect); failed (nothing changed: the "
        "source could not be listed, or listed nothing where documents are stored); running")
    error: str | None = Field(None, description="why a failed sync changed nothing, and what to do")
    listed: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    failed: list[FailureOut] = Field([], description="every item that could not be fetched or parsed")
    acl_changed: list[dict] = Field([], description="documents whose readers this sync changed, each "
                                    "{doc_id, path, from, to}")


class SourceOut(CoreView):
    core = SourceConfig
    computed = {"status": "from the source's runs", "last_sync": "its latest report", "last_success": "from its runs"}

    name: str
    kind: Literal["files", "git", "confluence"] = Field(..., description="files sources are added with "
                                                         "`lore sources add --kind files` on the server")
    options: dict = Field(..., description="kind-specific settings (repository and branch, site and spaces); "
                          "never credentials")
    interval_s: int = Field(..., description="seconds between scheduled syncs; 0 = on demand only")
    acl: list[str] = Field(..., description="readers of items whose source states none")
    owners: list[str] = Field(..., description="owners of items whose source names none")
    doc_type: str | None = None
    created_at: str
    status: str = Field(..., description="never synced, running, ok, partial, failed, or failing (the last "
                        "LORE_SOURCES__MAX_FAILURES syncs failed)")
    last_sync: SyncReportOut | None = None
    last_success: str | None = Field(None, description="when the last ok or partial sync finished")


class SourceListOut(BaseModel):
    sources: list[SourceOut]


class SourceIn(BaseModel):
    name: str = Field(..., max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["git", "confluence"] = Field(..., description="a files source (a folder on the server) is "
                                               "added with `lore sources add --kind files` there")
    options: dict = Field(..., description="git: repo, branch, paths, link, exclude; confluence: base_url, flavor "
                          "(cloud or datacenter), spaces, email. Credentials are settings (LORE_SOURCES__TOKENS)")
    interval_s: int = Field(3600, ge=0)
    acl: list[str] = []
    owners: list[str] = []
    doc_type: Literal["policy", "spec", "incident", "other"] | None = None


class SyncStartedOut(BaseModel):
    source: str
    status: Literal["running"]


class RemovedOut(BaseModel):
    removed: str
    documents_removed: int


def _out(syncs: Syncs, settings: Settings, cfg: SourceConfig) -> SourceOut:
    reg = syncs.registry
    last = reg.last(cfg.name)
    if syncs.running == cfg.name:
        status = "running"
    elif last is None:
        status = "never synced"
    elif reg.failures_in_a_row(cfg.name) >= settings.sources.max_failures:
        status = "failing"
    else:
        status = last.get("status", "failed")
    success = reg.last_success(cfg.name)
    return SourceOut.of(cfg, status=status, last_sync=last, last_success=success.get("finished_at") if success else None)


@router.get("", response_model=SourceListOut, responses=errors(401, 403), summary="Sources and their last sync (admin)")
def list_sources(_: Caller = Depends(admin), syncs: Syncs = Depends(get_syncs),
                 settings: Settings = Depends(get_settings)) -> dict:
    """Every configured source with its state and last sync report (counts, each failed item with its
    reason, duration). A source whose listing failed or came back empty shows status failed and its error."""
    return {"sources": [_out(syncs, settings, c) for c in syncs.registry.list()]}


@router.get("/{name}", response_model=SourceOut, responses=errors(401, 403, 404), summary="One source (admin)")
def get_source(name: Name, _: Caller = Depends(admin), syncs: Syncs = Depends(get_syncs),
               settings: Settings = Depends(get_settings)) -> SourceOut:
    return _out(syncs, settings, syncs.registry.get(name))


@router.post("", status_code=201, response_model=SourceOut, responses=errors(400, 401, 403, 422),
             summary="Add a source (admin)")
def add_source(body: SourceIn, _: Caller = Depends(admin), syncs: Syncs = Depends(get_syncs),
               settings: Settings = Depends(get_settings)) -> SourceOut:
    """The source syncs on its interval under the running service, or now with POST /v1/sources/{name}/sync."""
    from ingest.types import validate_acl

    need = {"git": ("repo",), "confluence": ("base_url", "spaces")}[body.kind]
    missing = [k for k in need if not body.options.get(k)]
    if missing:
        raise ConfigError(f"options.{missing[0]}: a {body.kind} source needs {', '.join(need)}")
    cfg = syncs.registry.add(SourceConfig(body.name, body.kind, body.options, body.interval_s,
                                          validate_acl(body.acl, "acl"), tuple(body.owners), body.doc_type))
    return _out(syncs, settings, cfg)


@router.post("/{name}/sync", status_code=202, response_model=SyncStartedOut, responses=errors(401, 403, 404, 409),
             summary="Sync a source now (admin)")
def sync_source(name: Name, response: Response, _: Caller = Depends(admin),
                syncs: Syncs = Depends(get_syncs)) -> dict:
    """Starts the sync in the background; 409 while a sync, ingest job or upload is writing. Follow it at
    GET /v1/sources/{name} (status running, then its report)."""
    syncs.start(name)
    response.headers["Location"] = f"/v1/sources/{name}"
    return {"source": name, "status": "running"}


@router.delete("/{name}", response_model=RemovedOut, responses=errors(401, 403, 404, 409),
               summary="Remove a source and its documents (admin)")
def remove_source(name: Name, _: Caller = Depends(admin), syncs: Syncs = Depends(get_syncs),
                  jobs: Jobs = Depends(get_jobs), writer: Writer = Depends(get_writer)) -> dict:
    reg = syncs.registry
    reg.get(name)
    removed = 0
    with jobs.writing():
        ing = writer.ingestor()
        for doc, _fp in ing.store.source_documents(name).values():
            ing.remove(doc.id)
            removed += 1
        reg.remove(name)
    if removed:
        writer.changed()
    return {"removed": name, "documents_removed": removed}
