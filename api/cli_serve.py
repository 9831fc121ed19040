"""`lore serve`, `lore mcp` and `lore keys`: run the HTTP service or the MCP server, and manage API keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from api.cli_base import AsJson, DataDir, _fail, _settings, app, out
from ingest.errors import LoreError

keys_app = typer.Typer(help="API keys for the HTTP service: each maps to a user, groups and a role.",
                       no_args_is_help=True)


@app.command()
def serve(host: Optional[str] = typer.Option(None, "--host", help="address to listen on (default LORE_SERVER__HOST, 127.0.0.1)"),
          port: Optional[int] = typer.Option(None, "--port", help="port (default LORE_SERVER__PORT, 8000)"),
          data_dir: Optional[Path] = DataDir) -> None:
    """Run the HTTP API and web page (uvicorn)."""
    from api.app import serve as run

    s = _settings(data_dir)
    try:
        run(s, host or s.server.host, port or s.server.port)
    except LoreError as exc:
        _fail(exc)


@app.command()
def mcp(data_dir: Optional[Path] = DataDir) -> None:
    """Serve the knowledge base to a coding assistant over MCP (stdio), as the API key in LORE_API_KEY."""
    import os

    from api.mcp_server import KEY_VARIABLE, run_stdio

    s = _settings(data_dir)
    try:
        run_stdio(s, os.environ.get(KEY_VARIABLE))
    except LoreError as exc:
        _fail(exc)


def _store(data_dir: Optional[Path]):
    from ingest.keys import KeyStore

    return KeyStore(Path(_settings(data_dir).data_dir) / "auth.db")


def _key_json(info) -> dict:
    """A key's record as GET /v1/keys shows it (the same schema), without the request's `current`."""
    from api.schemas import KeyInfoOut

    return KeyInfoOut.of(info).model_dump(mode="json")


@keys_app.command("create")
def keys_create(user: Optional[str] = typer.Option(None, "--user", help="the user id whose permissions apply"),
                groups: str = typer.Option("", "--groups", help="comma-separated groups"),
                role: str = typer.Option("reader", "--role", help="reader (ask, search, read) or admin (also "
                                         "upload, delete, ingest, audit)"),
                note: Optional[str] = typer.Option(None, "--note", help="what the key is for"),
                data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Create a key and print it once; only its hash is stored."""
    try:
        key, info = _store(data_dir).create(user, groups, role, note)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"key": key, **_key_json(info)}))
        return
    out.print(f"{key}\n[dim]key id {info.key_id} · user {info.user_id or '-'} · groups "
              f"{','.join(info.groups) or '-'} · {info.role}. Store it now: it is not shown again.[/]")


@keys_app.command("list")
def keys_list(all_: bool = typer.Option(False, "--all", help="include revoked keys"),
              data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """List keys (ids, users, groups, roles; never the keys themselves)."""
    try:
        infos = _store(data_dir).list(include_revoked=all_)
    except LoreError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps([_key_json(i) for i in infos]))
        return
    from rich.table import Table

    table = Table("key id", "user", "groups", "role", "created", "last used", "revoked")
    for i in infos:
        table.add_row(i.key_id, escape(i.user_id or "-"), escape(",".join(i.groups) or "-"), i.role, i.created_at,
                      i.last_used_at or "-", i.revoked_at or "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key id from `lore keys list`"),
                data_dir: Optional[Path] = DataDir) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    try:
        info = _store(data_dir).revoke(key_id)
    except LoreError as exc:
        _fail(exc)
    out.print(f"revoked {info.key_id} ({info.user_id or '-'}, {info.role})")


app.add_typer(keys_app, name="keys")
