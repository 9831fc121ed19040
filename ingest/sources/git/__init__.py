"""The Git source: files of one branch of a git repository (issue 18). See GitSource."""

from ingest.sources.git.source import DEFAULT_LINK, GitSource

__all__ = ["DEFAULT_LINK", "GitSource"]
