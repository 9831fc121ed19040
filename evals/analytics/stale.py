"""Stale sources: the most-cited documents, oldest update first, so the ones answers lean on get reviewed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable

from evals.analytics.owners import by_owner, owned_by, owner_keys
from evals.audit import AuditRecord, utc_iso
from ingest.errors import ConfigError

if TYPE_CHECKING:
    from evals.audit import AuditLog
    from ingest.sqlite_store import SqliteStore


@dataclass(slots=True)
class _Cited:
    answers: int = 0
    last: str = ""
    versions: Counter = field(default_factory=Counter)  # version -> answers that cited it


def count_citations(records: Iterable[AuditRecord]) -> dict[str, _Cited]:
    """Per document id: how many answers cited it, when last, and which versions."""
    out: dict[str, _Cited] = {}
    for r in records:
        per_doc: dict[str, set] = {}
        for c in r.citations:
            if c.get("doc_id"):
                per_doc.setdefault(c["doc_id"], set()).add(c.get("version"))
        for doc_id, versions in per_doc.items():
            x = out.setdefault(doc_id, _Cited())
            x.answers += 1
            x.last = max(x.last, r.recorded_at)
            x.versions.update(v for v in versions if v)
    return out


def _age_days(updated_at: str, now: datetime) -> float:
    t = datetime.fromisoformat(updated_at)
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return round((now - t).total_seconds() / 86400, 1)


def stale_documents(cited: dict[str, _Cited], store, limit: int, now: datetime,
                    owner: str | None = None) -> tuple[list[dict], dict[str, int]]:
    """The `limit` most-cited documents still in the registry (of `owner`, if given), ordered by age since
    their last update; and the cited documents per owner, whatever the filter and limit."""
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    docs = store.get_documents(list(cited))
    keys = {d: owner_keys([docs[d][0].owners]) for d in cited if d in docs}
    mine = [d for d in keys if owned_by(keys[d], owner)]
    top = sorted(mine, key=lambda d: (-cited[d].answers, d))[:limit]
    out = []
    for doc_id in top:
        doc = docs[doc_id][0]
        x = cited[doc_id]
        old = sum(n for v, n in x.versions.items() if v != doc.version)
        out.append({"doc_id": doc_id, "title": doc.title, "uri": doc.uri, "doc_type": doc.doc_type,
                    "updated_at": doc.updated_at, "age_days": _age_days(doc.updated_at, now),
                    "citations": x.answers, "last_cited_at": x.last, "cited_old_versions": old,
                    "version": doc.version, "owners": list(doc.owners),
                    "owner": ", ".join(doc.owners) or None})  # the admin page's column until it shows owners
    out.sort(key=lambda d: (-d["age_days"], -d["citations"], d["doc_id"]))
    return out, by_owner(keys.values())


def stale_report(audit: AuditLog, store: SqliteStore, limit: int = 20, since: datetime | None = None, until: datetime | None = None,
                 owner: str | None = None) -> dict:
    """The stale-sources report (GET /v1/analytics/stale, `lore stale`); `owner` keeps one owner's documents."""
    now = datetime.now(timezone.utc)
    cited = count_citations(audit.iter_records(since, until))
    documents, counts = stale_documents(cited, store, limit, now, owner)
    return {"generated_at": utc_iso(now), "since": utc_iso(since) if since else None,
            "until": utc_iso(until) if until else None, "owner": owner, "by_owner": counts, "documents": documents}
