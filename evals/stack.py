"""What an evaluation needs from the composition root, as a Protocol.

Layers point one way (ingest <- retriever <- assistant <- evals <- api): evals never import api, so an
eval is handed its parts. `api.wiring.EvalStack` implements this from the current settings; a test can
hand in anything with the same shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

if TYPE_CHECKING:  # types only: an eval module imports no model or store until it runs
    from assistant.service import Assistant
    from ingest.pipeline import Ingestor
    from retriever.search import Retriever

OnEvent = Callable[[str, dict], None]


class Stack(Protocol):
    """Lore's parts over one data dir, built from one set of settings."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def exclude(self) -> Sequence[str]:
        """gitignore-style patterns ingest skips (LORE_INGEST__EXCLUDE)."""
        ...

    def at(self, data_dir: Path) -> Stack:
        """The same settings over another data dir (an eval cache)."""
        ...

    def ingestor(self, on_event: OnEvent | None = None) -> Ingestor: ...

    def retriever(self) -> Retriever: ...

    def assistant(self) -> Assistant: ...

    def snapshot(self) -> dict:
        """The settings that decide quality, for run reports: never a secret."""
        ...
