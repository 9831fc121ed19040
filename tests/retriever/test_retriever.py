"""Retrieval over real components: the real model, embedded Chroma and SQLite (issue 3).

Permissions, filters in every mode, top_k filling, current versions only, deletes, near-duplicate
collapsing, provenance, the reranker stage and the LangChain adapter. The only stand-ins are rerankers.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from ingest.errors import ConfigError, InvalidInput
from ingest.pipeline import doc_id_for
from ingest.access import Access, Scope
from retriever.search import RetrievalConfig
from ingest.access import Filters, Principal
from tests.support.models import tiny_cross_encoder as build_tiny_cross_encoder
from tests.support.retriever_kb import (  # noqa: F401
    ANON, ENG, HR, MODES, WIFI_Q, crowded, found_docs, kb, new_ingestor, office, stale_meta, write_md,
)
# the tests shared with retriever/test_keyword_index.py (run again there with the in-memory index)
from tests.support.retriever_suite import (  # noqa: F401
    reachable,
    retriever_for,
    test_acl_change_on_reingest_revokes_access,
    test_acl_restricted_document_only_for_its_group,
    test_default_acl_applies_to_unlabelled_documents_at_search_time,
    test_deleted_documents_never_come_back,
    test_dense_strategies_return_the_same_permitted_top_k,
    test_filter,
    test_filters_never_widen_permissions,
    test_metadata_type_mismatch_does_not_starve_top_k,
    test_only_the_newest_version_is_returned,
    test_top_k_filled_when_most_top_scoring_passages_are_forbidden,
)

HIT_KEYS = {"rank", "score", "chunk_id", "doc_id", "title", "uri", "doc_type", "version", "updated_at", "section",
            "page_start", "page_end", "start", "end", "text", "stages", "alternatives"}
STAGE_KEYS = {"dense_rank", "dense_score", "keyword_rank", "keyword_score", "rerank_score"}


# -- helpers (also used by test_retriever_server.py) ---------------------------------------------


# -- fixtures -------------------------------------------------------------------------------------


# -- permissions ----------------------------------------------------------------------------------


# -- filling top_k when the best matches are forbidden ------------------------------------------


# -- filters in every mode ------------------------------------------------------------------------


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
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


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
