"""M2: a reader's scores and ranking must not depend on documents it cannot read (retriever/bm25.py).

BM25 over the whole registry let hidden documents full of a word lower that word's IDF and raise the
average row length for everyone, so a reader's keyword (and hybrid) scores revealed how often words
occur in documents it may not read. Both keyword backends now take BM25's statistics over the reader's
chunks. Real ingest, real model, real SQLite and Chroma.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from ingest.chroma_store import ChromaChunkStore
from ingest.embedders import HashEmbedder
from ingest.keywords import query_terms
from ingest.pipeline import Ingestor
from ingest.sqlite_store import SqliteStore
from ingest.types import DOC_TYPES, Chunk, SourceDoc
from ingest.access import Access, Scope
from retriever.keyword_index import KeywordAccelerator, KeywordIndex
from retriever.search import Retriever
from ingest.access import Filters, Principal

MODES = ("hybrid", "dense", "keyword")
QUERIES = ["How many PTO hours carry over into next year?", "requests per minute rate limit API key",
           "expense receipts travel reimbursement", "checkout outage root cause"]
READERS = [Principal(), Principal("bob", ("eng",))]
HIDDEN = ("pto carry over hours requests minute rate limit expense receipts travel checkout outage cause "
          "PTO PTO PTO carry carry hours hours rate rate limit receipts receipts outage outage ")


def retriever(ing, backend: str) -> Retriever:
    acc = KeywordAccelerator(ing.store, None, mode="memory") if backend == "memory" else None
    return Retriever(ing.store, ing.vectors, ing.embedder, keyword_index=acc)


def results(r: Retriever) -> dict:
    """Every returned hit's id and scores, per reader, query and mode."""
    return {(who, q, mode): [(h.chunk.id, h.score, h.dense_score, h.keyword_score)
                             for h in r.search(q, who, top_k=10, mode=mode).hits]
            for who in READERS for q in QUERIES for mode in MODES}


@pytest.mark.parametrize("backend", ["fts5", "memory"])
def test_scores_and_ranking_ignore_hidden_documents_full_of_the_query_terms(tmp_path, corpus, make_ingestor, backend):
    ing = make_ingestor()
    assert ing.ingest([corpus]).failed == []
    before = results(retriever(ing, backend))
    assert all(before[(READERS[0], q, "keyword")] for q in QUERIES)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for i in range(40):  # long rows, dense in every query term: IDF down, average length up, for everyone
        (hidden / f"secret-{i:02d}.md").write_text(f"# Secret {i}\n\n" + HIDDEN * (1 + i % 5))
    assert ing.ingest([hidden], acl=["group:secret"]).added == 40
    after = results(retriever(ing, backend))
    assert after == before  # the same hits, in the same order, with bit-identical scores
    insider = retriever(ing, backend).search(QUERIES[0], Principal("eve", ("secret",)), top_k=10, mode="keyword")
    assert any("secret" in h.doc.uri for h in insider.hits)  # the hidden documents are there for their readers


# -- both backends compute the same reader statistics -------------------------------------------------

WORDS = "falcon heron osprey kestrel harrier merlin hobby buzzard kite eagle owl swift".split()
TOKENS = ("public", "user:u1", "group:g1", "group:g2", "group:g3")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """80 documents with random ACLs and Zipfian bird words, straight into the registry."""
    rng = np.random.default_rng(11)
    store = SqliteStore(tmp_path_factory.mktemp("reader-stats") / "lore.db")
    p = np.linspace(3, 0.3, len(WORDS))
    for i in range(80):
        acl = () if rng.random() < 0.15 else tuple(sorted(set(rng.choice(TOKENS, size=int(rng.integers(1, 3))))))
        texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 40)), p=p / p.sum()))
                 for _ in range(int(rng.integers(1, 4)))]
        version = hashlib.sha256("|".join(texts).encode()).hexdigest()
        when = (datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(days=int(i * 5))).isoformat()
        doc = SourceDoc(f"doc-{i:03d}", f"/kb/doc-{i:03d}.md", f"Survey {WORDS[i % 12]}", DOC_TYPES[i % 4], version,
                        when, when, acl, 0, len(texts))
        chunks = [Chunk(f"{doc.id}#{version[:12]}-{o:04d}", doc.id, version, o, t, (doc.title, WORDS[o]), None, None,
                        0, len(t), hashlib.sha256(t.encode()).hexdigest(), len(t.split())) for o, t in enumerate(texts)]
        store.replace_document(doc, "\n\n".join(texts), chunks, "fp", {"tier": i % 3})
    return store


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (2.5, 0.5, 1.0)])
def test_in_memory_index_and_fts5_give_the_same_reader_scores(world, weights):
    from retriever.bm25 import ReaderFts

    idx = KeywordIndex.build(world, weights)
    fts = ReaderFts(world)
    who = [Principal(), Principal("u1"), Principal(None, ("g1",)), Principal("u9", ("g2", "g3"))]
    for p in who:
        for default in (("public",), ("group:g9",)):
            access = Access.for_principal(p, default)
            for f in (Filters(), Filters(doc_types=("policy", "spec")), Filters(metadata=(("tier", 1),))):
                scope = Scope(access, f)
                readable = idx.permitted(access)
                allowed = readable if f.empty else idx.permitted(access, world.doc_ids_in(scope))
                for q in ("falcon", "heron osprey kite", "owl swift eagle hobby", "survey falcon"):
                    mem = idx.search(q, 10_000, allowed, readable)
                    sql = fts.search(query_terms(q), 10_000, weights, scope)
                    assert [c for c, _ in mem] == [c for c, _ in sql]
                    assert np.allclose([s for _, s in mem], [s for _, s in sql], rtol=1e-6)


def test_a_reader_of_everything_gets_fts5s_own_bm25(world):
    """With nothing hidden, the reader's statistics are the registry's: scores equal FTS5's bm25()."""
    everyone = Access(tuple(sorted({"@default", *TOKENS})))
    emb = HashEmbedder()
    r = Retriever(world, ChromaChunkStore(emb.model_id, path=world.path.parent / "chroma"), emb)
    for q in ("falcon", "heron osprey kite", "owl swift eagle hobby"):
        want = world.keyword_search(q, 10_000, scope=Scope(everyone))
        got = r._keyword(q, 10_000, Scope(everyone))
        assert [c for c, _ in got] == [c for c, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], rtol=1e-6)


def test_fts5_backend_follows_registry_writes(tmp_path):
    """Its per-generation row cache is refreshed by every ingest and delete."""
    emb = HashEmbedder()
    ing = Ingestor(SqliteStore(tmp_path / "kb" / "lore.db"), ChromaChunkStore(emb.model_id, path=tmp_path / "kb" / "ch"),
                   emb, parse_workers=0)
    (tmp_path / "a.md").write_text("# A\n\nfalcon heron falcon\n")
    ing.ingest([tmp_path / "a.md"])
    r = Retriever(ing.store, ing.vectors, emb)
    assert len(r.search("falcon", Principal(), mode="keyword").hits) == 1
    (tmp_path / "b.md").write_text("# B\n\nfalcon osprey\n")
    ing.ingest([tmp_path / "b.md"])
    assert len(r.search("falcon", Principal(), mode="keyword").hits) == 2
    ing.remove(ing.store.documents()[0].id)
    assert len(r.search("falcon", Principal(), mode="keyword").hits) == 1
