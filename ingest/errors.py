"""Lore's error hierarchy: one base class; messages say what to do; translated only at the edges."""

from __future__ import annotations

import os
from pathlib import Path


class LoreError(Exception):
    """Base of every error Lore raises on purpose."""


class ConfigError(LoreError):
    """A setting or argument is invalid; the message names it and the fix."""


class InvalidInput(LoreError):
    """A request's input (a query, a filter, a rating, a name) is invalid; the message names the field and the fix.

    Not a ConfigError: the caller sent it, the service is configured fine (HTTP 400/422, CLI exit 2).
    """


class StoreError(LoreError):
    """The knowledge base storage is unreachable, locked or inconsistent."""


class StoreLocked(StoreError):
    """Another ingest holds the data directory's write lock."""


class NotFound(LoreError):
    """Nothing the caller may read has this id (unreadable and absent look the same)."""


class DocumentNotFound(NotFound):
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


def sqlite_unusable(path: str | Path, exc: BaseException, damaged: str) -> StoreError:
    """A StoreError for an SQLite file (or its folder) that cannot be used: which case it is, and the fix.

    `damaged` says what to do when the file is corrupt or not a database; it differs per file (the
    registry can be rebuilt by ingesting again, the audit log only restored from a backup).
    """
    path = Path(path)
    folder = path.parent
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc) or type(exc).__name__
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "not a database" in text or "malformed" in text:
        return StoreError(f"{path} is not a SQLite database or is damaged ({text}); {damaged}")
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StoreError(f"{path} cannot be written: the disk is full ({text}); free space on the disk of {folder}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreError(f"{path} is busy ({text}); another process is writing it: try again in a moment")
    writable = os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    if not writable or name.startswith(("SQLITE_READONLY", "SQLITE_PERM")) or isinstance(exc, PermissionError):
        return StoreError(f"{path} is read-only ({text}); check the permissions of the data directory {folder} "
                          "(LORE_DATA_DIR): this user must be able to write the folder and the files in it")
    return StoreError(f"{path} cannot be used ({text}); check that the data directory {folder} (LORE_DATA_DIR) "
                      "exists and is a folder this user can read and write")
