"""Documents and passages (readers), uploads, deletions and background ingest jobs (admins)."""

from __future__ import annotations

from typing import Callable, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Response, UploadFile
from pydantic import AliasPath, BaseModel, ConfigDict, Field

from ingest.keys import Caller
from api.deps import Lazy, admin, caller, get_access, get_audit, get_jobs, get_store
from api.routes.admin import admin_for, audited
from api.schemas import CoreView, PassageFields, errors
from evals.audit import AuditLog
from ingest.access import Access, Principal
from ingest.errors import DocumentNotFound, NotFound
from ingest.formats import SUPPORTED
from ingest.jobs import Jobs
from ingest.pipeline import IngestReport
from ingest.sqlite_store import SqliteStore
from ingest.types import Chunk, SourceDoc

router = APIRouter(prefix="/v1", tags=["documents"])
DocType = Literal["policy", "spec", "incident", "other"]
CONTEXT_CHARS = 6000  # the most of a passage's section shown around it
_NO_DOC = "no document with this id (or you may not read it); list documents with GET /v1/documents"
_NO_PASSAGE = "no current passage with this id (or you may not read it); citations link to current passages"


class DocumentOut(CoreView):
    core = SourceDoc
    hidden = {"external_id": "internal: the item's id inside its source"}
    computed = {"uploaded": "whether jobs stored the file", "acl": "the core acl, shown to admins only (else null)",
             "source": "the core source, null instead of \"\" for files"}

    id: str
    title: str
    uri: str = Field(..., description="where the document was ingested from (a path on the server)")
    doc_type: str
    version: str = Field(..., description="sha256 of the file's bytes")
    updated_at: str
    ingested_at: str
    size: int = Field(..., description="bytes")
    chunk_count: int
    uploaded: bool = Field(..., description="stored by POST /v1/documents (deleting it deletes the file too)")
    acl: list[str] | None = Field(None, description="who may read it (admins only; empty = the default ACL)")
    owners: list[str] = Field([], description="who keeps it (from its source, front matter or --owner)")
    source: str | None = Field(None, description="the source it is synced from; null = ingested from files")


class DocumentListOut(BaseModel):
    documents: list[DocumentOut]
    total: int = Field(..., description="documents matching, before limit and offset")
    limit: int
    offset: int


class ChunkOut(CoreView):
    core = Chunk
    hidden = {"doc_id": "the document is the parent", "version": "the document's", "content_hash": "internal (dedup)",
              "text": "opened with GET /v1/passages/{id}"}

    chunk_id: str = Field(..., validation_alias=AliasPath("id"))
    ordinal: int
    section: list[str]
    page_start: int | None
    page_end: int | None
    start: int = Field(..., description="the passage's span in the document's normalized text")
    end: int
    token_count: int


class DocumentDetailOut(DocumentOut):
    computed = {**DocumentOut.computed, "chunks": "the document's passages, in order"}

    chunks: list[ChunkOut]


class ContextOut(BaseModel):
    start: int = Field(..., description="where `text` starts in the document's normalized text")
    end: int
    text: str


class PassageOut(PassageFields):
    computed = {"context": "from the document text", "previous_chunk_id": "neighbour", "next_chunk_id": "neighbour"}

    context: ContextOut = Field(..., description="the passage's section around it; a citation's quote is "
                                "context.text[quote.start - context.start : quote.end - context.start]")
    previous_chunk_id: str | None
    next_chunk_id: str | None


class ReportOut(CoreView):
    core = IngestReport

    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: list[dict] = Field(..., description="files skipped, each {path, error}")
    chunks: int = Field(..., description="chunks written")
    excluded: int
    acl_changed: list[dict] = Field([], description="documents whose readers this ingest changed (only by an "
                                    "explicit acl or the document's front matter), each {doc_id, path, from, to}")


class UploadOut(BaseModel):
    document: DocumentOut
    report: ReportOut


class DeletedOut(BaseModel):
    deleted: str = Field(..., description="the document id")
    title: str


class IngestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(..., min_length=1, max_length=100, description="files or folders inside "
                             "LORE_SERVER__INGEST_ROOTS: absolute, or relative to a root", examples=[["policies"]])
    doc_type: DocType | None = Field(None, description="default: front matter, then folder name")
    acl: list[str] = Field([], max_length=50, description="public, user:ID or group:NAME; default: front matter, "
                           "then LORE_DEFAULT_ACL")
    exclude: list[str] = Field([], max_length=100, description="gitignore-style patterns to skip, relative to "
                               "each folder (added to LORE_INGEST__EXCLUDE and the folder's .loreignore)")


class ProgressOut(BaseModel):
    files_total: int | None = Field(..., description="files found (known once the plan is made)")
    files_todo: int | None = Field(..., description="files new or changed")
    files_done: int
    unchanged: int
    failed: int
    chunks: int = Field(..., description="chunks stored so far")
    embedded: int = Field(..., description="chunks embedded so far (cached vectors are not re-embedded)")
    deleted: int
    excluded: int
    current: str | None = Field(..., description="the last file stored")


class JobOut(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "interrupted"] = Field(
        ..., description="interrupted: the service stopped before the job finished; start it again (crash-safe)")
    paths: list[str]
    doc_type: str | None
    acl: list[str]
    exclude: list[str]
    progress: ProgressOut
    report: ReportOut | None = Field(..., description="when succeeded; files that failed are listed in it")
    error: str | None = Field(..., description="when failed or interrupted: what went wrong and what to do")
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobListOut(BaseModel):
    jobs: list[JobOut]


def _added(jobs: Jobs, d: SourceDoc, who: Caller) -> dict:
    """DocumentOut's own fields: whether it was uploaded, and the ACL for admins only."""
    return {"uploaded": jobs.is_upload(d), "acl": d.acl if who.is_admin else None, "source": d.source or None}


def _visible(access: Callable[[Principal], Access], who: Caller, doc: SourceDoc | None) -> bool:
    # admins manage every document (they upload and delete them); passages stay under permissions
    return doc is not None and (who.is_admin or access(who.principal).can_read(doc))


@router.get("/documents", response_model=DocumentListOut, responses=errors(401, 422),
            summary="List the documents you may read")
def list_documents(who: Caller = Depends(caller), store: SqliteStore = Depends(get_store),
                   access: Callable[[Principal], Access] = Depends(get_access), jobs: Jobs = Depends(get_jobs),
                   doc_type: DocType | None = Query(None, description="only this type"),
                   q: str | None = Query(None, max_length=200, description="title contains this (any case)"),
                   limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0)) -> dict:
    """Documents ordered by uri, with provenance and size. Readers see the documents their permissions
    admit; admins see every document, with its ACL."""
    needle = q.casefold() if q else None
    docs = [d for d in store.documents() if _visible(access, who, d)
            and (doc_type is None or d.doc_type == doc_type) and (needle is None or needle in d.title.casefold())]
    page = docs[offset:offset + limit]
    return {"documents": [DocumentOut.of(d, **_added(jobs, d, who)) for d in page], "total": len(docs),
            "limit": limit, "offset": offset}


@router.get("/documents/{doc_id}", response_model=DocumentDetailOut, responses=errors(401, 404),
            summary="A document and its passages")
def get_document(doc_id: str = Path(..., max_length=300), who: Caller = Depends(caller),
                 store: SqliteStore = Depends(get_store), access: Callable[[Principal], Access] = Depends(get_access),
                 jobs: Jobs = Depends(get_jobs)) -> DocumentDetailOut:
    """The document's provenance and the list of its chunks (passages) in order, with their section,
    pages and span. 404 when it does not exist or you may not read it (the two look the same)."""
    doc = store.get_document(doc_id)
    if doc is None or not _visible(access, who, doc):
        raise NotFound(_NO_DOC)
    return DocumentDetailOut.of(doc, **_added(jobs, doc, who), chunks=store.chunks(doc.id))


@router.get("/passages/{chunk_id}", response_model=PassageOut, responses=errors(401, 404),
            summary="A cited passage in its section, with provenance")
def get_passage(chunk_id: str = Path(..., max_length=300, description="as citations and hits give it; "
                                     "percent-encode it in the URL (chunk ids contain '#')"), who: Caller = Depends(caller),
                store: SqliteStore = Depends(get_store),
                access: Callable[[Principal], Access] = Depends(get_access)) -> PassageOut:
    """What a citation link opens, so the reader sees exactly where the quote sits: the passage, the
    text of its section around it (about 6000 characters at most, centred on the passage) and the
    neighbouring passages. Spans are offsets in the document's normalized text, as citations give them.
    404 when the passage is unknown, of a superseded version, or in a document you may not read."""
    chunk = store.get_chunks([chunk_id]).get(chunk_id)
    doc = store.get_document(chunk.doc_id) if chunk else None
    if chunk is None or doc is None or chunk.version != doc.version or not access(who.principal).can_read(doc):
        raise NotFound(_NO_PASSAGE)
    try:
        text = store.document_text(doc.id)
    except DocumentNotFound:  # deleted since: as if it never was
        raise NotFound(_NO_PASSAGE) from None
    chunks = store.chunks(doc.id)
    i = next((n for n, c in enumerate(chunks) if c.id == chunk.id), None)
    if i is None:  # replaced by a new version since
        raise NotFound(_NO_PASSAGE)
    start, end = section_span(chunks, i)
    start, end = centred(start, end, chunk.start, chunk.end, CONTEXT_CHARS)
    return PassageOut.of(chunk=chunk, doc=doc, context={"start": start, "end": end, "text": text[start:end]},
                         previous_chunk_id=chunks[i - 1].id if i > 0 else None,
                         next_chunk_id=chunks[i + 1].id if i + 1 < len(chunks) else None)


def section_span(chunks: list[Chunk], i: int) -> tuple[int, int]:
    """The span of the run of chunks around chunks[i] that share its section path."""
    lo = hi = i
    while lo > 0 and chunks[lo - 1].section == chunks[i].section:
        lo -= 1
    while hi + 1 < len(chunks) and chunks[hi + 1].section == chunks[i].section:
        hi += 1
    run = chunks[lo:hi + 1]
    return min(c.start for c in run), max(c.end for c in run)


def centred(lo: int, hi: int, start: int, end: int, cap: int) -> tuple[int, int]:
    """At most `cap` characters of [lo, hi) centred on [start, end), which is always kept whole."""
    width = max(cap, end - start)
    if hi - lo <= width:
        return lo, hi
    a = min(max(lo, (start + end) // 2 - width // 2), hi - width)
    return a, a + width


@router.post("/documents", status_code=201, response_model=UploadOut,
             responses=errors(400, 401, 403, 409, 413, 415, 422),
             summary="Upload a document (admin)")
def upload_document(file: UploadFile = File(..., description=f"one file: {', '.join(SUPPORTED)}"),
                    doc_type: DocType | None = Form(None, description="default: front matter, else other"),
                    acl: str | None = Form(None, max_length=2000, description="comma-separated: public, "
                                           "user:ID, group:NAME; default: front matter, then LORE_DEFAULT_ACL"),
                    who: Caller = Depends(admin_for("document.upload")), jobs: Jobs = Depends(get_jobs),
                    audit: Lazy[AuditLog] = Depends(get_audit)) -> dict:
    """The file is checked (extension and content must agree: 415 otherwise), stored under
    DATA_DIR/uploads with a sanitized name and ingested before the response. Uploading a file with
    the same name again replaces the previous version of that document. A file the parser cannot
    read (empty, encrypted, corrupt) is 422 and changes nothing. Bodies over LORE_SERVER__MAX_UPLOAD_MB
    are 413; 409 while an ingest job runs."""
    tokens = [t.strip() for t in (acl or "").split(",") if t.strip()]
    with audited(audit, who, "document.upload", file.filename) as act:
        doc, report = jobs.upload(file.filename, file.file.read(), doc_type, tokens)
        act.target = doc.id
        act.detail = (f"{file.filename} as {doc.title!r} ({doc.doc_type}), acl {','.join(doc.acl) or 'default'}, "
                      f"{report['chunks']} chunks")
    return {"document": DocumentOut.of(doc, **_added(jobs, doc, who)), "report": report}


@router.delete("/documents/{doc_id}", response_model=DeletedOut, responses=errors(401, 403, 404, 409),
               summary="Delete a document (admin)")
def delete_document(doc_id: str = Path(..., max_length=300), who: Caller = Depends(admin_for("document.delete")),
                    store: SqliteStore = Depends(get_store), jobs: Jobs = Depends(get_jobs),
                    audit: Lazy[AuditLog] = Depends(get_audit)) -> dict:
    """Removes the document and its passages from every index at once, so search and answers stop
    citing it, and deletes its file when it was uploaded. A document ingested from a folder comes
    back if that folder is ingested again while the file is still there."""
    with audited(audit, who, "document.delete", doc_id) as act:
        if store.get_document(doc_id) is None:
            raise NotFound(f"no document with id {doc_id!r}; list ids with GET /v1/documents")
        doc = jobs.delete(doc_id)
        act.detail = f"{doc.title!r} ({doc.uri})"
    return {"deleted": doc.id, "title": doc.title}


@router.post("/ingest", status_code=202, response_model=JobOut, responses=errors(400, 401, 403, 409, 413, 422),
             summary="Ingest server folders in the background (admin)")
def start_ingest(body: IngestIn, response: Response, who: Caller = Depends(admin_for("ingest.start")),
                 jobs: Jobs = Depends(get_jobs), audit: Lazy[AuditLog] = Depends(get_audit)) -> dict:
    """Every path must lie inside LORE_SERVER__INGEST_ROOTS once links are followed (400 otherwise,
    also for '..' and for folders holding links that lead outside). Unchanged files are skipped, and
    documents under an ingested folder whose files are gone are removed. One write at a time: 409
    while another job, upload or deletion runs. Follow the job at the Location header's URL."""
    with audited(audit, who, "ingest.start", ", ".join(body.paths)) as act:
        job = jobs.start(body.paths, body.doc_type, body.acl, body.exclude)
        act.detail = f"job {job.id}, doc type {body.doc_type or 'default'}, acl {','.join(body.acl) or 'default'}"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job.to_dict()


@router.get("/jobs", response_model=JobListOut, responses=errors(401, 403), summary="Recent ingest jobs (admin)")
def list_jobs(_: Caller = Depends(admin), jobs: Jobs = Depends(get_jobs)) -> dict:
    """The latest ingest jobs, newest first, kept across restarts. A job the service was running when
    it stopped shows as interrupted: ingest is crash-safe, so start it again to finish it."""
    return {"jobs": [j.to_dict() for j in jobs.recent()]}


@router.get("/jobs/{job_id}", response_model=JobOut, responses=errors(401, 403, 404),
            summary="An ingest job's status, progress and report (admin)")
def get_job(job_id: str = Path(..., max_length=64), _: Caller = Depends(admin),
            jobs: Jobs = Depends(get_jobs)) -> dict:
    """Status is queued, running, succeeded, failed or interrupted (the service stopped before it
    finished: start it again); progress counts files and chunks as they are stored; `report` (when
    succeeded) is the ingest report, `error` (when failed or interrupted) says why."""
    return jobs.get(job_id).to_dict()
