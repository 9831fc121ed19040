"""Process logging for the CLI and the service: one format, secrets masked, no third-party payload dumps.

Lore logs what happened (ids, counts, timings), not what was asked; a message that does carry user text
(a query at DEBUG, a file name) still passes through `evals.redact` before it reaches any handler, so a key
or password typed into a question never lands in a log file at any level.
"""

from __future__ import annotations

import logging

from evals.redact import redact

FORMAT = "%(levelname)s %(name)s: %(message)s"
# clients that log whole request bodies (prompts with passages, uploaded text) at DEBUG: never below WARNING
QUIET = ("openai", "httpx", "httpcore", "urllib3", "chromadb", "slack_bolt", "slack_sdk", "multipart")


class RedactSecrets(logging.Filter):
    """Masks secrets and personal data in every record's final message (its arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report, not ours
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str) -> None:
    """Set the level and make every root handler (now and the default one) mask secrets."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
    for name in QUIET:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
