"""What every `lore` command shares: the Typer app, consoles, settings loading and error exit codes.

The command modules (cli.py, cli_serve.py, ...) import from here and register on `app`; nothing here
imports them, so the CLI has no import circle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ingest.errors import ConfigError, DocumentNotFound, LoreError, StoreError

if TYPE_CHECKING:
    from api.settings import Settings

# Startup time is the CLI's latency (issue 16): modules a command needs (settings, models, stores, rich
# tables and progress bars) are imported inside that command, so `lore --help` loads typer and rich only.

app = typer.Typer(help="Lore: answers from your company's documents, with citations.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
err = Console(stderr=True)
out = Console()
EXIT_PARTIAL = 3  # some files could not be ingested; the rest were


def _settings(data_dir: Optional[Path]) -> Settings:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from api.logs import configure as configure_logging
    from api.settings import Settings

    try:
        s = Settings()
    except SettingsError as exc:  # a complex value (a list or a section) that is not valid JSON
        field = re.search(r'field "([^"]+)"', str(exc))
        name = f"LORE_{field.group(1).upper()}" if field else "a LORE_ variable"
        _fail(ConfigError(f"invalid setting {name}{'__*' if field else ''}: list values are JSON, e.g. "
                          "LORE_INGEST__EXCLUDE='[\"SOURCES.md\"]', LORE_DEFAULT_ACL='[\"group:staff\"]'"))
    except ValidationError as exc:
        bad = "; ".join(f"LORE_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        _fail(ConfigError(f"invalid setting {bad}"))
    except LoreError as exc:
        _fail(exc)
    if data_dir is not None:
        s.data_dir = data_dir
    configure_logging(s.log_level)
    return s


def _fail(exc: LoreError) -> NoReturn:
    err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
    code = 4 if isinstance(exc, DocumentNotFound) else 5 if isinstance(exc, StoreError) else 2
    raise typer.Exit(code)


DataDir = typer.Option(None, "--data-dir", help="knowledge base folder (default: LORE_DATA_DIR or ./.lore)")
AsJson = typer.Option(False, "--json", help="print one JSON object as the last line")
