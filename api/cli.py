"""The `lore` command line: ingest, docs, rm, show, search, ask, eval, serve, mcp, keys, slack, gaps, stale, conflicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, cast

import typer
from rich.markup import escape

from api.cli_base import EXIT_PARTIAL, AsJson, DataDir, _fail, _settings, app, err, out
from ingest.errors import ConfigError, LoreError, StoreError

if TYPE_CHECKING:
    from retriever.search import Mode

# Startup time is the CLI's latency (issue 16): the modules a command needs are imported inside it.


@app.command()
def ingest(paths: List[Path] = typer.Argument(..., help="files or folders to ingest"),
           data_dir: Optional[Path] = DataDir,
           doc_type: Optional[str] = typer.Option(None, "--doc-type", help="policy, spec or incident (default: front matter or folder name)"),
           acl: List[str] = typer.Option([], "--acl", help="who may read these documents: public, user:ID, group:NAME (repeatable)"),
           exclude: List[str] = typer.Option([], "--exclude", help="gitignore-style pattern, relative to each folder, "
                                             "of files or folders to skip (repeatable; adds to LORE_INGEST__EXCLUDE "
                                             "and a folder's .loreignore)"),
           owner: List[str] = typer.Option([], "--owner", help="who keeps these documents: user:ID or group:NAME "
                                           "(repeatable; replaces their front matter's owners)"),
           as_json: bool = AsJson) -> None:
    """Ingest files and folders; unchanged files are skipped, removed or excluded ones deleted."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from api.wiring import build_ingestor, refresh_keyword_index
    from ingest.discover import exclude_spec

    s = _settings(data_dir)
    try:
        exclude_spec(exclude, "--exclude")  # named now, before the model loads (a .loreignore's at the walk)
        if any(not o.strip() for o in owner):
            raise ConfigError("--owner is empty; give who keeps the documents, e.g. --owner group:people-ops")
    except LoreError as exc:
        _fail(exc)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, transient=True, disable=not err.is_terminal)
    task: TaskID | None = None

    def on_event(kind: str, data: dict) -> None:
        nonlocal task
        if kind == "plan":
            task = progress.add_task("ingesting", total=data["todo"])
        elif kind in ("stored", "failed") and task is not None:  # a file failing before the plan is no step
            progress.advance(task)
            progress.update(task, description=f"ingesting {Path(data.get('path', '')).name[:40]}")

    try:
        with progress:
            ingestor = build_ingestor(s, on_event=on_event)
            report = ingestor.ingest(paths, doc_type=doc_type, acl=acl, exclude=[*s.ingest.exclude, *exclude],
                                     owners=owner)
            if report.added or report.updated or report.deleted:
                progress.add_task("indexing keywords", total=None)
                refresh_keyword_index(s, ingestor.store)
    except LoreError as exc:
        _fail(exc)
    summary = report.to_dict()
    for f in report.failed:
        err.print(f"[yellow]skipped[/] {f['path']}: {f['error']}")
    for c in report.acl_changed:
        err.print(f"[cyan]readers changed[/] {escape(c['path'])}: {escape(','.join(c['from']) or '(default)')} -> "
                  f"{escape(','.join(c['to']) or '(default)')}")
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
                  f"deleted {report.deleted}, excluded {report.excluded}, failed {len(report.failed)}; "
                  f"{report.chunks} chunks written "
                  f"to {s.data_dir}")
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def docs(data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """List stored documents: id, title, type, version, chunks, updated."""
    from rich.table import Table

    from api.wiring import build_store

    try:
        rows = build_store(_settings(data_dir)).documents()
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps([{"id": d.id, "title": d.title, "doc_type": d.doc_type, "version": d.version,
                           "chunks": d.chunk_count, "updated_at": d.updated_at, "ingested_at": d.ingested_at,
                           "uri": d.uri, "acl": list(d.acl)} for d in rows]))
        return
    table = Table("id", "title", "type", "version", "chunks", "updated", box=None)
    for d in rows:
        table.add_row(d.id, d.title[:50], d.doc_type, d.version[:12], str(d.chunk_count), d.updated_at[:10])
    out.print(table)
    out.print(f"{len(rows)} documents")


@app.command()
def rm(doc_id: str = typer.Argument(..., help="document id, as listed by 'lore docs'"),
       data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Remove a document and all its chunks from every index."""
    from api.wiring import build_ingestor

    try:
        doc = build_ingestor(_settings(data_dir)).remove(doc_id)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"deleted": doc.id, "chunks": doc.chunk_count}))
    else:
        out.print(f"removed {doc.id} ({doc.title}, {doc.chunk_count} chunks)")


@app.command()
def show(doc_id: str = typer.Argument(..., help="document id"), data_dir: Optional[Path] = DataDir,
         as_json: bool = AsJson) -> None:
    """Show a document's chunks with their provenance, each reproduced from the document text."""
    from api.wiring import build_store

    try:
        store = build_store(_settings(data_dir))
        doc = store.require_document(doc_id)
        text = store.document_text(doc_id)
        chunks = store.chunks(doc_id)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"id": doc.id, "title": doc.title, "uri": doc.uri, "doc_type": doc.doc_type,
                          "version": doc.version, "chunks": [
                              {"id": c.id, "section": list(c.section), "page_start": c.page_start,
                               "page_end": c.page_end, "start": c.start, "end": c.end, "tokens": c.token_count,
                               "text": text[c.start:c.end]} for c in chunks]}))
        return
    out.print(f"[bold]{doc.title}[/] ({doc.doc_type}) {doc.uri}")
    for c in chunks:
        page = f" p.{c.page_start}" if c.page_start else ""
        out.print(f"\n[cyan]{c.id}[/] {c.section_path}{page} [{c.start}:{c.end}] {c.token_count} tokens")
        out.print(text[c.start:c.end][:400], markup=False)


def _parse_when(value: Optional[str], option: str):
    if value is None:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value)
    except ValueError:
        _fail(ConfigError(f"{option} {value!r} is not a date; use YYYY-MM-DD or an ISO 8601 time"))


def _parse_meta(items: List[str]) -> tuple:
    pairs = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            _fail(ConfigError(f"--meta {item!r} is not KEY=VALUE (e.g. --meta owner=payments)"))
        try:
            value = json.loads(raw)  # numbers and true/false keep their type, as front matter stores them
            if not isinstance(value, (int, float, bool)):
                value = raw
        except ValueError:
            value = raw
        pairs.append((key, value))
    return tuple(pairs)


@app.command()
def search(query: str = typer.Argument(..., help="what to look for"),
           k: int = typer.Option(10, "-k", "--top-k", min=1, max=200, help="number of passages"),
           doc_type: List[str] = typer.Option([], "--type", help="policy, spec, incident or other (repeatable)"),
           doc_id: List[str] = typer.Option([], "--doc-id", help="only these documents (repeatable)"),
           path: Optional[str] = typer.Option(None, "--path", help="only documents whose source path starts with this"),
           after: Optional[str] = typer.Option(None, "--updated-after", help="only documents updated at/after (YYYY-MM-DD)"),
           before: Optional[str] = typer.Option(None, "--updated-before", help="only documents updated at/before"),
           meta: List[str] = typer.Option([], "--meta", help="front-matter KEY=VALUE filter (repeatable)"),
           user: Optional[str] = typer.Option(None, "--user", help="search as this user id (default: anonymous)"),
           groups: str = typer.Option("", "--groups", help="comma-separated groups of --user"),
           mode: str = typer.Option("hybrid", "--mode", help="hybrid (default), dense or keyword"),
           data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Search the knowledge base: ranked passages with title, section, page, score and a snippet."""
    from api.wiring import build_retriever
    from retriever.snippet import snippet
    from ingest.access import Filters, Principal

    s = _settings(data_dir)
    try:
        if path is not None and Path(path).exists():
            path = str(Path(path).resolve()) + ("/" if Path(path).is_dir() else "")
        filters = Filters(doc_types=tuple(doc_type), doc_ids=tuple(doc_id), path_prefix=path,
                          updated_after=_parse_when(after, "--updated-after"),
                          updated_before=_parse_when(before, "--updated-before"), metadata=_parse_meta(meta))
        result = build_retriever(s).search(query, Principal.of(user, groups), filters, k,
                                           mode=cast("Mode", mode))  # checked there: InvalidInput names it
    except LoreError as exc:
        _fail(exc)
    if as_json:
        from api.schemas import SearchOut  # the JSON of POST /v1/search

        print(json.dumps(SearchOut.of(result).model_dump(mode="json")))
        return
    if not result.hits:
        out.print("no passages found (none match, or none you may read)")
        return
    for h in result.hits:
        page = f" · p.{h.chunk.page_start}" if h.chunk.page_start else ""
        out.print(f"[bold]{h.rank}.[/] [cyan]{escape(h.doc.title)}[/] · {escape(h.chunk.section_path)}{page} "
                  f"· {h.doc.doc_type} · score {h.score:.3f}")
        out.print(f"   {snippet(h.chunk.text, query)}", markup=False, highlight=False)
        alts = f" (also in {len(h.alternatives)} other place{'s' * (len(h.alternatives) > 1)})" if h.alternatives else ""
        out.print(f"   [dim]{h.chunk.id}  {escape(h.doc.uri)}{alts}[/]")


def _print_answer(ans) -> None:
    colour = {"no_evidence": "yellow"}.get(ans.status, "green")
    out.print(f"[{colour}]{ans.status}[/]  {escape(ans.text)}", soft_wrap=True)
    if ans.citations:
        out.print("\n[bold]Sources[/]")
        seen = set()
        for c in ans.citations:
            page = f", p.{c.page}" if c.page else ""
            head = f"[{c.marker}] {c.title} · {' > '.join(c.section)}{page}" if c.marker not in seen else f"   {''.ljust(len(str(c.marker)))}"
            seen.add(c.marker)
            out.print(f"{escape(head)}\n     \u201c{escape(' '.join(c.quote.split()))}\u201d  [dim]{escape(c.uri)}[/]")
    elif ans.hits:
        out.print("\n[bold]Closest sources[/]")
        for h in ans.hits[:3]:
            out.print(f"  - {escape(h.doc.title)} · {escape(h.chunk.section_path)}  [dim]{escape(h.doc.uri)}[/]")
    for note in ans.notes:  # e.g. why the model's answer was replaced by the extractive one
        err.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)


@app.command()
def ask(question: Optional[str] = typer.Argument(None, help="the question (omit with --jsonl)"),
        user: Optional[str] = typer.Option(None, "--user", help="ask as this user id (default: anonymous)"),
        groups: str = typer.Option("", "--groups", help="comma-separated groups of --user"),
        jsonl: bool = typer.Option(False, "--jsonl", help='read {"id","question","user","groups"} lines from stdin, write one Answer per line'),
        data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Answer a question from the knowledge base, every sentence with a verified citation."""
    from api.schemas import AnswerOut  # the JSON of POST /v1/ask
    from api.wiring import build_assistant
    from ingest.access import Principal

    s = _settings(data_dir)
    try:
        assistant = build_assistant(s)
        if not jsonl:
            if not question:
                _fail(ConfigError("give a question, or --jsonl to read questions from stdin"))
            ans = assistant.answer(question, Principal.of(user, groups))
            print(json.dumps(AnswerOut.of(ans).model_dump(mode="json"))) if as_json else _print_answer(ans)
            return
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            item = None
            try:
                item = json.loads(line)
                if not isinstance(item, dict) or not isinstance(item.get("question"), str):
                    raise ValueError('each line needs a "question" string')
                ans = assistant.answer(item["question"], Principal.of(item.get("user"), item.get("groups")))
                print(json.dumps(AnswerOut.of(ans, id=item.get("id")).model_dump(mode="json")), flush=True)
            except StoreError:  # the knowledge base itself is unusable: no later line can be answered
                raise
            except (ValueError, LoreError) as exc:  # one bad line is reported in place, the rest go on
                rid = item.get("id") if isinstance(item, dict) else None
                print(json.dumps({"id": rid, "line": n, "error": f"stdin line {n}: {exc}"}), flush=True)
    except LoreError as exc:
        _fail(exc)


from api.cli_eval import eval_app  # noqa: E402 - importing the command modules registers them on `app`

app.add_typer(eval_app, name="eval")
import api.cli_serve  # noqa: E402,F401 - registers `lore serve`, `lore mcp` and `lore keys`
import api.cli_slack  # noqa: E402,F401 - registers `lore slack`
import api.cli_analytics  # noqa: E402,F401 - registers `lore gaps`, `lore stale`, `lore conflicts`
from api.cli_index import index_app  # noqa: E402 - `lore index check|repair`

app.add_typer(index_app, name="index")
from api.cli_sources import sources_app  # noqa: E402 - `lore sources ...`

app.add_typer(sources_app, name="sources")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
