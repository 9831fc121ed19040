"""Retriever tests run with both keyword backends: retriever/test_keyword_index.py patches `retriever_for`."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import numpy as np
import pytest

from ingest.pipeline import doc_id_for
from ingest.access import Access, Scope
from retriever.search import RetrievalConfig, Retriever
from ingest.access import Filters, Principal
from tests.support.retriever_kb import (  # noqa: F401
    ANON,
    BROAD_QUERY,
    CITIES,
    ENG,
    FILTER_CASES,
    HR,
    ITEMS,
    MODES,
    PUBLIC_NOTES,
    UTC,
    WIFI_Q,
    WIFI_V1,
    assert_well_formed,
    crowded,
    found_chunks,
    found_docs,
    kb,
    office,
    stale_meta,
    write_md,
)


def retriever_for(ing, **kw) -> Retriever:
    return Retriever(ing.store, ing.vectors, ing.embedder, **kw)


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
