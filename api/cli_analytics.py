"""`lore gaps`, `lore stale`, `lore conflicts`: analytics for documentation owners, from the data dir."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer
from rich.markup import escape

from api.cli_base import AsJson, DataDir, _fail, _settings, app, out
from ingest.errors import ConfigError, LoreError

if TYPE_CHECKING:
    from api.deps import Services


def _when(value: Optional[str], option: str, end: bool) -> datetime | None:
    """An ISO date or date-time in UTC; a bare --until date includes that whole day (as the API does)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).date()
            return datetime.combine(day + timedelta(days=1) if end else day, time(), timezone.utc)
        t = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        _fail(ConfigError(f"{option} {value!r} is not a date; use YYYY-MM-DD or an ISO 8601 time"))
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _report(data_dir: Optional[Path], build: Callable[[Services], dict]) -> dict:
    """Run one report on the parts of the knowledge base it names; Lore errors exit with their message."""
    svc = _services(data_dir)
    try:
        return build(svc)
    except LoreError as exc:
        _fail(exc)
    finally:
        svc.close()


OwnerOption = typer.Option(None, "--owner", help="only items of documents this owner keeps, e.g. group:people-ops "
                           "(\"(no owner)\": documents without owners)")


def _owner(value: Optional[str]) -> str | None:
    if value is not None and not value.strip():
        _fail(ConfigError("--owner is empty; give an owner as documents carry it, e.g. group:people-ops"))
    return value.strip() if value else None


def _owners_line(report: dict) -> None:
    """Items per owner (before --owner): where each team's work list stands."""
    counts = ", ".join(f"{escape(k)} {v}" for k, v in report["by_owner"].items())
    out.print(f"by owner: {counts or '-'}" + (f"; showing {escape(report['owner'])}" if report["owner"] else ""),
              soft_wrap=True)


def _services(data_dir: Optional[Path]) -> Services:
    from api.deps import Services

    return Services(_settings(data_dir))


@app.command()
def gaps(since: Optional[str] = typer.Option(None, "--since", help="from this date (YYYY-MM-DD) or ISO time"),
         until: Optional[str] = typer.Option(None, "--until", help="up to this date, inclusive, or ISO time"),
         min_size: int = typer.Option(1, "--min-size", min=1, help="leave out clusters with fewer questions"),
         period: str = typer.Option("week", "--period", help="trend buckets: week (ISO) or day"),
         owner: Optional[str] = OwnerOption, data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Knowledge gaps: clusters of unanswered, low-confidence or down-voted questions, by people reached; a
    cluster's owners are those of its nearest documents."""
    from evals.analytics import gaps_report

    start, end = _when(since, "--since", False), _when(until, "--until", True)
    if period not in ("week", "day"):
        _fail(ConfigError(f"--period {period!r} is not week or day"))
    who = _owner(owner)
    report = _report(data_dir, lambda svc: gaps_report(svc.audit, svc.store, svc.vectors, svc.embedder,
                                                       svc.settings.answer.threshold, start, end, min_size, period,
                                                       owner=who))
    if as_json:
        print(json.dumps(report))
        return
    from rich.table import Table

    table = Table("#", "topic", "people", "questions", "why", "channels", "nearest document", "owners", box=None)
    for c in report["clusters"]:
        why = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c["reasons"].items() if v)
        ch = ", ".join(f"{k} {v}" for k, v in c["channels"].items() if v)
        near = c["nearest_documents"][0]["title"] if c["nearest_documents"] else "-"
        table.add_row(str(c["id"]), escape(c["label"][:70]), str(c["people"]), str(c["size"]), why, ch,
                      escape(near[:40]), escape(", ".join(c["owners"]) or "-"))
    out.print(table)
    _owners_line(report)
    out.print(f"{len(report['clusters'])} clusters from {report['questions_considered']} gap questions")


@app.command()
def stale(limit: int = typer.Option(20, "--limit", min=1, max=500, help="how many of the most-cited documents"),
          since: Optional[str] = typer.Option(None, "--since", help="count citations from this date"),
          until: Optional[str] = typer.Option(None, "--until", help="count citations up to this date"),
          owner: Optional[str] = OwnerOption, data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Stale sources: the most-cited documents, oldest update first, with their citation counts."""
    from evals.analytics import stale_report

    start, end = _when(since, "--since", False), _when(until, "--until", True)
    who = _owner(owner)
    report = _report(data_dir, lambda svc: stale_report(svc.audit, svc.store, limit, start, end, owner=who))
    if as_json:
        print(json.dumps(report))
        return
    from rich.table import Table

    table = Table("document", "type", "owners", "updated", "age (days)", "citations", "last cited", "old versions",
                  box=None)
    for d in report["documents"]:
        table.add_row(escape(d["title"][:50]), d["doc_type"], escape(", ".join(d["owners"]) or "-"),
                      d["updated_at"][:10], f"{d['age_days']:.0f}", str(d["citations"]), d["last_cited_at"][:10],
                      str(d["cited_old_versions"] or ""))
    out.print(table)
    _owners_line(report)


@app.command()
def conflicts(limit: int = typer.Option(50, "--limit", min=1, max=500, help="most conflicts listed"),
              owner: Optional[str] = OwnerOption, data_dir: Optional[Path] = DataDir, as_json: bool = AsJson) -> None:
    """Conflicts: passages of different documents (or versions) giving different numbers, dates or limits."""
    from evals.analytics import conflicts_report

    who = _owner(owner)
    report = _report(data_dir, lambda svc: conflicts_report(svc.audit, svc.store, svc.vectors, svc.embedder, limit,
                                                            owner=who))
    if as_json:
        print(json.dumps(report))
        return
    for c in report["conflicts"]:
        out.print(f"[bold]{escape(c['subject'])}[/] ({c['kind']}, similarity {c['similarity']:.2f})")
        for side in (c["a"], c["b"]):
            old = "" if side["current"] else " [yellow](superseded version)[/]"
            who = f" ({escape(', '.join(side['owners']))})" if side["owners"] else ""
            out.print(f"  [cyan]{escape(', '.join(side['values']))}[/] in {escape(side['title'])}{who}{old}: "
                      f"\u201c{escape(side['quote'])}\u201d  [dim]{escape(side['uri'])}[/]", soft_wrap=True)
    out.print(f"{len(report['conflicts'])} conflicts")
    _owners_line(report)
