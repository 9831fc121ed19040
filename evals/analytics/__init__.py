"""Admin analytics over the audit log and the knowledge base: knowledge gaps, stale sources, conflicts.

Analytics are for admins only (GET /v1/analytics/*, `lore gaps|stale|conflicts`): they read every recorded
question and every document, whatever its ACL, because there is by design no principal that may read
everything. Never expose them to readers.
"""

from evals.analytics.conflicts import ConflictConfig, conflicts_report
from evals.analytics.gaps import GapConfig, gaps_report
from evals.analytics.owners import NO_OWNER
from evals.analytics.stale import stale_report

__all__ = ["NO_OWNER", "ConflictConfig", "GapConfig", "conflicts_report", "gaps_report", "stale_report"]
