"""`lore slack --socket`: run the Slack bot over Socket Mode (the Events API needs no command: `lore serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from api.cli_base import DataDir, _fail, _settings, app
from ingest.errors import ConfigError, LoreError


@app.command()
def slack(socket: bool = typer.Option(False, "--socket", help="connect to Slack over Socket Mode (needs "
                                      "LORE_SLACK__APP_TOKEN); no public URL needed"),
          data_dir: Optional[Path] = DataDir) -> None:
    """Run the Slack bot over Socket Mode. Over HTTP it is part of `lore serve`, at /slack/events."""
    s = _settings(data_dir)
    if not socket:
        _fail(ConfigError("over HTTP the Slack bot runs inside `lore serve` (Events API request URL: "
                          "https://<your host>/slack/events); use `lore slack --socket` for Socket Mode"))
    from api.slack.bot import run_socket_mode

    try:
        run_socket_mode(s)
    except LoreError as exc:
        _fail(exc)
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C is the way to stop it
        raise typer.Exit(0) from None
