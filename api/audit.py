"""(being written) The append-only audit log of questions and answers."""

from __future__ import annotations


class AuditLog:
    def __init__(self, path, *, redact: bool = True, retention_days: int | None = None) -> None:
        self.path = path

    def record(self, *, caller, channel: str, question: str, answer: dict, latency_ms: float) -> None:
        pass

    def purge(self) -> int:
        return 0

    def close(self) -> None:
        pass
