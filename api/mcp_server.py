"""Lore over the Model Context Protocol: `lore mcp` (stdio) and `/mcp` in `lore serve` (Streamable HTTP).

Coding assistants (Claude Code, Cursor, VS Code, Zed) get four tools (search, ask, get_passage,
list_documents) and each readable document as a resource (`lore://doc/{id}`). Every call runs the HTTP
API's own route functions and returns its schemas, as one caller: over stdio the principal of the API key
in LORE_API_KEY (checked again at each call, so a revoked key stops working at once), over HTTP whoever
the request's bearer key or trusted proxy headers name (`api.deps.caller`, before the MCP layer reads the
request). So a passage the caller may not read is exactly as absent here as in /v1/search, and answers go
to the audit log like the API's (channel `mcp`).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, TypeVar

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import (INVALID_REQUEST, CallToolResult, ListResourcesResult, Resource, TextContent,
                       ToolAnnotations)
from pydantic import AliasPath, Field, ValidationError
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from api.deps import Services
from api.deps import caller as http_caller
from api.routes import ask as ask_routes
from api.routes import documents
from api.routes.documents import DocType, DocumentListOut, PassageOut
from api.routes.openai_compat import sources_block
from api.schemas import (MAX_QUESTION, AnswerOut, AskIn, CitationOut, CoreView, FiltersIn, SearchIn, SearchOut, Text,
                         Turn)
from api.metrics import Metrics
from api.settings import ServerSettings, Settings
from api.slack.blocks import passage_link  # the web page's deep link to a passage, as the Slack bot gives it
from ingest.errors import DocumentNotFound, LoreError, NotFound
from ingest.access import Access, Principal
from ingest.keys import Caller, KeyStore, Unauthorized
from ingest.types import Chunk

if TYPE_CHECKING:
    from assistant.service import Assistant
    from evals.audit import AuditLog
    from ingest.jobs import Jobs
    from ingest.sqlite_store import SqliteStore
    from retriever.search import Retriever

log = logging.getLogger(__name__)
KEY_VARIABLE = "LORE_API_KEY"  # `lore mcp` runs as the principal of this API key
CALLER = "lore.caller"  # the ASGI scope key under which /mcp's authentication leaves the caller
DOC_URI = "lore://doc/{doc_id}"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_LEVELS: dict[str, LogLevel] = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
INSTRUCTIONS = """Lore answers from the company's documents (policies, specs, incident reports) with verified
citations, under the caller's permissions. Use `ask` for a question (the answer cites passages; status
no_evidence means the knowledge base does not support an answer), `search` for ranked passages, `get_passage`
to open a cited passage with its neighbours, `list_documents` to see what is there; read a whole document as
the resource lore://doc/{id}. Quote citations with their link."""
_NO_DOC = "no document with this id (or you may not read it); list documents with the list_documents tool"
T = TypeVar("T")

Query = Annotated[Text, Field(min_length=1, max_length=MAX_QUESTION, description="what to look for, in words")]
Question = Annotated[Text, Field(min_length=1, max_length=MAX_QUESTION, description="the question, in words")]
History = Annotated[list[Turn] | None, Field(max_length=20, description="earlier turns, oldest first, so a "
                                             "follow-up ('and for contractors?') is understood")]
TopK = Annotated[int, Field(ge=1, le=100, description="number of passages")]
ChunkId = Annotated[Text, Field(min_length=1, max_length=300, description="a passage id, as hits and citations "
                                "give it (chunk_id)")]


class LinkedCitationOut(CitationOut):
    computed = {"link": "computed: the web page's deep link"}

    link: str = Field(..., description="the web page's view of the passage, the quote highlighted")


class AskOut(AnswerOut):
    """/v1/ask's answer, each citation with a link to the passage in Lore's web page."""

    citations: list[LinkedCitationOut]  # type: ignore[assignment] # narrower than AnswerOut's, as pydantic allows


class NeighbourOut(CoreView):
    core = Chunk
    hidden = {"doc_id": "the passage's", "version": "the passage's", "ordinal": "see position",
              "content_hash": "internal (dedup)", "token_count": "internal (embedding budget)"}
    computed = {"position": "relative to the passage opened"}

    chunk_id: str = Field(..., validation_alias=AliasPath("id"))
    position: int = Field(..., description="-1 the passage just before, 1 the one just after, and so on")
    section: list[str]
    page_start: int | None
    page_end: int | None
    start: int
    end: int
    text: str


class PassageViewOut(PassageOut):
    """/v1/passages/{id}, with the neighbouring passages' texts and a link to the web page's view."""

    computed = {**PassageOut.computed, "link": "computed: the web page's view", "neighbours": "the passages around it"}

    link: str = Field(..., description="the passage in Lore's web page")
    neighbours: list[NeighbourOut] = Field(..., description="passages of the same document around it, in order")


@dataclass(frozen=True, slots=True)
class Parts:
    """What the tools use: each but `metrics` and `access` is built on its first call, so a session that only
    lists tools loads no model, and a part replaced in the composition root is the one the next call gets."""

    keys: Callable[[], KeyStore]
    store: Callable[[], SqliteStore]
    retriever: Callable[[], Retriever]
    assistant: Callable[[], Assistant]
    audit: Callable[[], AuditLog]
    jobs: Callable[[], Jobs]
    access: Callable[[Principal], Access]
    metrics: Metrics

    @classmethod
    def of(cls, svc: Services) -> Parts:
        return cls(lambda: svc.keys, lambda: svc.store, lambda: svc.retriever, lambda: svc.assistant,
                   lambda: svc.audit, lambda: svc.jobs, svc.access, svc.metrics)


def stdio_caller(keys: Callable[[], KeyStore], auth: str, key: str | None) -> Caller:
    """The caller a stdio session runs as: the API key's principal; no key is refused except in demo mode
    (`auth` is LORE_SERVER__AUTH)."""
    if key:
        return keys().verify(key.strip())
    if auth == "none":
        return Caller(Principal(None, ()), "admin", "demo")
    raise Unauthorized(f"`lore mcp` runs as the principal of an API key: set {KEY_VARIABLE} to a key from "
                       "`lore keys create --user U --groups g1,g2` in the MCP client's env configuration")


class LoreMCP:
    """The MCP server over one set of services; `transport` decides where each call's caller comes from."""

    def __init__(self, parts: Parts, server: ServerSettings, transport: Literal["stdio", "http"],
                 key: str | None = None, log_level: str = "WARNING") -> None:
        self.parts, self.settings, self.transport, self.key = parts, server, transport, key
        self.server = MCPServer("lore", title="Lore", instructions=INSTRUCTIONS, version="1",
                                log_level=_LEVELS.get(log_level.upper(), "WARNING"))
        self._register()
        self.server.middleware.append(self._resource_list)

    # -- who is calling -----------------------------------------------------------------------------
    def caller(self, request: Any) -> Caller:
        """Over HTTP, the caller /mcp's authentication found for this very request; over stdio, the key's."""
        if self.transport == "stdio":
            return stdio_caller(self.parts.keys, self.settings.auth, self.key)
        found = getattr(request, "scope", {}).get(CALLER)
        if found is None:  # never reached through /mcp, which authenticates first: fail closed anyway
            raise Unauthorized("this request carries no verified credentials; send 'Authorization: Bearer <key>'")
        return found

    def base_url(self, request: Any) -> str:
        s = self.settings
        if s.public_url:
            return s.public_url
        if isinstance(request, Request):
            return str(request.base_url)
        return f"http://{s.host}:{s.port}"

    def call(self, tool: str, ctx: Context, work: Callable[[Caller, str], T]) -> T:
        """Run one tool call as its caller: Lore's errors become tool errors that say what to do, never a
        traceback; every call is logged (tool, key, outcome, time), like the API's requests."""
        t0, outcome, who = time.perf_counter(), "ok", None
        request = ctx.request_context.request
        try:
            who = self.caller(request)
            return work(who, self.base_url(request))
        except LoreError as exc:
            outcome = errors.status_of(exc)[1]
            raise ToolError(f"{outcome}: {errors.printable(str(exc))}") from None
        except ValidationError as exc:
            outcome = "invalid_request"
            text = "; ".join(f"{p['field']}: {p['message']}" for p in errors.problems_of(exc)[:5])
            raise ToolError(f"invalid_request: invalid arguments: {text}") from None
        except Exception:  # a bug: logged with an id to quote, as the API's 500s are
            outcome = trace = uuid.uuid4().hex
            log.exception("unhandled error %s in MCP tool %s", trace, tool)
            raise ToolError(f"internal: Lore hit an internal error; report trace id {trace}") from None
        finally:
            log.info("mcp %s %s by %s -> %s in %.0f ms", self.transport, tool,
                     (who.key_id or who.principal.user_id or who.via) if who else "-", outcome,
                     (time.perf_counter() - t0) * 1000)

    # -- tools and resources ------------------------------------------------------------------------
    def _register(self) -> None:
        p, mcp = self.parts, self.server

        @mcp.tool(title="Search passages", annotations=READ_ONLY)
        def search(ctx: Context, query: Query, filters: FiltersIn | None = None, top_k: TopK = 10,
                   mode: Literal["hybrid", "dense", "keyword"] = "hybrid") -> SearchOut:
            """Ranked passages you may read (hybrid dense + keyword search), each with its document, section,
            pages, span and text: the same results as POST /v1/search."""
            return SearchOut.model_validate(self.call("search", ctx, lambda who, _: ask_routes.search(
                SearchIn(query=query, top_k=top_k, filters=filters, mode=mode), who, p.retriever(), p.metrics)))

        @mcp.tool(title="Ask Lore", annotations=READ_ONLY.model_copy(update={"idempotent_hint": False}))
        def ask(ctx: Context, question: Question, history: History = None,
                filters: FiltersIn | None = None) -> Annotated[CallToolResult, AskOut]:
            """Answer a question from the knowledge base: every claim carries a marker [n] resolving to a
            citation whose quote is verbatim from a passage you may read (doc, section, page, span,
            version, link). Status no_evidence: the documents do not support an answer; `hits` then lists
            the closest sources."""
            def work(who: Caller, base: str) -> CallToolResult:
                body = AskIn(question=question, history=history, filters=filters)
                t0 = time.perf_counter()
                turns = [t.model_dump() for t in body.history] if body.history else None
                answer = p.assistant().answer(body.question, who.principal,
                                              body.filters.to_filters() if body.filters else None, turns)
                d = ask_routes.finish(p.audit, p.metrics, who, "mcp", answer, t0)  # audited and counted as the API's
                d["citations"] = [{**c, "link": passage_link(base, c["chunk_id"], c["start"], c["end"])}
                                  for c in d["citations"]]
                # the model reads the answer and its sources as the chat completions endpoint words them,
                # not the JSON of every passage considered; the application gets /v1/ask's object
                text = d["text"] + sources_block(d, base)
                return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=d)

            return self.call("ask", ctx, work)

        @mcp.tool(title="Open a passage", annotations=READ_ONLY)
        def get_passage(ctx: Context, chunk_id: ChunkId,
                        neighbours: Annotated[int, Field(ge=0, le=5, description="passages to include on each "
                                                         "side")] = 1) -> PassageViewOut:
            """A passage (as a citation or hit names it) in its section, with provenance and the passages
            around it; an id you may not read is reported exactly like one that does not exist."""
            def work(who: Caller, base: str) -> PassageViewOut:
                store = p.store()
                d = documents.get_passage(chunk_id=chunk_id, who=who, store=store, access=p.access)
                chunks = store.chunks(d.doc_id)  # the same document, which the caller may read
                i = next((n for n, c in enumerate(chunks) if c.id == d.chunk_id), None)
                near = [] if i is None else [  # None: a new version replaced it between the two reads
                    (n - i, c) for n, c in enumerate(chunks) if n != i and abs(n - i) <= neighbours]
                return PassageViewOut.model_validate({**d.model_dump(), "link": passage_link(base, d.chunk_id),
                                                      "neighbours": [NeighbourOut.of(c, position=p) for p, c in near]})

            return self.call("get_passage", ctx, work)

        @mcp.tool(title="List documents", annotations=READ_ONLY)
        def list_documents(ctx: Context, doc_type: DocType | None = None,
                           title_contains: Annotated[str | None, Field(max_length=200)] = None,
                           limit: Annotated[int, Field(ge=1, le=500)] = 100,
                           offset: Annotated[int, Field(ge=0)] = 0) -> DocumentListOut:
            """The documents you may read, ordered by source path, with type, version and size (as GET
            /v1/documents); read one whole as the resource lore://doc/{id}."""
            return DocumentListOut.model_validate(self.call("list_documents", ctx, lambda who, _: documents.list_documents(
                who=who, store=p.store(), access=p.access, jobs=p.jobs(), doc_type=doc_type, q=title_contains, limit=limit, offset=offset)))

        @mcp.resource(DOC_URI, name="document", title="Lore document", mime_type="text/plain")
        def document(doc_id: str, ctx: Context) -> str:
            """A document's normalized text, which citation and passage spans (start, end) index into."""
            try:
                who = self.caller(ctx.request_context.request)
                store = p.store()
                doc = store.get_document(doc_id)
                if doc is None or not p.access(who.principal).can_read(doc):
                    raise NotFound(_NO_DOC)
                return store.document_text(doc.id)
            except (NotFound, DocumentNotFound):
                raise ResourceNotFoundError(_NO_DOC) from None
            except LoreError as exc:
                raise ResourceError(f"{errors.status_of(exc)[1]}: {errors.printable(str(exc))}") from None

    async def _resource_list(self, ctx: Any, call_next: Callable) -> Any:
        """resources/list names the documents this caller may read (the SDK's list is static)."""
        if ctx.method != "resources/list":
            return await call_next(ctx)
        try:
            who = self.caller(ctx.request)
        except LoreError as exc:
            raise MCPError(code=INVALID_REQUEST, message=str(exc)) from None
        access = self.parts.access(who.principal)
        docs = await anyio.to_thread.run_sync(lambda: self.parts.store().documents())
        return ListResourcesResult(resources=[
            Resource(uri=DOC_URI.format(doc_id=d.id), name=d.id, title=d.title, mime_type="text/plain",
                     description=f"{d.doc_type} · {d.uri} · version {d.version[:12]}")
            for d in docs if access.can_read(d)])


# -- the two transports -----------------------------------------------------------------------------
def run_stdio(settings: Settings, key: str | None) -> None:
    """`lore mcp`: serve one MCP client over stdin/stdout until it closes them."""
    svc = Services(settings)
    try:
        who = stdio_caller(lambda: svc.keys, settings.server.auth, key)  # refused here, with a message, before the client's handshake
        log.warning("Lore MCP (stdio) serves %s as %s (%s)", settings.data_dir, who.principal.user_id or "anonymous",
                    who.via)
        svc.audit.purge()
        LoreMCP(Parts.of(svc), settings.server, "stdio", key, settings.log_level).server.run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        svc.close()


class Authenticated:
    """/mcp: each request names its caller exactly as the API's do (`api.deps.caller`), or gets the API's 401."""

    def __init__(self, app: ASGIApp, svc: Services) -> None:
        self.app, self.svc = app, svc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:  # a key check reads (and now and then writes) SQLite: off the event loop
            who = await anyio.to_thread.run_sync(http_caller, Request(scope), self.svc)
        except LoreError as exc:
            status, code = errors.status_of(exc)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return await JSONResponse(errors.body(code, str(exc)), status, headers=headers)(scope, receive, send)
        scope[CALLER] = who
        await self.app(scope, receive, send)


def mount(app: FastAPI, svc: Services) -> MCPServer:
    """Add /mcp (Streamable HTTP, stateless) to the app; its lifespan must run `server.session_manager.run()`.

    The SDK's DNS-rebinding guard is off: with keys, a rebound page has no credentials, and demo mode's
    LoopbackOnly middleware already refuses foreign Host and Origin headers on every path, /mcp included.
    """
    server = LoreMCP(Parts.of(svc), svc.settings.server, "http", log_level=svc.settings.log_level).server
    server.streamable_http_app(stateless_http=True,
                               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    app.router.routes.append(Route("/mcp", Authenticated(StreamableHTTPASGIApp(server.session_manager), svc)))
    return server
