"""The analytics tests' corpus, questions and helpers (asking over HTTP, running `lore`)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from tests.support import LORE, REPO

CORPUS = {
    "policies/pto-policy.md": """---
title: Paid Time Off Policy
doc_type: policy
updated: 2024-01-10
owner: People Operations
---
# Paid Time Off Policy

## Accrual

Full-time employees accrue 8 hours of PTO per month of service. Accrual starts on the first day of employment.

## Carry-over

Employees may carry over up to 40 hours of unused PTO into the next calendar year. Hours above the limit
are forfeited on January 1.

## Requesting time off

Requests for more than three consecutive days need manager approval two weeks in advance.
""",
    # the seeded conflict: 80 carry-over hours here, 40 in the PTO policy; the 8 accrued hours agree
    "policies/employee-handbook.md": """---
title: Employee Handbook
doc_type: policy
updated: 2026-01-05
owner: People Operations
---
# Employee Handbook

## Office

The Lisbon office is open from Monday to Friday. Visitors sign in at the front desk.

## Time off

Full-time employees accrue 8 hours of PTO per month. Unused PTO of up to 80 hours can be carried over to
the following year.

## Equipment

Every employee receives a laptop on the first day. Laptops are replaced every 36 months.
""",
    "policies/travel-policy.md": """---
title: Travel and Expenses Policy
doc_type: policy
updated: 2025-06-01
---
# Travel and Expenses Policy

## Meals

The meal allowance on business trips is $75 per day, receipts required.

## Hotels

Hotel stays are reimbursed up to $200 per night in most cities.
""",
    # unrelated numbers in the same unit as the PTO limits (hours): never a conflict
    "specs/payments-api.md": """---
title: Payments API
doc_type: spec
updated: 2025-11-20
---
# Payments API

## Rate limits

Each API key may send 100 requests per minute. Idempotency keys expire after 24 hours.
""",
    "policies/compensation-bands.md": """---
title: Compensation Bands
doc_type: policy
acl: [group:hr]
updated: 2026-01-15
---
# Compensation Bands

The salary band for a Senior Engineer in Lisbon is EUR 68,000 to EUR 84,000.
""",
}


PARENTAL = ["what is our parental leave policy?", "How many weeks of maternity leave do we get?",
            "Is there paid paternity leave for new fathers?", "how long is parental leave after having a baby"]
VPN = ["How do I set up the VPN on Linux?", "vpn client for ubuntu installation",
       "Connecting to the corporate VPN from Linux"]
ANSWERED = ["How many PTO hours can I carry over?", "How long until idempotency keys expire?",
            "when are laptops replaced?", "what is the hotel limit per night?"]


def ask(c, question: str, channel: str = "api") -> dict:
    if channel == "openai":
        r = c.post("/v1/chat/completions", json={"model": "lore", "messages": [{"role": "user", "content": question}]})
        assert r.status_code == 200, r.text
        d = r.json()
        return {"trace_id": d["lore"]["trace_id"], "status": d["lore"]["status"], "citations": d["citations"]}
    r = c.post("/v1/ask", json={"question": question}, headers={"X-Lore-Channel": channel})
    assert r.status_code == 200, r.text
    return r.json()


def lore(*args: str) -> subprocess.CompletedProcess:
    """The installed `lore` command line."""
    return subprocess.run([LORE, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


class Clock:
    """The audit log's clock: `at` back-dates what is recorded, None is now."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(timezone.utc)


def clocked_kb(base: Path, corpus: dict[str, str]):
    """`corpus` (relative path -> text) written under `base` and ingested; the settings, a `Services` whose
    audit log records at `clock`'s time, and the clock."""
    from api.deps import Services
    from api.settings import IngestSettings, Settings
    from evals.audit import AuditLog
    from tests.support.live import ingest

    for rel, text in corpus.items():
        (base / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "corpus" / rel).write_text(text)
    settings = Settings(data_dir=base / "kb", ingest=IngestSettings(parse_workers=0))
    assert ingest(settings, [base / "corpus"])["added"] == len(corpus)
    clock = Clock()

    class ClockedServices(Services):
        @property
        def audit(self):
            return self._once("_audit", lambda: AuditLog(Path(self.settings.data_dir) / "audit.db", clock=clock))

    return settings, ClockedServices(settings), clock
