"""`lore index check` and `lore index repair`: the vector index's health, and its rebuild (ingest/chroma_store.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

index_app = typer.Typer(help="The vector index: check that dense search can reach every stored vector, rebuild it.",
                        no_args_is_help=True, pretty_exceptions_enable=False)
EXIT_DAMAGED = 1
_DATA = typer.Option(None, "--data-dir", help="knowledge base folder (default: LORE_DATA_DIR or ./.lore)")
_JSON = typer.Option(False, "--json", help="print one JSON object as the last line")


def _vectors(data_dir: Optional[Path]):
    from api.cli_base import _settings
    from api.wiring import build_embedder, build_store, build_vectors

    s = _settings(data_dir)
    return s, build_store(s), build_vectors(s, build_embedder(s))  # the embedder only names the collection


def _say(health, as_json: bool, **extra) -> None:
    from api.cli_base import out

    if as_json:
        print(json.dumps({**health.to_dict(), **extra}))
        return
    state = "[red]damaged[/]: run 'lore index repair'" if health.damaged else "[green]ok[/]"
    out.print(f"vector index {state} - {health.vectors} chunks on {health.nodes} nodes ({health.groups} shared by "
              f"identical passages); {health.unreachable} of {health.probes} probes not found by search, "
              f"{health.duplicates} with duplicate nodes")


@index_app.command("check")
def check(probes: int = typer.Option(64, "--probes", min=1, max=1000, help="stored vectors searched for"),
          data_dir: Optional[Path] = _DATA, as_json: bool = _JSON) -> None:
    """Search for stored vectors with their own vectors: exit 1 when the index is damaged (repair it)."""
    from api.cli_base import _fail
    from ingest.errors import LoreError

    try:
        health = _vectors(data_dir)[2].check(probes)
    except LoreError as exc:
        _fail(exc)
    _say(health, as_json)
    if health.damaged:
        raise typer.Exit(EXIT_DAMAGED)


@index_app.command("repair")
def repair(force: bool = typer.Option(False, "--force", help="rebuild even when the check finds no damage"),
           data_dir: Optional[Path] = _DATA, as_json: bool = _JSON) -> None:
    """Rebuild the vector index from the stored vectors (one node per distinct vector); ingests must wait."""
    from filelock import FileLock, Timeout

    from api.cli_base import _fail, err
    from ingest.errors import LoreError, StoreLocked

    try:
        _, store, vectors = _vectors(data_dir)
        health = vectors.check()
        if not (health.damaged or force):
            _say(health, as_json, rebuilt=False)
            return
        lock = store.path.with_suffix(".lock")  # the ingest lock (ingest/pipeline.py)
        try:
            with FileLock(str(lock)).acquire(timeout=0):
                err.print("rebuilding the vector index ...")
                _, health = vectors.rebuild()
        except Timeout:
            raise StoreLocked(f"an ingest is writing to {lock.parent}; run 'lore index repair' when it is done") from None
    except LoreError as exc:
        _fail(exc)
    _say(health, as_json, rebuilt=True)
    if health.damaged:
        raise typer.Exit(EXIT_DAMAGED)
