"""H3: identical passages must not break dense search for everyone (ingest/chroma_store.py).

A document that repeats one section 1,500 times stores 1,500 identical vectors; in a plain HNSW index they
link only to each other and every dense query returned only them, before and after `lore rm`, across
restarts. Real model, real ingest, embedded Chroma; recall@10 of the vector store against exact search
over every stored vector (ties at the 10th score count as hits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.chroma_store import ChromaChunkStore
from ingest.pipeline import doc_id_for
from ingest.access import Access, Scope
from tests.support.chroma import chroma_server  # noqa: F401 - fixture
from retriever.search import Retriever
from ingest.access import Principal

COPIES = 1500
PARA = "Quarterly synergy alignment memo: please review the attached deck before Friday's sync."
QUESTIONS = {"pto-policy.md": "How many unused PTO hours can be carried over into the next year?",
             "payments-api.md": "How many requests per minute can an API key send?",
             "data-retention.txt": "How long are application logs retained?",
             "2025-03-14-checkout-outage.md": "What caused the checkout outage in March?"}
TOPICS = ["vendor onboarding", "office relocation", "printer maintenance", "team offsite agenda", "security badge",
          "parking permits", "cafeteria menu", "laptop refresh", "travel booking", "training budget"]


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def recall_at_10(vectors, embedder, queries=QUESTIONS.values(), fetch: int = 10) -> float:
    """Share of the store's top 10 (of `fetch` asked for) that exact search ranks in its top 10, ties with
    the 10th included."""
    ids = sorted(vectors.ids())
    got = vectors.get(ids)
    pos = {c: i for i, c in enumerate(ids)}
    m = unit(np.stack([got[c][0] for c in ids]))
    out = []
    for q in queries:
        v = unit(embedder.embed_query(q))
        exact = m @ v
        cut = np.sort(exact)[-10]
        hits = [c for c, _ in vectors.query(v, fetch)][:10]
        out.append(sum(exact[pos[c]] >= cut - 1e-5 for c in hits) / 10)
    return float(np.mean(out))


def assert_search_works(ing, embedder, where: str) -> None:
    assert ing.vectors.ids() == ing.store.chunk_ids(), where
    assert ing.vectors.count() == ing.store.counts()[1], where
    assert recall_at_10(ing.vectors, embedder) >= 0.9, where
    r = Retriever(ing.store, ing.vectors, embedder)
    for name, q in QUESTIONS.items():
        hits = r.search(q, Principal(), top_k=5, mode="dense").hits
        assert hits and Path(hits[0].doc.uri).name == name, (where, q, [h.doc.uri for h in hits])
    assert not ing.vectors.check().damaged, where


def repeated_doc(folder: Path, copies: int = COPIES, para: str = PARA) -> Path:
    """One paragraph under the same heading again and again: one identical chunk per section."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "memo.md"
    path.write_text("# Memo\n\n" + "".join(f"## Update\n\n{para}\n\n" for _ in range(copies)))
    return path


def notes(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        (folder / f"note-{i:03d}.md").write_text(f"# Note {i}: {t}\n\nThis note {i} covers {t} for site {i % 7}. "
                                                 f"Ask desk {i} about {t} deadlines in week {i % 52}.")
    return folder


def test_identical_chunks_do_not_take_over_dense_search_nor_outlive_their_removal(tmp_path, corpus, make_ingestor,
                                                                                 embedder):
    ing = make_ingestor()
    assert ing.ingest([corpus]).failed == []
    memo = repeated_doc(tmp_path / "attack")
    assert ing.ingest([memo]).chunks == COPIES
    assert_search_works(ing, embedder, "with the repeated document")
    hits = Retriever(ing.store, ing.vectors, embedder).search(PARA, Principal(), top_k=3, mode="dense").hits
    assert hits[0].doc.id == doc_id_for(memo)  # and a query for it still finds it
    ing.remove(doc_id_for(memo))
    assert_search_works(ing, embedder, "after lore rm")
    ing.ingest([notes(tmp_path / "notes", 150)])
    assert_search_works(ing, embedder, "after rm and 150 more documents")
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # as a new process: Chroma loads the index from disk
    again = make_ingestor()
    assert_search_works(again, embedder, "after a restart")


def test_near_duplicate_vectors_do_not_break_search(tmp_path, corpus, make_ingestor, embedder):
    """Copies of one vector with tiny noise (within SAME_VECTOR, stored as one node) and with small noise
    (distinct nodes), added straight to the vector store: search, removal and a restart. Recall of the top
    10 among the 100 nearest, the least the retriever asks for (its depth)."""
    from ingest.chroma_store import SAME_VECTOR

    ing = make_ingestor()
    assert ing.ingest([corpus]).failed == []
    base = unit(embedder.embed_documents([PARA])[0])
    rng = np.random.default_rng(3)
    for sigma, tag in ((2e-4, "tiny"), (2e-3, "small")):
        vecs = unit(base + sigma * rng.standard_normal((COPIES, base.size)))
        assert tag == "small" or (1.0 - vecs @ base).max() <= SAME_VECTOR
        ids = [f"{tag}#{i:05d}" for i in range(COPIES)]
        ing.vectors.upsert(ids, vecs, [{"doc_id": tag, "acl": ["public"]}] * COPIES)
        assert recall_at_10(ing.vectors, embedder, fetch=100) >= 0.9, tag
        got = ing.vectors.get(ids[:5])
        assert all(np.allclose(got[c][0], v) for c, v in zip(ids[:5], vecs))  # each keeps its own vector
        ing.vectors.delete(ids)
        assert recall_at_10(ing.vectors, embedder, fetch=100) >= 0.9, tag
    assert ing.vectors.ids() == ing.store.chunk_ids()
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    assert recall_at_10(make_ingestor().vectors, embedder, fetch=100) >= 0.9


def test_same_passage_under_different_acls_keeps_each_documents_permissions(tmp_path, make_ingestor, embedder):
    """Identical vectors in documents with different ACLs share one node; each chunk keeps its own
    metadata, so Chroma's `where` and the registry check decide per chunk, and deleting one keeps the other."""
    text = "The break room coffee machine is descaled every Tuesday at 7am by facilities."
    for folder in ("hr", "pub"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "coffee.md").write_text(f"# Coffee\n\n{text}\n")
    ing = make_ingestor()
    ing.ingest([tmp_path / "hr"], acl=["group:hr"])
    ing.ingest([tmp_path / "pub"])
    hr_doc, pub_doc = doc_id_for(tmp_path / "hr" / "coffee.md"), doc_id_for(tmp_path / "pub" / "coffee.md")
    hr_c, pub_c = ing.store.chunks(hr_doc)[0].id, ing.store.chunks(pub_doc)[0].id
    got = ing.vectors.get([hr_c, pub_c])
    assert np.array_equal(got[hr_c][0], got[pub_c][0]) and got[hr_c][1]["acl"] == ["group:hr"]
    assert ing.vectors.check().groups == 1  # one node for both
    v = embedder.embed_query("when is the coffee machine descaled?")
    hr, anon = Principal("ana", ("hr",)), Principal()
    for who, want in ((hr, {hr_c, pub_c}), (anon, {pub_c})):
        scope = Scope(Access.for_principal(who, ("public",)))
        assert {c for c, _ in ing.vectors.query(v, 5, scope)} == want
        r = Retriever(ing.store, ing.vectors, embedder)
        for mode in ("dense", "hybrid"):
            res = r.search("coffee machine descaled", who, top_k=5, mode=mode)
            found = {h.chunk.id for h in res.hits} | {a.chunk_id for h in res.hits for a in h.alternatives}
            assert found == want, (who, mode)
    ing.remove(hr_doc)  # the group's first chunk goes; the other stays findable, unfiltered and filtered
    assert [c for c, _ in ing.vectors.query(v, 3)][0] == pub_c
    assert ing.vectors.ids() == ing.store.chunk_ids() == {pub_c}
    ing.remove(pub_doc)
    assert ing.vectors.check().groups == 0 and ing.vectors.count() == 0


def _legacy_store(src: ChromaChunkStore, path: Path) -> ChromaChunkStore:
    """The same chunks written as Lore wrote them before groups: one node per chunk, copies included."""
    legacy = ChromaChunkStore(src.model_id, path=path)
    col = legacy._collection()
    for ids, vecs, metas in src._records():
        col.upsert(ids=ids, embeddings=vecs, metadatas=metas)
    return legacy


def test_an_index_damaged_before_the_fix_is_detected_and_rebuilt(tmp_path, corpus, make_ingestor, embedder):
    ing = make_ingestor()
    ing.ingest([corpus])
    ing.ingest([repeated_doc(tmp_path / "attack")])
    legacy = _legacy_store(ing.vectors, tmp_path / "legacy")
    assert legacy.ids() == ing.store.chunk_ids()
    health = legacy.check()
    assert health.damaged and health.duplicates > 0
    assert recall_at_10(legacy, embedder) < 0.5  # the damage is real: dense search returns only the copies
    want = legacy.get(sorted(legacy.ids()))
    before, after = legacy.rebuild()
    assert before.damaged and not after.damaged and after.groups == 1 and after.nodes < 100
    reopened = ChromaChunkStore(ing.vectors.model_id, path=tmp_path / "legacy")
    assert reopened.ids() == set(want) and recall_at_10(reopened, embedder) >= 0.9
    got = reopened.get(sorted(want))
    assert all(np.allclose(got[c][0], want[c][0], rtol=1e-6, atol=1e-7) and got[c][1] == want[c][1] for c in want)


def test_lore_index_check_and_repair(tmp_path, corpus, make_ingestor, embedder, monkeypatch):
    from typer.testing import CliRunner

    from api.cli_index import index_app

    ing = make_ingestor(tmp_path / "new")
    ing.ingest([corpus])
    ing.ingest([repeated_doc(tmp_path / "attack", 400)])
    data = tmp_path / "kb"  # a data dir whose vectors were stored the old way
    _legacy_store(ing.vectors, data / "chroma")
    run = CliRunner().invoke
    args = ["--data-dir", str(data), "--json"]
    bad = run(index_app, ["check", *args])
    assert bad.exit_code == 1 and '"damaged": true' in bad.stdout, bad.output
    fixed = run(index_app, ["repair", *args])
    assert fixed.exit_code == 0 and '"damaged": false' in fixed.stdout, fixed.output
    ok = run(index_app, ["check", *args])
    assert ok.exit_code == 0, ok.output


chroma_url = chroma_server  # the `chroma run` server of tests/support/chroma.py


def test_groups_against_a_chroma_server(tmp_path, corpus, embedder, chroma_url):
    """The same over LORE_CHROMA_URL: copies grouped, filtered and unfiltered search, removal, repair."""
    from ingest.pipeline import Ingestor
    from ingest.sqlite_store import SqliteStore

    ing = Ingestor(SqliteStore(tmp_path / "kb" / "lore.db"), ChromaChunkStore(embedder.model_id, url=chroma_url),
                   embedder, parse_workers=0)
    ing.ingest([corpus])
    memo = repeated_doc(tmp_path / "attack", 300)
    ing.ingest([memo], acl=["group:ops"])
    assert_search_works(ing, embedder, "server, with the repeated document")
    v = embedder.embed_query(PARA)
    ops = Scope(Access.for_principal(Principal("o", ("ops",)), ("public",)))
    assert {c.split("#")[0] for c, _ in ing.vectors.query(v, 50, ops)} == {doc_id_for(memo)}
    anon = Scope(Access.for_principal(Principal(), ("public",)))
    assert not {c for c, _ in ing.vectors.query(v, 50, anon)} & {c.id for c in ing.store.chunks(doc_id_for(memo))}
    ing.remove(doc_id_for(memo))
    assert_search_works(ing, embedder, "server, after lore rm")
    before, after = ing.vectors.rebuild()
    assert not after.damaged and after.vectors == ing.store.counts()[1]
    assert_search_works(ing, embedder, "server, after a rebuild")


def test_searches_explore_more_candidates_than_the_retriever_asks_for(tmp_path):
    """With Chroma's default ef_search (100) a depth-100 search explores no more than it returns, and a crowd
    of near-copies trapped it once (recall@10 0.75 above). New collections and ones made before get more."""
    import chromadb
    from chromadb.config import Settings

    from ingest.chroma_store import SEARCH_EF

    fresh = ChromaChunkStore("m", path=tmp_path / "new")
    assert all(c.configuration_json["hnsw"]["ef_search"] == SEARCH_EF > 100 for c in fresh._cols())
    old = chromadb.PersistentClient(path=str(tmp_path / "old"), settings=Settings(anonymized_telemetry=False))
    old.get_or_create_collection(ChromaChunkStore("m", path=tmp_path / "x").name, embedding_function=None,
                                 metadata={"hnsw:space": "cosine"})
    assert old.get_collection(ChromaChunkStore("m", path=tmp_path / "x").name).configuration_json["hnsw"]["ef_search"] == 100
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    reopened = ChromaChunkStore("m", path=tmp_path / "old")
    assert all(c.configuration_json["hnsw"]["ef_search"] == SEARCH_EF for c in reopened._cols())
