"""The retriever tests' knowledge bases (the sample corpus, a crowded one, an office with versions) and helpers."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ingest.chroma_store import ChromaChunkStore
from ingest.pipeline import Ingestor
from ingest.sqlite_store import SqliteStore
from ingest.types import DEFAULT_ACL_MARK
from ingest.access import Filters, Principal
from tests.support import SAMPLES

MODES = ("hybrid", "dense", "keyword")
HR = Principal("hana", ("hr",))
ENG = Principal("bob", ("eng", "employees"))
ANON = Principal()
UTC = timezone.utc
MTIME = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)  # files without a date in front matter get this mtime
LEDGER = """---
title: Ledger Service Design
doc_type: spec
updated: 2026-02-01T23:30:00-05:00
owner: payments
tier: 1
pci: true
cost: 2.5
---
# Ledger Service Design

The ledger service records every charge, refund and payout from the Payments API as balanced
double-entry journal lines, so finance can reconcile merchant balances to the cent.

## Reconciliation

A nightly job compares ledger totals with the payment processor's settlement files and opens an
incident when the difference exceeds one euro.
"""


def write_md(path: Path, title: str, sections: dict[str, str], **front) -> Path:
    """A markdown file with front matter, a title and one `##` section per entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fm = "".join(f"{k}: {v}\n" for k, v in {"title": title, **front}.items())
    body = "".join(f"## {h}\n\n{t}\n\n" for h, t in sections.items())
    path.write_text(f"---\n{fm}---\n# {title}\n\n{body}")
    return path


def found_chunks(result) -> set[str]:
    """Every chunk id a result exposes: hits and their collapsed alternatives."""
    return {h.chunk.id for h in result.hits} | {a.chunk_id for h in result.hits for a in h.alternatives}


def found_docs(result) -> set[str]:
    return {h.doc.id for h in result.hits} | {a.doc_id for h in result.hits for a in h.alternatives}


def assert_well_formed(result, store: SqliteStore) -> None:
    """Ranks 1..n, every hit current, its text exactly its span of the stored document."""
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    for h in result.hits:
        doc = store.get_document(h.doc.id)
        assert doc is not None and doc.version == h.doc.version == h.chunk.version
        assert store.document_text(doc.id)[h.chunk.start:h.chunk.end] == h.chunk.text


def stale_meta(doc, version: str = "0" * 64, ordinal: int = 0) -> dict:
    """Chroma metadata of a vector that looks permitted and matching, as ingest would have written it."""
    return {"doc_id": doc.id, "doc_type": doc.doc_type, "version": version, "uri": doc.uri,
            "updated_at": int(datetime.fromisoformat(doc.updated_at).timestamp()),
            "acl": list(doc.acl) or [DEFAULT_ACL_MARK], "ordinal": ordinal}


def build_kb(root: Path, embedder, vectors: ChromaChunkStore | None = None, md_only: bool = False):
    """The sample corpus plus a spec with typed front matter, with fixed mtimes; ingested once."""
    corpus = root / "corpus"
    if md_only:
        for p in SAMPLES.rglob("*.md"):
            dst = corpus / p.relative_to(SAMPLES)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dst)
    else:
        shutil.copytree(SAMPLES, corpus)
    (corpus / "specs" / "ledger-service.md").write_text(LEDGER)
    for p in corpus.rglob("*"):
        if p.is_file():
            os.utime(p, (MTIME.timestamp(), MTIME.timestamp()))
    store = SqliteStore(root / "kb" / "lore.db")
    vectors = vectors or ChromaChunkStore(embedder.model_id, path=root / "kb" / "chroma")
    ing = Ingestor(store, vectors, embedder, parse_workers=0)
    rep = ing.ingest([corpus])
    assert rep.failed == []
    ids = {os.path.basename(d.uri): d.id for d in store.documents()}
    return ing, corpus, ids


# Filter cases: (name, Filters from (corpus, ids), expected file names). The principal is HR (reads all).
FILTER_CASES = [
    ("type-spec", lambda c, i: Filters(doc_types=("spec",)),
     {"payments-api.md", "data-retention.txt", "ledger-service.md"}),
    ("type-policy-or-incident", lambda c, i: Filters(doc_types=("policy", "incident")),
     {"pto-policy.md", "compensation-bands.md", "expense-policy.html", "information-security-policy.docx",
      "remote-work-policy.pdf", "2025-03-14-checkout-outage.md", "2025-06-02-eu-latency.eml",
      "q3-2025-incident-review.pptx"}),
    ("doc-ids", lambda c, i: Filters(doc_ids=(i["pto-policy.md"], i["payments-api.md"])),
     {"pto-policy.md", "payments-api.md"}),
    ("doc-id-unknown", lambda c, i: Filters(doc_ids=("no-such-doc-00000000",)), set()),
    ("path-folder", lambda c, i: Filters(path_prefix=str(c / "policies") + os.sep),
     {"pto-policy.md", "compensation-bands.md", "expense-policy.html", "information-security-policy.docx",
      "remote-work-policy.pdf"}),
    ("path-partial-name", lambda c, i: Filters(path_prefix=str(c / "specs" / "pay")), {"payments-api.md"}),
    ("path-other-case", lambda c, i: Filters(path_prefix=str(c / "POLICIES") + os.sep), set()),
    ("path-other-case-file", lambda c, i: Filters(path_prefix=str(c / "specs" / "Payments")), set()),
    ("path-no-like-wildcards", lambda c, i: Filters(path_prefix=str(c / "p_licies")), set()),
    ("path-no-percent", lambda c, i: Filters(path_prefix=str(c) + os.sep + "%"), set()),
    ("path-and-ids", lambda c, i: Filters(path_prefix=str(c / "policies") + os.sep,
                                          doc_ids=(i["pto-policy.md"], i["payments-api.md"])), {"pto-policy.md"}),
    ("type-and-path-disjoint", lambda c, i: Filters(doc_types=("policy",), path_prefix=str(c / "specs")), set()),
    ("updated-window", lambda c, i: Filters(updated_after=datetime(2026, 1, 1, tzinfo=UTC),
                                            updated_before=datetime(2026, 4, 1, tzinfo=UTC)),
     {"compensation-bands.md", "pto-policy.md", "ledger-service.md"}),
    # naive = UTC; the ledger's 2026-02-01T23:30-05:00 is 2026-02-02T04:30Z, after this bound
    ("updated-after-naive-tz", lambda c, i: Filters(updated_after=datetime(2026, 2, 2)),
     {"ledger-service.md", "pto-policy.md", "payments-api.md"}),
    ("updated-before", lambda c, i: Filters(updated_before=datetime(2025, 12, 31, tzinfo=UTC)),
     {"2025-03-14-checkout-outage.md", "2025-06-02-eu-latency.eml", "q3-2025-incident-review.pptx",
      "expense-policy.html", "information-security-policy.docx", "remote-work-policy.pdf", "data-retention.txt"}),
    ("updated-bounds-inclusive", lambda c, i: Filters(updated_after=datetime(2026, 3, 1, tzinfo=UTC),
                                                      updated_before=datetime(2026, 3, 1, tzinfo=UTC)),
     {"pto-policy.md"}),
    ("updated-in-other-zone", lambda c, i: Filters(
        updated_after=datetime.fromisoformat("2026-02-01T23:00:00-05:00"),
        updated_before=datetime.fromisoformat("2026-02-02T00:00:00-05:00")), {"ledger-service.md"}),
    ("meta-str", lambda c, i: Filters(metadata=(("owner", "People Operations"),)), {"pto-policy.md"}),
    ("meta-str-and-int", lambda c, i: Filters(metadata=(("owner", "payments"), ("tier", 1))), {"ledger-service.md"}),
    ("meta-int", lambda c, i: Filters(metadata=(("tier", 1),)), {"ledger-service.md"}),
    ("meta-int-as-str", lambda c, i: Filters(metadata=(("tier", "1"),)), set()),
    ("meta-int-as-bool", lambda c, i: Filters(metadata=(("tier", True),)), set()),
    ("meta-int-as-float", lambda c, i: Filters(metadata=(("tier", 1.0),)), set()),
    ("meta-bool", lambda c, i: Filters(metadata=(("pci", True),)), {"ledger-service.md"}),
    ("meta-bool-as-int", lambda c, i: Filters(metadata=(("pci", 1),)), set()),
    ("meta-bool-as-str", lambda c, i: Filters(metadata=(("pci", "true"),)), set()),
    ("meta-float", lambda c, i: Filters(metadata=(("cost", 2.5),)), {"ledger-service.md"}),
    ("meta-date-as-string", lambda c, i: Filters(metadata=(("updated", "2026-03-01"),)), {"pto-policy.md"}),
    ("meta-case-sensitive-value", lambda c, i: Filters(metadata=(("owner", "people operations"),)), set()),
    ("meta-list-value-not-scalar", lambda c, i: Filters(metadata=(("acl", "group:hr"),)), set()),
    ("meta-unknown-key", lambda c, i: Filters(metadata=(("colour", "blue"),)), set()),
    ("meta-and-type-disjoint", lambda c, i: Filters(doc_types=("policy",), metadata=(("tier", 1),)), set()),
]
BROAD_QUERY = "policy payments incident data security ledger employees engineer review"


@pytest.fixture(scope="module")
def kb(tmp_path_factory, embedder):
    ing, corpus, ids = build_kb(tmp_path_factory.mktemp("retriever-kb"), embedder)
    return ing, corpus, ids


CITIES = ("Lisbon Porto Madrid Seville Lyon Nantes Turin Genoa Ghent Bruges Basel Bern Graz Linz Krakow Gdansk "
          "Tartu Riga Vilnius Tallinn Oslo Bergen Aarhus Malmo").split()
ITEMS = ("turbines ferries tramways bridges tunnels canals harbours depots kilns foundries mills quarries "
         "orchards vineyards dairies bakeries wharves granaries lighthouses aqueducts observatories "
         "greenhouses stadiums libraries").split()
PUBLIC_NOTES = [
    "The cafeteria serves lentil soup on Mondays; ask the office manager about the snack budget.",
    "Bicycle parking is in the basement garage and the budget for new racks was approved last spring.",
    "Our book club meets on Thursdays in the north lounge; the budget covers two novels per month.",
    "Printer toner is ordered by reception, which keeps a small budget for office supplies.",
    "The summer picnic takes place by the river, with a modest budget for games and lemonade.",
    "Plants on the third floor are watered on Fridays; the gardening budget pays for new pots.",
    "Visitors sign in at the front desk and receive a badge, paid from the security budget.",
]


def new_ingestor(root: Path, embedder) -> Ingestor:
    vectors = ChromaChunkStore(embedder.model_id, path=root / "kb" / "chroma")
    return Ingestor(SqliteStore(root / "kb" / "lore.db"), vectors, embedder, parse_workers=0)


@pytest.fixture(scope="module")
def crowded(tmp_path_factory, embedder):
    """24 finance-only documents that match the query far better than 7 public ones (read-only)."""
    root = tmp_path_factory.mktemp("crowded")
    for i, (city, item) in enumerate(zip(CITIES, ITEMS)):
        write_md(root / "finance" / f"forecast-{i:02d}.md", f"Aurora budget forecast {city}", {
            "Forecast": f"The quarterly Aurora budget forecast for {city} {item}: the Aurora budget "
                        f"forecast lists quarterly {item} spending in {city} against the forecast."})
    for i, text in enumerate(PUBLIC_NOTES):
        write_md(root / "public" / f"note-{i}.md", f"Office note {i}", {"Note": text})
    ing = new_ingestor(root, embedder)
    assert ing.ingest([root / "finance"], doc_type="policy", acl=["group:finance"]).added == 24
    assert ing.ingest([root / "public"], doc_type="other").added == len(PUBLIC_NOTES)
    forbidden = {c for d in ing.store.documents() if d.acl for c in (x.id for x in ing.store.chunks(d.id))}
    return ing, root, forbidden


WIFI_V1 = {
    "Guest wifi": "The guest wifi passphrase rotates every Monday and is printed on the zebra poster at reception.",
    "Printers": "Printers on every floor accept badge release; colour printing needs a cost centre code.",
    "VPN": "The VPN client connects automatically on company laptops outside the office network.",
    "Meeting rooms": "Meeting rooms are booked in the calendar; screens pair with the room's HDMI dongle.",
}
PARKING = {"Garage": "The parking garage gate opens with the badge; visitors press the intercom marked P2."}
WIFI_Q = "where is the guest wifi passphrase printed zebra poster"


@pytest.fixture()
def office(make_ingestor, tmp_path):
    root = tmp_path / "office"
    write_md(root / "wifi.md", "Office Network Guide", WIFI_V1)
    write_md(root / "parking.md", "Parking Guide", PARKING)
    ing = make_ingestor()
    assert ing.ingest([root]).added == 2
    return ing, root
