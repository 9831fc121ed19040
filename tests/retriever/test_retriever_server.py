"""Retrieval against a real `chroma run` server on loopback (LORE_CHROMA_URL): filters in every mode,
permissions, current versions only and deletes, as with embedded Chroma (see test_retriever.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ingest.chroma_store import ChromaChunkStore
from ingest.pipeline import doc_id_for
from retriever.search import RetrievalConfig, Retriever
from ingest.access import Principal

from tests.support.chroma import start_chroma, stop_chroma
from tests.support.retriever_kb import (ANON, ENG, FILTER_CASES, HR, MODES, WIFI_Q, WIFI_V1, assert_well_formed,
                                         build_kb, found_chunks, found_docs, stale_meta, write_md)


@pytest.fixture(scope="module")
def server_kb(tmp_path_factory, embedder):
    """The markdown part of the sample corpus (+ the typed-front-matter spec) on its own server."""
    root = tmp_path_factory.mktemp("server-kb")
    proc, url = start_chroma(root / "server")
    try:
        vectors = ChromaChunkStore(embedder.model_id, url=url)
        ing, corpus, ids = build_kb(root, embedder, vectors=vectors, md_only=True)
        yield ing, corpus, ids
    finally:
        stop_chroma(proc)


@pytest.fixture()
def chroma_url(tmp_path):
    proc, url = start_chroma(tmp_path / "server")
    yield url
    stop_chroma(proc)


def test_server_filters_in_every_mode(server_kb):
    ing, corpus, ids = server_kb
    assert ing.vectors.url and set(ids) == {"pto-policy.md", "compensation-bands.md", "payments-api.md",
                                            "2025-03-14-checkout-outage.md", "ledger-service.md"}
    r = Retriever(ing.store, ing.vectors, ing.embedder)
    small = Retriever(ing.store, ing.vectors, ing.embedder, config=RetrievalConfig(depth=1))
    q = "policy payments incident ledger engineer review carry over"
    for mode in MODES:
        reach = found_docs(r.search(q, HR, top_k=500, mode=mode))
        assert reach == set(ids.values())  # every document has a query term
        for name, make, expected in FILTER_CASES:
            f = make(corpus, ids)
            want = {ids[n] for n in expected if n in ids}
            res = r.search(q, HR, f, top_k=500, mode=mode)
            assert found_docs(res) == want, (mode, name)
            assert_well_formed(res, ing.store)
            one = small.search(q, HR, f, top_k=1, mode=mode)
            assert len(one.hits) == min(1, len(want)) and found_docs(one) <= want, (mode, name)


def test_server_permissions(server_kb):
    ing, _, ids = server_kb
    comp = ids["compensation-bands.md"]
    comp_chunks = {c.id for c in ing.store.chunks(comp)}
    q = "salary band for a Senior Engineer in Lisbon"
    r = Retriever(ing.store, ing.vectors, ing.embedder)
    private = Retriever(ing.store, ing.vectors, ing.embedder, default_acl=("group:employees",))
    for mode in MODES:
        assert r.search(q, HR, top_k=3, mode=mode).hits[0].doc.id == comp
        for p in (ANON, ENG, Principal("hr")):
            res = r.search(q, p, top_k=100, mode=mode)
            assert not found_chunks(res) & comp_chunks and "68,000" not in json.dumps(res.to_dict())
        assert private.search(q, ANON, top_k=100, mode=mode).hits == ()
        assert comp not in found_docs(private.search(q, ENG, top_k=100, mode=mode))


def test_server_versions_stale_vectors_and_deletes(tmp_path, embedder, chroma_url):
    from ingest.pipeline import Ingestor
    from ingest.sqlite_store import SqliteStore

    root = tmp_path / "office"
    wifi = write_md(root / "wifi.md", "Office Network Guide", WIFI_V1)
    write_md(root / "parking.md", "Parking Guide", {"Garage": "The parking garage gate opens with the badge; "
                                                              "visitors press the intercom marked P2."})
    ing = Ingestor(SqliteStore(tmp_path / "kb" / "lore.db"), ChromaChunkStore(embedder.model_id, url=chroma_url),
                   embedder, parse_workers=0)
    assert ing.ingest([root]).added == 2
    r = Retriever(ing.store, ing.vectors, embedder)
    doc_id = doc_id_for(wifi)
    old_ids = {c.id for c in ing.store.chunks(doc_id)}
    old = ing.vectors.get(sorted(old_ids))
    assert "zebra" in r.search(WIFI_Q, ANON, top_k=1).hits[0].chunk.text

    write_md(wifi, "Office Network Guide", {**WIFI_V1, "Guest wifi": WIFI_V1["Guest wifi"].replace("zebra", "okapi")})
    version = hashlib.sha256(wifi.read_bytes()).hexdigest()
    assert ing.ingest([root]).updated == 1
    doc = ing.store.get_document(doc_id)
    fake = f"{doc_id}#{'0' * 12}-0000"
    ids = sorted(old) + [fake]
    ing.vectors.upsert(ids, np.stack([old[i][0] for i in sorted(old)] + [embedder.embed_query(WIFI_Q)]),
                       [old[i][1] for i in sorted(old)] + [stale_meta(doc)])
    for mode in MODES:
        for k in (1, 50):
            res = r.search(WIFI_Q, ANON, top_k=k, mode=mode)
            assert res.hits and not found_chunks(res) & set(ids)
            assert all(h.chunk.version == version for h in res.hits if h.doc.id == doc_id)
            assert "zebra" not in json.dumps(res.to_dict()["hits"])
        assert "okapi" in r.search("okapi poster", ANON, top_k=1, mode=mode).hits[0].chunk.text

    parking = doc_id_for(root / "parking.md")
    park_ids = {c.id for c in ing.store.chunks(parking)}
    (root / "parking.md").unlink()
    assert ing.ingest([root]).deleted == 1
    ing.remove(doc_id)
    assert ing.store.counts() == (0, 0)
    for mode in MODES:
        for q in ("parking garage gate intercom", WIFI_Q):
            res = r.search(q, ANON, top_k=50, mode=mode)
            assert not found_chunks(res) & (park_ids | old_ids) and res.hits == ()
