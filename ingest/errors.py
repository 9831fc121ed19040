"""Lore's error hierarchy: one base class; messages say what to do; translated only at the edges."""

from __future__ import annotations


class LoreError(Exception):
    """Base of every error Lore raises on purpose."""


class ConfigError(LoreError):
    """A setting or argument is invalid; the message names it and the fix."""


class StoreError(LoreError):
    """The knowledge base storage is unreachable, locked or inconsistent."""


class StoreLocked(StoreError):
    """Another ingest holds the data directory's write lock."""


class DocumentNotFound(LoreError):
    """No stored document has the given id."""


class IngestError(LoreError):
    """A single input file could not be ingested; the batch goes on without it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # travels back from parser processes intact
        return (type(self), (self.path, self.reason))


class UnsupportedFormat(IngestError):
    """The file's type is not one Lore can parse."""


class FileTooLarge(IngestError):
    """The file exceeds the configured size limit."""


class EmptyDocument(IngestError):
    """The file holds no extractable text."""


class EncryptedDocument(IngestError):
    """The file is password-protected."""


class UnreadableFile(IngestError):
    """The path cannot be read (permissions, dangling link, loop, not a regular file)."""


class ParseFailed(IngestError):
    """The file is corrupt, truncated or not what its extension says."""
