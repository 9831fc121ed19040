"""Retrieval over real components: the real model, embedded Chroma and SQLite (issue 3).

Permissions, filters in every mode, top_k filling, current versions only, deletes, near-duplicate
collapsing, provenance, the reranker stage and the LangChain adapter. The only stand-ins are rerankers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES

from ingest.chroma_store import ChromaChunkStore
from ingest.errors import ConfigError, InvalidInput
from ingest.pipeline import Ingestor, doc_id_for
from ingest.sqlite_store import SqliteStore
from ingest.types import DEFAULT_ACL_MARK
from ingest.access import Access, Scope
from retriever.search import RetrievalConfig, Retriever
from ingest.access import Filters, Principal

MODES = ("hybrid", "dense", "keyword")
HR = Principal("hana", ("hr",))
ENG = Principal("bob", ("eng", "employees"))
ANON = Principal()
UTC = timezone.utc
MTIME = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)  # files without a date in front matter get this mtime
HIT_KEYS = {"rank", "score", "chunk_id", "doc_id", "title", "uri", "doc_type", "version", "updated_at", "section",
            "page_start", "page_end", "start", "end", "text", "stages", "alternatives"}
STAGE_KEYS = {"dense_rank", "dense_score", "keyword_rank", "keyword_score", "rerank_score"}

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


# -- helpers (also used by test_retriever_server.py) ---------------------------------------------

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


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kb(tmp_path_factory, embedder):
    ing, corpus, ids = build_kb(tmp_path_factory.mktemp("retriever-kb"), embedder)
    return ing, corpus, ids


def retriever_for(ing, **kw) -> Retriever:
    return Retriever(ing.store, ing.vectors, ing.embedder, **kw)


# -- permissions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_acl_restricted_document_only_for_its_group(kb, mode):
    ing, _, ids = kb
    comp = ids["compensation-bands.md"]
    comp_chunks = {c.id for c in ing.store.chunks(comp)}
    r = retriever_for(ing)
    q = "What is the salary band for a Senior Engineer in Lisbon?"
    res = r.search(q, HR, top_k=5, mode=mode)
    assert res.hits and res.hits[0].doc.id == comp and "68,000" in res.hits[0].chunk.text
    # not the group: user "hr" is not group "hr"; group names are case-sensitive
    for p in (ANON, ENG, Principal("hr"), Principal("hana", ("HR",)), Principal("hana", ("hr-team",))):
        res = r.search(q, p, top_k=100, mode=mode)
        assert not found_chunks(res) & comp_chunks, p
        assert comp not in found_docs(res) and "68,000" not in json.dumps(res.to_dict())
        assert all(h.doc.acl == () for h in res.hits)  # only unlabelled (default: public) documents
        if mode != "keyword":
            assert res.hits  # the other, public documents are still found


@pytest.mark.parametrize("mode", MODES)
def test_default_acl_applies_to_unlabelled_documents_at_search_time(kb, mode):
    ing, _, ids = kb
    comp, pto = ids["compensation-bands.md"], ids["pto-policy.md"]
    q = "How many hours of unused PTO can I carry over?"
    public = retriever_for(ing)
    assert public.search(q, ANON, top_k=3, mode=mode).hits[0].doc.id == pto

    private = retriever_for(ing, default_acl=("group:employees",))  # same store, no re-ingest
    assert private.search(q, ANON, top_k=50, mode=mode).hits == ()
    assert private.search(q, Principal("eve", ("contractors",)), top_k=50, mode=mode).hits == ()
    res = private.search(q, ENG, top_k=50, mode=mode)
    assert res.hits[0].doc.id == pto and comp not in found_docs(res)
    # HR is not an employee here: it sees its own labelled document and nothing unlabelled
    assert found_docs(private.search(q, HR, top_k=50, mode=mode)) <= {comp}
    assert found_docs(private.search("salary band", HR, top_k=50, mode=mode)) == {comp}

    nobody = retriever_for(ing, default_acl=())
    assert nobody.search(q, ENG, top_k=50, mode=mode).hits == ()
    assert found_docs(nobody.search("salary band", HR, top_k=50, mode=mode)) == {comp}

    by_user = retriever_for(ing, default_acl=("user:bob",))
    assert by_user.search(q, ENG, top_k=3, mode=mode).hits[0].doc.id == pto
    assert by_user.search(q, Principal("bobby", ("bob",)), top_k=50, mode=mode).hits == ()


@pytest.mark.parametrize("mode", MODES)
def test_filters_never_widen_permissions(kb, mode):
    ing, corpus, ids = kb
    comp = ids["compensation-bands.md"]
    r = retriever_for(ing)
    for f in (Filters(doc_ids=(comp,)), Filters(path_prefix=str(corpus / "policies" / "compensation")),
              Filters(metadata=(("title", "Compensation Bands 2026"),)),
              Filters(doc_types=("policy",), updated_after=datetime(2026, 1, 15, tzinfo=UTC),
                      updated_before=datetime(2026, 1, 15, tzinfo=UTC))):
        assert r.search("salary band senior engineer", ENG, f, top_k=20, mode=mode).hits == ()
        assert found_docs(r.search("salary band senior engineer", HR, f, top_k=20, mode=mode)) == {comp}


def test_acl_change_on_reingest_revokes_access(make_ingestor, tmp_path):
    docs = tmp_path / "team"
    write_md(docs / "roadmap.md", "Roadmap", {"Next quarter": "The gondola project ships the cable car booking app."})
    ing = make_ingestor()
    ing.ingest([docs], acl=["group:alpha"])
    r = retriever_for(ing)
    q = "gondola cable car booking"
    alpha, beta = Principal("al", ("alpha",)), Principal("bea", ("beta",))
    for mode in MODES:
        assert r.search(q, alpha, top_k=5, mode=mode).hits
        assert r.search(q, beta, top_k=5, mode=mode).hits == ()
    rep = ing.ingest([docs], acl=["group:beta"])  # same bytes, new ACL: same chunk ids, new metadata
    assert rep.updated == 1
    for mode in MODES:
        assert r.search(q, alpha, top_k=5, mode=mode).hits == ()
        assert r.search(q, beta, top_k=5, mode=mode).hits


# -- filling top_k when the best matches are forbidden ------------------------------------------

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


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
@pytest.mark.parametrize("mode", MODES)
def test_top_k_filled_when_most_top_scoring_passages_are_forbidden(crowded, mode, fusion):
    ing, root, forbidden = crowded
    q = "quarterly Aurora budget forecast"
    # depth 2 -> each search takes max(2, 2 * top_k) = 10 candidates: fewer than the 24 forbidden ones
    r = retriever_for(ing, config=RetrievalConfig(depth=2, fusion=fusion))
    finance = Principal("fin", ("finance",))
    top = r.search(q, finance, top_k=5, mode=mode)
    assert len(top.hits) == 5 and {h.chunk.id for h in top.hits} <= forbidden  # they really score best
    for p in (ANON, ENG):
        res = r.search(q, p, top_k=5, mode=mode)
        assert len(res.hits) == 5
        assert not found_chunks(res) & forbidden and all(h.doc.acl == () for h in res.hits)
        assert_well_formed(res, ing.store)
    # all 7 public notes come back when asked for more than exist, and no more
    res = r.search(q, ANON, top_k=20, mode=mode)
    assert len(found_chunks(res)) == len(PUBLIC_NOTES) and not found_chunks(res) & forbidden
    # filters are inside the searches too: finance asking for public notes gets them, not forecasts
    for f in (Filters(path_prefix=str(root / "public")), Filters(doc_types=("other",))):
        res = r.search(q, finance, f, top_k=5, mode=mode)
        assert len(res.hits) == 5 and not found_chunks(res) & forbidden


@pytest.mark.parametrize("overfetch", [(8, 2000), (1, 10)], ids=["overfetch", "chroma-filter"])
def test_dense_strategies_return_the_same_permitted_top_k(crowded, monkeypatch, overfetch):
    """The dense side over-fetches unfiltered neighbours, or falls back to Chroma's pre-filter when too
    few of them are readable; both give the same permitted candidates (FILTERS.md)."""
    import retriever.search as search

    ing, root, forbidden = crowded
    q = "quarterly Aurora budget forecast"
    r = retriever_for(ing, config=RetrievalConfig(depth=2))
    expected = {p.user_id: [h.chunk.id for h in r.search(q, p, top_k=5, mode="dense").hits] for p in (ANON, ENG)}
    monkeypatch.setattr(search, "OVERFETCH", overfetch[0])
    monkeypatch.setattr(search, "MAX_OVERFETCH", overfetch[1])
    wheres = []
    real_query = ing.vectors.query
    monkeypatch.setattr(ing.vectors, "query", lambda v, k, where=None: wheres.append(where) or real_query(v, k, where))
    for p in (ANON, ENG):
        res = r.search(q, p, top_k=5, mode="dense")
        assert [h.chunk.id for h in res.hits] == expected[p.user_id]
        assert len(res.hits) == 5 and not found_chunks(res) & forbidden
    # 24 forbidden forecasts outrank everything: with a 10-candidate cap the unfiltered over-fetch
    # holds no readable passage, so the search must fall back to the filtered query
    assert (any(w is not None for w in wheres)) == (overfetch[1] == 10)
    assert wheres[0] is None


@pytest.mark.parametrize("mode", MODES)
def test_metadata_type_mismatch_does_not_starve_top_k(make_ingestor, tmp_path, mode):
    """BUG (reported): the keyword pre-filter compares front matter loosely (SQLite: true = 1 = 1.0).

    Documents whose value has another type pass the SQL pre-filter and take the candidate slots,
    then the final (type-strict) check drops them, so top_k is not filled.
    """
    root = tmp_path / "flags"
    for i in range(6):
        write_md(root / f"int-{i}.md", f"Kiln firing schedule {CITIES[i]}", {
            "Schedule": f"The kiln firing schedule for the {CITIES[i]} {ITEMS[i]}: kiln firing starts at dawn."},
            flag=1)
    write_md(root / "bool.md", "Pottery studio rules", {
        "Rules": "Aprons are required in the pottery studio; the kiln schedule is posted by the door."}, flag="true")
    ing = make_ingestor()
    assert ing.ingest([root]).added == 7
    want = doc_id_for(root / "bool.md")
    r = retriever_for(ing, config=RetrievalConfig(depth=1))
    q = "kiln firing schedule"
    res = r.search(q, ANON, Filters(metadata=(("flag", True),)), top_k=1, mode=mode)
    assert [h.doc.id for h in res.hits] == [want]
    res = r.search(q, ANON, Filters(metadata=(("flag", 1),)), top_k=6, mode=mode)
    assert len(res.hits) == 6 and want not in found_docs(res)


# -- filters in every mode ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reachable(kb):
    """Documents the broad query reaches in each mode with no filter (keyword needs a term match)."""
    ing, _, ids = kb
    r = retriever_for(ing)
    out = {m: found_docs(r.search(BROAD_QUERY, HR, top_k=500, mode=m)) for m in MODES}
    assert out["dense"] == set(ids.values())
    assert len(out["keyword"]) >= 9
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,make,expected", FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filter(kb, reachable, mode, name, make, expected):
    ing, corpus, ids = kb
    f = make(corpus, ids)
    want = {ids[n] for n in expected} & reachable[mode]
    res = retriever_for(ing).search(BROAD_QUERY, HR, f, top_k=500, mode=mode)
    assert found_docs(res) == want
    if expected and mode == "dense":
        assert want  # the positive cases really return something
    assert_well_formed(res, ing.store)
    # the small-k case is filled from the matching documents only
    small = retriever_for(ing, config=RetrievalConfig(depth=1)).search(BROAD_QUERY, HR, f, top_k=1, mode=mode)
    assert len(small.hits) == min(1, len(want)) and found_docs(small) <= want


@pytest.mark.parametrize("make,field", [
    (lambda: Filters(doc_types=("memo",)), "doc type"),
    (lambda: Filters(doc_types="policy"), "doc type"),  # a bare string is not a list of types
    (lambda: Filters(metadata=(("owner-name", "x"),)), "metadata filter key"),
    (lambda: Filters(metadata=(("", "x"),)), "metadata filter key"),
    (lambda: Filters(metadata=(("k" * 41, "x"),)), "metadata filter key"),
    (lambda: Filters(metadata=(("owner", ["a", "b"]),)), "metadata filter 'owner'"),
    (lambda: Filters(metadata=(("owner", None),)), "metadata filter 'owner'"),
    (lambda: Filters(updated_after=datetime(2026, 2, 1), updated_before=datetime(2026, 1, 1)), "updated_after"),
])
def test_bad_filters_raise_invalid_input_naming_the_field(make, field):
    with pytest.raises(InvalidInput, match=field):
        make()


@pytest.mark.parametrize("query", ["", "   ", "\n\t", None])
def test_empty_query_is_refused(kb, query):
    with pytest.raises(InvalidInput, match="query is empty"):
        retriever_for(kb[0]).search(query, ANON)


@pytest.mark.parametrize("top_k", [0, -1])
def test_top_k_below_one_is_refused(kb, top_k):
    with pytest.raises(InvalidInput, match="top_k"):
        retriever_for(kb[0]).search("pto", ANON, top_k=top_k)


def test_unknown_mode_and_bad_config_are_refused(kb):
    with pytest.raises(InvalidInput, match="mode"):
        retriever_for(kb[0]).search("pto", ANON, mode="fuzzy")
    with pytest.raises(ConfigError, match="dense_weight"):
        RetrievalConfig(dense_weight=1.5)
    with pytest.raises(ConfigError, match="depth"):
        RetrievalConfig(depth=0)
    with pytest.raises(ConfigError, match="dedup_threshold"):
        RetrievalConfig(dedup_threshold=0.0)


def test_query_without_keyword_terms_still_searches_dense(kb):
    ing, _, ids = kb
    r = retriever_for(ing)
    assert r.search("?!", ANON, top_k=3, mode="keyword").hits == ()
    res = r.search("?!", ANON, top_k=3, mode="hybrid")
    assert len(res.hits) == 3 and ids["compensation-bands.md"] not in found_docs(res)


# -- provenance and per-stage ranks ---------------------------------------------------------------

def test_hits_carry_full_provenance_and_stage_ranks(kb, embedder):
    ing, corpus, ids = kb
    r = retriever_for(ing)
    q = "How many requests per minute can an API key send?"
    res = r.search(q, HR, top_k=8)
    top = res.hits[0]
    assert top.doc.id == ids["payments-api.md"] and "600 requests per minute" in top.chunk.text
    assert top.chunk.section[-1] == "Rate limits"
    d = json.loads(json.dumps(res.to_dict()))  # serializable as is
    assert d["query"] == q and {"embed", "dense", "keyword", "fuse", "total"} <= set(d["timings_ms"])
    depth = r.config.depth
    access = Access.for_principal(HR, r.default_acl)
    dense = ing.vectors.query(embedder.embed_query(q), depth, Scope(access))
    keyword = ing.store.keyword_search(q, depth, scope=Scope(access))
    d_pos = {cid: (i + 1, s) for i, (cid, s) in enumerate(dense)}
    k_pos = {cid: (i + 1, s) for i, (cid, s) in enumerate(keyword)}
    scores = [h["score"] for h in d["hits"]]
    assert scores == sorted(scores, reverse=True)
    both = 0
    for i, (h, hd) in enumerate(zip(res.hits, d["hits"])):
        assert set(hd) == HIT_KEYS and set(hd["stages"]) == STAGE_KEYS
        doc = ing.store.get_document(hd["doc_id"])
        path = Path(hd["uri"])
        assert hd["rank"] == i + 1 and hd["chunk_id"] == h.chunk.id and hd["chunk_id"].startswith(hd["doc_id"])
        assert path.is_file() and hd["version"] == hashlib.sha256(path.read_bytes()).hexdigest() == doc.version
        assert (hd["title"], hd["doc_type"], hd["updated_at"]) == (doc.title, doc.doc_type, doc.updated_at)
        assert ing.store.document_text(doc.id)[hd["start"]:hd["end"]] == hd["text"] != ""
        assert hd["section"] and hd["section"] == list(h.chunk.section)
        dr, ds = d_pos.get(h.chunk.id, (None, None))
        kr, ks = k_pos.get(h.chunk.id, (None, None))
        assert (h.dense_rank, h.keyword_rank) == (dr, kr) and (dr or kr)
        assert h.dense_score == ds and h.keyword_score == ks and h.rerank_score is None
        both += dr is not None and kr is not None
    assert both >= 1
    assert res.hits[0].dense_rank == 1 and res.hits[0].keyword_rank == 1


def test_stage_ranks_per_mode_and_page_provenance(kb):
    ing, _, ids = kb
    r = retriever_for(ing)
    q = "Which days can staff work from home under the remote work policy?"
    dense = r.search(q, ANON, top_k=6, mode="dense")
    assert all(h.keyword_rank is None and h.keyword_score is None for h in dense.hits)
    assert [h.dense_rank for h in dense.hits] == sorted(h.dense_rank for h in dense.hits)
    keyword = r.search(q, ANON, top_k=6, mode="keyword")
    assert all(h.dense_rank is None and h.dense_score is None for h in keyword.hits)
    assert [h.keyword_rank for h in keyword.hits] == sorted(h.keyword_rank for h in keyword.hits)
    pdf = [h for h in r.search(q, ANON, top_k=10).hits if h.doc.id == ids["remote-work-policy.pdf"]]
    assert pdf and all(h.chunk.page_start >= 1 and h.chunk.page_end >= h.chunk.page_start for h in pdf)
    assert pdf[0].to_dict()["page_start"] == pdf[0].chunk.page_start


# -- versions and deletes -------------------------------------------------------------------------

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


def test_only_the_newest_version_is_returned(office):
    ing, root = office
    wifi = root / "wifi.md"
    doc_id = doc_id_for(wifi)
    r = retriever_for(ing)
    before = r.search(WIFI_Q, ANON, top_k=3)
    assert before.hits[0].doc.id == doc_id and "zebra" in before.hits[0].chunk.text
    old_ids = {c.id for c in ing.store.chunks(doc_id)}
    old_vectors = ing.vectors.get(sorted(old_ids))
    write_md(wifi, "Office Network Guide", {**WIFI_V1, "Guest wifi": WIFI_V1["Guest wifi"].replace("zebra", "okapi")})
    new_version = hashlib.sha256(wifi.read_bytes()).hexdigest()
    assert ing.ingest([root]).updated == 1
    new_ids = {c.id for c in ing.store.chunks(doc_id)}
    assert not old_ids & new_ids

    access = Access.for_principal(ANON, r.default_acl)
    n_keyword = len(ing.store.keyword_search(WIFI_Q, 100, scope=Scope(access)))
    n_current = {"hybrid": len(ing.store.chunk_ids()), "dense": len(ing.store.chunk_ids()), "keyword": n_keyword}
    assert n_keyword >= 1

    def check():
        for mode in MODES:
            for k in (1, 3, 50):
                res = r.search(WIFI_Q, ANON, top_k=k, mode=mode)
                assert not found_chunks(res) & old_ids and len(res.hits) == min(k, n_current[mode])
                assert all(h.doc.version == h.chunk.version == new_version for h in res.hits if h.doc.id == doc_id)
                assert "zebra" not in json.dumps(res.to_dict()["hits"])
                assert_well_formed(res, ing.store)
            assert r.search("zebra", ANON, top_k=5, mode="keyword").hits == ()
            assert "okapi" in r.search("okapi poster", ANON, top_k=1, mode=mode).hits[0].chunk.text

    check()
    # stale vectors of superseded versions left in Chroma (as during an ingest or after a crash):
    # the old chunk ids with their own vectors, and a fake old chunk that matches the query exactly
    doc = ing.store.get_document(doc_id)
    fake = f"{doc_id}#{'0' * 12}-0000"
    ids = sorted(old_vectors) + [fake]
    vecs = np.stack([old_vectors[i][0] for i in sorted(old_vectors)] + [ing.embedder.embed_query(WIFI_Q)])
    old_version = next(iter(old_vectors.values()))[1]["version"]
    metas = [stale_meta(doc, old_version, n) for n in range(len(old_vectors))] + [stale_meta(doc)]
    ing.vectors.upsert(ids, vecs, metas)
    assert set(ids) <= ing.vectors.ids()
    assert ing.vectors.query(ing.embedder.embed_query(WIFI_Q), 1)[0][0] == fake  # it would rank first
    check()
    assert fake not in found_chunks(r.search(WIFI_Q, ANON, top_k=50, mode="dense"))


def test_stale_vectors_do_not_starve_top_k(office):
    """BUG (reported): vectors with no registry row take dense candidate slots, then are dropped.

    After a crash mid-ingest (or during a large re-ingest) Chroma can hold many vectors the registry
    does not reference until the next ingest reconciles. They are dropped after the dense search, so
    a dense search can return fewer than top_k hits although enough current, permitted passages exist
    (FILTERS.md: "top_k is filled whenever that many exist").
    """
    ing, root = office
    doc_id = doc_id_for(root / "wifi.md")
    doc = ing.store.get_document(doc_id)
    q = ing.embedder.embed_query(WIFI_Q)
    rng = np.random.default_rng(0)
    n = 120  # more than the default depth (100)
    vecs = q[None, :] + rng.normal(0, 0.01, (n, q.shape[0])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ing.vectors.upsert([f"{doc_id}#{'f' * 12}-{i:04d}" for i in range(n)], vecs, [stale_meta(doc)] * n)
    res = retriever_for(ing).search(WIFI_Q, ANON, top_k=3, mode="dense")
    assert len(res.hits) == 3 and all(h.doc.id == doc_id for h in res.hits)


def test_deleted_documents_never_come_back(office):
    ing, root = office
    r = retriever_for(ing)
    parking = doc_id_for(root / "parking.md")
    wifi = doc_id_for(root / "wifi.md")
    q_park = "parking garage gate intercom visitors"
    park_ids = {c.id for c in ing.store.chunks(parking)}
    park_vectors = ing.vectors.get(sorted(park_ids))
    assert r.search(q_park, ANON, top_k=1).hits[0].doc.id == parking
    (root / "parking.md").unlink()
    assert ing.ingest([root]).deleted == 1
    for mode in MODES:
        res = r.search(q_park, ANON, top_k=50, mode=mode)
        assert parking not in found_docs(res) and not found_chunks(res) & park_ids
    assert r.search(q_park, ANON, top_k=50, mode="keyword").hits == ()

    wifi_ids = {c.id for c in ing.store.chunks(wifi)}
    wifi_vectors = ing.vectors.get(sorted(wifi_ids))
    ing.remove(wifi)
    for mode in MODES:
        assert r.search(WIFI_Q, ANON, top_k=50, mode=mode).hits == ()
    # their vectors left behind in Chroma (an interrupted delete) still never surface
    for got in (park_vectors, wifi_vectors):
        ids = sorted(got)
        ing.vectors.upsert(ids, np.stack([got[i][0] for i in ids]), [got[i][1] for i in ids])
    for mode in MODES:
        for q in (q_park, WIFI_Q):
            assert r.search(q, ANON, top_k=50, mode=mode).hits == ()


# -- near-duplicates ------------------------------------------------------------------------------

LUGGAGE = ("If your luggage is lost on a business trip, report it to the airline desk before leaving the "
           "airport, keep the property irregularity report, and submit it with your receipts for essential "
           "toiletries and clothing, which the company reimburses up to two hundred euros per trip within "
           "thirty days of the loss being confirmed by the carrier in writing.")


@pytest.fixture(scope="module")
def dupes(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("dupes")
    for name, title in (("a", "Travel Handbook"), ("b", "Sales Travel Guide")):
        write_md(root / "public" / f"{name}.md", title, {"Overview": f"Intro to the {title.lower()}.",
                                                         "Lost luggage": LUGGAGE})
    near = LUGGAGE.replace("two hundred", "three hundred")  # one word changed: Jaccard ~0.9
    write_md(root / "public" / "c.md", "Field Engineer Travel", {"Overview": "For field engineers.",
                                                                "Lost luggage": near})
    write_md(root / "public" / "d.md", "Luggage Allowances", {"Allowance": (
        "Checked luggage allowance on business trips is one bag of twenty-three kilos; extra bags need the "
        "approval of your manager before booking.")})
    write_md(root / "secret" / "e.md", "Executive Travel", {"Overview": "Board members only.",
                                                            "Lost luggage": LUGGAGE})
    ing = new_ingestor(root, embedder)
    ing.ingest([root / "public"])
    ing.ingest([root / "secret"], acl=["group:board"])
    lug = {n: next(c.id for c in ing.store.chunks(doc_id_for(root / sub / f"{n}.md")) if "airline desk" in c.text)
           for sub, n in (("public", "a"), ("public", "b"), ("public", "c"), ("secret", "e"))}
    return ing, root, lug


@pytest.mark.parametrize("mode", MODES)
def test_near_duplicates_collapse_with_alternatives(dupes, mode):
    ing, root, lug = dupes
    r = retriever_for(ing)
    q = "lost luggage airline desk property irregularity report reimbursed"
    res = r.search(q, ANON, top_k=10, mode=mode)
    group = [h for h in res.hits if h.chunk.id in {lug["a"], lug["b"], lug["c"]}]
    assert len(group) == 1  # one hit for the same paragraph in three documents
    top = group[0]
    others = {lug["a"], lug["b"], lug["c"]} - {top.chunk.id}
    assert {a.chunk_id for a in top.alternatives} == others
    for a in top.alternatives:
        doc = ing.store.get_document(a.doc_id)
        assert (a.title, a.uri) == (doc.title, doc.uri) and a.chunk_id.startswith(a.doc_id)
    assert {a["chunk_id"] for a in top.to_dict()["alternatives"]} == others
    # the forbidden copy is neither a hit nor an alternative, nor mentioned anywhere
    assert lug["e"] not in json.dumps(res.to_dict()) and "Executive Travel" not in json.dumps(res.to_dict())
    # a related but different passage is not collapsed
    allowance = doc_id_for(root / "public" / "d.md")
    assert any(h.doc.id == allowance for h in res.hits)
    board = r.search(q, Principal("ceo", ("board",)), top_k=10, mode=mode)
    grp = [h for h in board.hits if h.chunk.id in lug.values()]
    assert len(grp) == 1 and {grp[0].chunk.id, *(a.chunk_id for a in grp[0].alternatives)} == set(lug.values())
    # the threshold is configurable: 1.0 keeps the near (not exact) copy apart
    strict = retriever_for(ing, config=RetrievalConfig(dedup_threshold=1.0)).search(q, ANON, top_k=10, mode=mode)
    ids = {h.chunk.id for h in strict.hits}
    assert lug["c"] in ids and len(ids & {lug["a"], lug["b"]}) == 1


# -- reranker -------------------------------------------------------------------------------------

class RecordingReranker:
    """Deterministic stand-in: scores a passage by its number of long words (8+ characters)."""

    model_id = "test:long-words"

    def __init__(self):
        self.seen: list[str] = []

    def score(self, query, passages):
        self.seen.extend(passages)
        return [float(sum(len(w) >= 8 for w in p.split())) + 1.0 / (1 + len(p)) for p in passages]


class ReversingReranker:
    model_id = "test:reverse"

    def score(self, query, passages):
        return [float(i) for i in range(len(passages))]  # the last fused passage scores highest


def test_stand_in_reranker_orders_hits_and_sees_only_permitted_passages(kb):
    ing, _, ids = kb
    q = "salary band senior engineer lisbon review"
    base = retriever_for(ing).search(q, ENG, top_k=30)
    rr = RecordingReranker()
    res = retriever_for(ing, reranker=rr).search(q, ENG, top_k=30)
    assert {h.chunk.id for h in res.hits} == {h.chunk.id for h in base.hits}
    want = sorted(base.hits, key=lambda h: -rr.score(q, [f"{h.doc.title}\n{h.chunk.text}"])[0])
    assert [h.chunk.id for h in res.hits] == [h.chunk.id for h in want]
    assert all(h.rerank_score == h.score and h.to_dict()["stages"]["rerank_score"] is not None for h in res.hits)
    assert all(h.rerank_score >= n.rerank_score for h, n in zip(res.hits, res.hits[1:]))
    assert [h.rank for h in res.hits] == list(range(1, len(res.hits) + 1))
    comp_text = {c.text for c in ing.store.chunks(ids["compensation-bands.md"])}
    assert rr.seen and not any(t in p for p in rr.seen for t in comp_text)


def test_rerank_depth_limits_the_reordered_head(kb):
    ing, _, _ = kb
    q = "incident latency outage postmortem"
    base = retriever_for(ing).search(q, ANON, top_k=10)
    res = retriever_for(ing, reranker=ReversingReranker(), config=RetrievalConfig(rerank_depth=4)).search(
        q, ANON, top_k=10)
    b = [h.chunk.id for h in base.hits]
    assert [h.chunk.id for h in res.hits] == b[:4][::-1] + b[4:]
    assert all(h.rerank_score is not None for h in res.hits[:4])
    assert all(h.rerank_score is None for h in res.hits[4:])
    top1 = retriever_for(ing, reranker=ReversingReranker(), config=RetrievalConfig(rerank_depth=4)).search(
        q, ANON, top_k=1)
    assert [h.chunk.id for h in top1.hits] == [b[3]]  # reranks before cutting to top_k


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A 1-layer BERT cross-encoder with fixed random weights and MiniLM's tokenizer, built offline."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from ingest.embedders import resolve_model

    src = Path(resolve_model("all-MiniLM-L6-v2"))
    out = tmp_path_factory.mktemp("tiny-ce")
    torch.manual_seed(1234)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(cfg).eval().save_pretrained(out)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / f, out / f)
    return out


def test_cross_encoder_reranker_orders_by_its_scores(kb, tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    from retriever.rerank import CrossEncoderReranker

    ing, _, _ = kb
    q = "How many hours of PTO can be carried over?"
    base = retriever_for(ing).search(q, ANON, top_k=30)
    reranker = CrossEncoderReranker(str(tiny_cross_encoder), batch_size=4)
    assert reranker.model_id == "cross-encoder:" + tiny_cross_encoder.name
    res = retriever_for(ing, reranker=reranker, config=RetrievalConfig(rerank_depth=30)).search(q, ANON, top_k=8)
    ce = CrossEncoder(str(tiny_cross_encoder), device="cpu")  # an independent load of the same model
    cands = base.hits[:30]
    expect = ce.predict([(q, f"{h.doc.title}\n{h.chunk.text}") for h in cands], show_progress_bar=False)
    assert len(set(np.round(expect, 5))) == len(cands)  # the stand-in really discriminates
    order = [cands[i].chunk.id for i in np.argsort(-np.asarray(expect), kind="stable")[:8]]
    assert [h.chunk.id for h in res.hits] == order
    by_id = {h.chunk.id: float(s) for h, s in zip(cands, expect)}
    for h in res.hits:
        assert h.rerank_score == pytest.approx(by_id[h.chunk.id], abs=1e-5) and h.score == h.rerank_score
    assert reranker.score(q, []) == []


def test_cross_encoder_reranker_config_errors(tmp_path):
    from retriever.rerank import CrossEncoderReranker

    with pytest.raises(ConfigError, match="RERANKER"):
        CrossEncoderReranker("  ")
    with pytest.raises(ConfigError, match="batch_size"):
        CrossEncoderReranker("x", batch_size=0)
    with pytest.raises(ConfigError, match="cannot load reranker"):
        CrossEncoderReranker(str(tmp_path / "no-such-model")).score("q", ["p"])


# -- LangChain adapter ----------------------------------------------------------------------------

def test_langchain_adapter_returns_documents_with_provenance_and_permissions(kb):
    from retriever.langchain import LoreRetriever

    ing, _, ids = kb
    r = retriever_for(ing)
    comp = ids["compensation-bands.md"]
    q = "salary band for a Staff Engineer in Lisbon"
    docs = LoreRetriever(retriever=r, principal=HR, k=4).invoke(q)
    assert 0 < len(docs) <= 4 and docs[0].metadata["doc_id"] == comp
    for i, d in enumerate(docs):
        assert set(d.metadata) == HIT_KEYS - {"text"} and d.metadata["rank"] == i + 1
        assert d.id == d.metadata["chunk_id"] and d.metadata["uri"] and d.metadata["version"]
        m = d.metadata
        assert ing.store.document_text(m["doc_id"])[m["start"]:m["end"]] == d.page_content
    for p in (ENG, ANON):
        got = LoreRetriever(retriever=r, principal=p, k=20).invoke(q)
        assert got and all(d.metadata["doc_id"] != comp for d in got)
        assert not any("104,000" in d.page_content for d in got)
    specs = LoreRetriever(retriever=r, principal=ENG, filters=Filters(doc_types=("spec",)), k=20).invoke(q)
    assert specs and {d.metadata["doc_type"] for d in specs} == {"spec"}
    with pytest.raises(InvalidInput):
        LoreRetriever(retriever=r, principal=ENG).invoke("   ")
