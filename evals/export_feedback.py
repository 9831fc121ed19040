"""Thumbs-down answers and abstentions from the audit log, as eval cases for a reviewer to complete (issue 7).

`lore eval export-feedback --since DATE` reads DATA_DIR/audit.db (answers given through the API, the web
page, Slack and the OpenAI-compatible endpoint) and writes one JSONL line per answer whose latest rating
is "down" or whose status is `no_evidence`. Each line is a `lore eval qa` case with `"answerable": null`:
the loader refuses it until a reviewer sets `answerable` (and, for answerable questions, `gold_docs` and
`must_contain`). A question asked several times is exported once (the first time; `times_asked` counts).
Lines already in the output file are kept as they are, so a re-export never loses a reviewer's work.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from ingest.errors import ConfigError, StoreError

REVIEW = ("TODO: set answerable to true or false; if true, list in gold_docs the documents (paths relative to "
          "the eval corpus) that answer it and in must_contain 1-3 key facts copied from them "
          "(this field is ignored by `lore eval qa`)")
_WS = re.compile(r"\s+")


def parse_when(text: str, name: str, end: bool = False) -> datetime:
    """A date (`2026-11-01`: start of that day, or with `end` the start of the next) or an ISO date-time, as UTC."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            t = datetime.combine(d, time(), tzinfo=timezone.utc)
            return t + timedelta(days=1) if end else t
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{name} {text!r} is not a date; use YYYY-MM-DD or an ISO 8601 date-time") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _key(question: str) -> str:
    return _WS.sub(" ", question).strip().lower()


def case(record) -> dict:
    """One audit record (evals.audit.AuditRecord) as an unreviewed eval case."""
    fb = record.feedback
    cited = [{"doc_id": c.get("doc_id"), "title": c.get("title"), "uri": c.get("uri"), "quote": c.get("quote")}
             for c in record.citations]
    closest = [{"doc_id": s.get("doc_id"), "title": s.get("title"), "uri": s.get("uri"), "score": s.get("score")}
               for s in record.sources]
    out = {"id": f"fb-{record.trace_id}", "question": record.question, "answerable": None, "gold_docs": [],
           "must_contain": [], "answer_given": record.answer, "status": record.status, "sources": cited}
    if record.status == "no_evidence":
        out["closest_sources"] = closest
    out.update({"feedback": {"rating": fb.rating, "comment": fb.comment} if fb else None,
                "asked_at": record.recorded_at, "channel": record.channel, "trace_id": record.trace_id,
                "user": record.user_id, "groups": list(record.groups), "times_asked": 1, "review": REVIEW})
    return out


def select(records) -> list[dict]:
    """Cases for the thumbs-down and no_evidence records, one per distinct question, oldest first."""
    out: dict[str, dict] = {}
    for r in records:
        down = r.feedback is not None and r.feedback.rating == "down"
        if not (down or r.status == "no_evidence"):
            continue
        k = _key(r.question)
        if k in out:
            out[k]["times_asked"] += 1
        else:
            out[k] = case(r)
    return list(out.values())


def merge(path: Path, cases: list[dict]) -> tuple[list[dict], int]:
    """The file's existing lines, unchanged, plus the new cases whose id or question it lacks."""
    kept: list[dict] = []
    if path.is_file():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    kept.append(json.loads(line))
                except ValueError as exc:
                    raise ConfigError(f"{path}:{n}: not a JSON line ({exc}); fix it or export to another --out") from exc
    ids = {r.get("id") for r in kept}
    questions = {_key(str(r.get("question", ""))) for r in kept}
    new = [c for c in cases if c["id"] not in ids and _key(c["question"]) not in questions]
    return kept + new, len(new)


def export(audit, out: str | Path, since: datetime, until: datetime | None = None) -> dict:
    """Write the cases of [since, until) to `out` (JSONL, merged with what it holds); return a summary."""
    if until is not None and until <= since:
        raise ConfigError(f"--until ({until.isoformat()}) must be later than --since ({since.isoformat()})")
    cases = select(audit.iter_records(since, until))
    path = Path(out)
    rows, added = merge(path, cases)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return {"out": str(path), "found": len(cases), "added": added, "kept": len(rows) - added,
            "thumbs_down": sum(1 for c in cases if c["feedback"] and c["feedback"]["rating"] == "down"),
            "no_evidence": sum(1 for c in cases if c["status"] == "no_evidence"),
            "unreviewed": sum(1 for r in rows if r.get("answerable") is None),
            "since": since.isoformat(), "until": until.isoformat() if until else None}


def open_audit(data_dir: str | Path, redact: bool = True):
    """The service's audit log (DATA_DIR/audit.db), opened with the retention policy it already holds."""
    from evals.audit import AuditLog

    path = Path(data_dir) / "audit.db"
    if not path.is_file():
        raise ConfigError(f"{path}: no audit log here; pass --data-dir the data dir of the service "
                          "(LORE_DATA_DIR of `lore serve`)")
    try:  # AuditLog writes the retention it is given into the log: hand it the one the service set
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT retention_days FROM policy WHERE id = 1").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the audit log {path}: {exc}") from exc
    return AuditLog(path, redact=redact, retention_days=row[0] if row else None)
