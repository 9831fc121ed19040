"""`lore sources add|list|show|status|sync|rm`: Git repositories and Confluence sites kept in sync."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer

from api.cli_base import AsJson, DataDir, _fail, _settings, err, out
from ingest.errors import LoreError

sources_app = typer.Typer(help="Sources that stay in sync: Git repositories and Confluence spaces.",
                          no_args_is_help=True, pretty_exceptions_enable=False)
EXIT_SYNC_FAILED = 6  # the sync could not list its source, or listed nothing where documents are stored


def _registry(data_dir: Optional[Path]):
    from api.wiring import source_registry

    s = _settings(data_dir)
    try:
        return s, source_registry(s)
    except LoreError as exc:
        _fail(exc)


def _config(cfg) -> dict:
    """A source's settings as JSON, read from the core SourceConfig by pydantic (as /v1/sources shows them)."""
    from pydantic import TypeAdapter

    from ingest.sources.registry import SourceConfig

    return TypeAdapter(SourceConfig).dump_python(cfg, mode="json")


def _status(reg, name: str, max_failures: int) -> str:
    last = reg.last(name)
    if last is None:
        return "never synced"
    if last.get("status") == "running" or "finished_at" not in last:
        return last.get("status", "running")
    if reg.failures_in_a_row(name) >= max_failures:
        return "failing"
    return last["status"]


@sources_app.command("add")
def add(name: str = typer.Argument(..., help="a short name: lowercase letters, digits, - and _"),
        kind: str = typer.Option(..., "--kind", help="files, git or confluence"),
        repo: Optional[str] = typer.Option(None, "--repo", help="git: a local path or any URL git can reach"),
        branch: str = typer.Option("main", "--branch", help="git: the branch to follow"),
        path: List[str] = typer.Option([], "--path", help="files: the files and folders (as `lore ingest` takes "
                                       "them); git: only these sub-paths (repeatable)"),
        link: Optional[str] = typer.Option(None, "--link", help="git: web link template, e.g. "
                                           "https://git.example.com/{repo}/blob/{commit}/{path}"),
        exclude: List[str] = typer.Option([], "--exclude", help="files, git: gitignore-style patterns to skip"),
        url: Optional[str] = typer.Option(None, "--url", help="confluence: the site, e.g. https://acme.atlassian.net"),
        flavor: str = typer.Option("cloud", "--flavor", help="confluence: cloud or datacenter"),
        space: List[str] = typer.Option([], "--space", help="confluence: space keys to sync (repeatable)"),
        email: Optional[str] = typer.Option(None, "--email", help="confluence cloud: the account of the API token"),
        interval: int = typer.Option(3600, "--interval", help="seconds between syncs under `lore serve`; 0 = on demand"),
        acl: List[str] = typer.Option([], "--acl", help="readers of items whose source states none (git): "
                                      "public, group:NAME, user:ID (repeatable)"),
        owner: List[str] = typer.Option([], "--owner", help="owners of items whose source names none (repeatable)"),
        doc_type: Optional[str] = typer.Option(None, "--doc-type", help="policy, spec or incident"),
        data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Add a source; its credentials are settings (LORE_SOURCES__TOKENS), never stored with it."""
    from ingest.sources.registry import SourceConfig
    from ingest.types import validate_acl

    _, reg = _registry(data_dir)
    options: dict = {}
    try:
        if kind == "files":
            if not path:
                raise _missing("--path", "a files source needs the files or folders: --path /srv/policies")
            options = {"paths": [os.path.abspath(Path(p).expanduser()) for p in path], "exclude": exclude}
        elif kind == "git":
            if not repo:
                raise _missing("--repo", "a git source needs the repository: --repo /srv/handbook or a URL")
            options = {"repo": repo, "branch": branch, "paths": path, "link": link, "exclude": exclude}
        elif kind == "confluence":
            if not url or not space:
                raise _missing("--url/--space", "a confluence source needs --url https://SITE and --space KEY")
            if flavor == "cloud" and not email:
                raise _missing("--email", "Confluence Cloud authenticates with an email and an API token")
            options = {"base_url": url, "flavor": flavor, "spaces": space, "email": email}
        cfg = reg.add(SourceConfig(name, kind, options, interval, validate_acl(list(acl), "--acl"), tuple(owner),
                                   doc_type))
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(_config(cfg)))
    else:
        out.print(f"added source [bold]{cfg.name}[/] ({cfg.kind}); sync it now with `lore sources sync {cfg.name}`")


def _missing(option: str, why: str):
    from ingest.errors import ConfigError

    return ConfigError(f"{option}: {why}")


@sources_app.command("list")
def list_(data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """The configured sources with their state and last sync."""
    s, reg = _registry(data_dir)
    rows = [{**_config(c), "status": _status(reg, c.name, s.sources.max_failures), "last_sync": reg.last(c.name)}
            for c in reg.list()]
    if as_json:
        print(json.dumps({"sources": rows}))
        return
    if not rows:
        out.print("no sources; add one with `lore sources add NAME --kind git --repo PATH`")
    for r in rows:
        last = r["last_sync"] or {}
        out.print(f"{r['name']:<20} {r['kind']:<11} {r['status']:<13} every {r['interval_s']} s  "
                  f"last: {last.get('finished_at') or last.get('started_at') or '-'}")


@sources_app.command("show")
def show(name: str, runs: int = typer.Option(5, "--runs", min=1, max=100, help="reports to show"),
         data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """A source's settings (no secrets) and its latest sync reports."""
    s, reg = _registry(data_dir)
    try:
        cfg = reg.get(name)
    except LoreError as exc:
        _fail(exc)
    d = {**_config(cfg), "status": _status(reg, name, s.sources.max_failures), "runs": reg.runs(name, runs)}
    if as_json:
        print(json.dumps(d))
        return
    out.print_json(json.dumps(d))


@sources_app.command("status")
def status(data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Each source's last sync report: counts, every failure with its item and reason, duration."""
    s, reg = _registry(data_dir)
    rows = [{"name": c.name, "status": _status(reg, c.name, s.sources.max_failures), "last_sync": reg.last(c.name),
             "last_success": (reg.last_success(c.name) or {}).get("finished_at")} for c in reg.list()]
    if as_json:
        print(json.dumps({"sources": rows}))
        return
    for r in rows:
        rep = r["last_sync"] or {}
        out.print(f"[bold]{r['name']}[/]: {r['status']}; last success {r['last_success'] or 'never'}")
        if rep:
            out.print(f"  {rep.get('listed', 0)} listed, {rep.get('added', 0)} added, {rep.get('updated', 0)} "
                      f"updated, {rep.get('deleted', 0)} deleted, {rep.get('unchanged', 0)} unchanged, "
                      f"{len(rep.get('failed') or [])} failed in {rep.get('duration_s', 0)} s")
        if rep.get("error"):
            out.print(f"  [red]error:[/] {rep['error']}", soft_wrap=True)
        for f in (rep.get("failed") or [])[:20]:
            out.print(f"  [yellow]failed[/] {f['item']}: {f['reason']}", soft_wrap=True)


@sources_app.command("sync")
def sync(names: List[str] = typer.Argument(None, help="sources to sync (default: all)"),
         allow_empty: bool = typer.Option(False, "--allow-empty", help="accept a listing with no items, "
                                          "removing the source's documents"),
         data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Sync now: added, changed, deleted and re-permissioned items all take effect."""
    from api.wiring import build_ingestor, sync_source

    s, reg = _registry(data_dir)
    chosen = names or [c.name for c in reg.list()]
    try:
        for n in chosen:
            reg.get(n)  # every name is checked before anything syncs
        ing = build_ingestor(s) if chosen else None
    except LoreError as exc:
        _fail(exc)
    reports = []
    for n in chosen:
        err.print(f"syncing {n}...")
        reports.append(sync_source(s, n, ingestor=ing, allow_empty=allow_empty, registry=reg))
        r = reports[-1]
        line = (f"{n}: {r['status']} - {r['listed']} listed, {r['added']} added, {r['updated']} updated, "
                f"{r['deleted']} deleted, {r['unchanged']} unchanged, {len(r['failed'])} failed")
        err.print(line + (f"\n  error: {r['error']}" if r.get("error") else ""), soft_wrap=True, markup=False)
    if as_json:
        print(json.dumps({"reports": reports}))
    if any(r["status"] == "failed" for r in reports):
        raise typer.Exit(EXIT_SYNC_FAILED)


@sources_app.command("rm")
def rm(name: str, keep_documents: bool = typer.Option(False, "--keep-documents",
                                                      help="leave the synced documents in the knowledge base"),
       data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Remove a source and (unless --keep-documents) the documents it synced."""
    from api.wiring import build_ingestor

    s, reg = _registry(data_dir)
    removed = 0
    try:
        reg.get(name)
        if not keep_documents:
            ing = build_ingestor(s)
            for doc in ing.store.source_documents(name).values():
                ing.remove(doc[0].id)
                removed += 1
        reg.remove(name)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"removed": name, "documents_removed": removed}))
    else:
        out.print(f"removed source {name} and {removed} of its documents")
