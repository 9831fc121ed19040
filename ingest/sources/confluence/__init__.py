"""Confluence Cloud and Data Center as a Source (pages and attachments of some spaces, with their readers)."""

from ingest.sources.confluence.source import ConfluenceSource

__all__ = ["ConfluenceSource"]
