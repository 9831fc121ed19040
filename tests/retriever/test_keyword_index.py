"""The in-memory keyword index (retriever/keyword_index.py) against FTS5, the source of truth.

Real SQLite and real ingests throughout. The retriever's permission, filter, top_k, version and delete
tests and the ACL property tests run again here with the in-memory backend (each module's retriever
factory is patched to attach one), and every search in them must be answered by the index, not FTS5.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# the suites re-run below with the in-memory backend, and the fixtures they use
from tests.support.acl_suite import (  # noqa: F401
    test_search_returns_exactly_the_readable_matching_documents,
    test_top_k_is_filled_from_readable_documents_even_with_shallow_searches,
)
from tests.support.acl_world import world  # noqa: F401
from tests.support.retriever_kb import crowded, kb, office  # noqa: F401
from tests.support.retriever_suite import (  # noqa: F401
    reachable,
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

from ingest.chroma_store import ChromaChunkStore
from ingest.embedders import HashEmbedder
from ingest.errors import ConfigError, StoreError
from ingest.pipeline import Ingestor, doc_id_for
from ingest.sqlite_store import SqliteStore
from ingest.types import DEFAULT_ACL_MARK, DOC_TYPES, Chunk, SourceDoc
from retriever import keyword_index as ki
from ingest.access import Access, Scope
from retriever.keyword_index import KeywordAccelerator, KeywordIndex
from retriever.search import RetrievalConfig, Retriever
from ingest.access import Filters, Principal
from tests.support import ENTERPRISE_DIRS, SAMPLES
from tests.support import acl_suite as tap
from tests.support import retriever_kb as tr
from tests.support import retriever_suite as suite

UTC = timezone.utc
ANON = Principal()
made: list[KeywordAccelerator] = []


def memory_retriever(store, vectors, embedder, **kw) -> Retriever:
    weights = (kw.get("config") or RetrievalConfig()).field_weights
    acc = KeywordAccelerator(store, None, weights, mode="memory")
    made.append(acc)
    return Retriever(store, vectors, embedder, keyword_index=acc, **kw)


@pytest.fixture(autouse=True)
def in_memory_backend(monkeypatch):
    """The imported suites build their retrievers through these names: give them the in-memory index."""
    monkeypatch.setattr(suite, "retriever_for", lambda ing, **kw: memory_retriever(ing.store, ing.vectors, ing.embedder, **kw))
    monkeypatch.setattr(tap, "Retriever", memory_retriever)
    made.clear()
    yield
    assert all(a.served["fts5"] == 0 for a in made), "a keyword search fell back to FTS5"


def fts5(store: SqliteStore, query: str, access: Access, f: Filters = Filters(), doc_ids=None, k: int = 10_000,
         weights=(1.0, 1.0, 1.0)):
    return store.keyword_search(query, k, weights, scope=Scope(access, f, doc_ids))


def memory(store: SqliteStore, idx: KeywordIndex, query: str, access: Access, f: Filters = Filters(), doc_ids=None,
           k: int = 10_000):
    narrowed = doc_ids is not None or f.doc_types or f.updated_after or f.updated_before or f.metadata
    allowed = idx.permitted(access, store.doc_ids_in(Scope(access, f, doc_ids)) if narrowed else None)
    return idx.search(query, k, allowed)


def assert_same_ranking(got, want, cut: bool = False) -> None:
    """Same chunks, scores (float32 postings vs FTS5's doubles) and order, up to ties.

    With `cut` (a top k), chunks tied with the last one may differ: either side may pick any of them.
    """
    assert got is not None and len(got) == len(want)
    assert np.allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)

    def tol(s: float) -> float:  # float32 postings against FTS5's doubles
        return 1e-5 * max(1.0, abs(s))

    for hits in (got, want):  # best first
        assert all(a[1] >= b[1] - tol(a[1]) for a, b in zip(hits, hits[1:]))
    g, w = dict(got), dict(want)
    # per chunk, not per rounded score group: two equal scores may straddle a rounding boundary
    # (1.23445 vs 1.234449), and near-equal scores may chain differently on the two sides
    sure = set(w)
    if cut and w:  # chunks tied (within float noise) with the last one may differ: either side may pick any
        last = min(w.values())
        sure = {c for c, s in w.items() if s > last + tol(last)}
        assert {c for c, s in g.items() if s > last + tol(last)} <= set(w)
    else:
        assert set(g) == set(w)
    assert sure <= set(g) and all(abs(g[c] - w[c]) <= tol(w[c]) for c in sure)


# -- scoring parity on real corpora ---------------------------------------------------------------

@pytest.fixture(scope="module")
def enterprise(tmp_path_factory):
    """The Markdown part of the shared enterprise corpus (130 documents), ingested with the hash embedder."""
    root = tmp_path_factory.mktemp("enterprise")
    for d in ENTERPRISE_DIRS:
        for p in d.rglob("*.md"):
            dst = root / "corpus" / p.relative_to(d.parent)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dst)
    emb = HashEmbedder()
    ing = Ingestor(SqliteStore(root / "kb" / "lore.db"), ChromaChunkStore(emb.model_id, path=root / "kb" / "chroma"),
                   emb, parse_workers=0)
    assert ing.ingest([root / "corpus"]).failed == []
    return ing.store


def dev_questions() -> list[str]:
    path = Path(__file__).resolve().parents[2] / "evals" / "datasets" / "enterprise_dev.jsonl"
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (2.5, 0.5, 1.0), (0.0, 1.0, 1.0)])
def test_scores_and_rankings_equal_fts5(enterprise, weights):
    store = enterprise
    idx = KeywordIndex.build(store, weights)
    assert idx.n == store.counts()[1] > 500
    access = Access.for_principal(ANON, ("public",))
    queries = dev_questions() + ["TTS", "leave", "the of and", "Überstunden naïve café", "zzzqqq"]
    for q in queries:
        assert_same_ranking(memory(store, idx, q, access), fts5(store, q, access, weights=weights))
        assert_same_ranking(memory(store, idx, q, access, k=10), fts5(store, q, access, k=10, weights=weights), True)


def test_tokens_and_document_frequencies_equal_fts5(enterprise):
    """Every term FTS5 indexed, in as many rows, and the same row lengths (bm25's D)."""
    store = enterprise
    idx = KeywordIndex.build(store)
    store._db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.v_rows USING fts5vocab(main, chunks_fts, 'row')")
    fts = {t: n for t, n in store._db.execute("SELECT term, doc FROM temp.v_rows")}
    mine = dict(zip(idx.terms, np.diff(idx.indptr).tolist()))
    assert mine == fts


# -- permissions and filters: equal to FTS5 over random ACLs ---------------------------------------

TOKENS = ("public", "user:u1", "user:u2", "group:g1", "group:g2", "group:g3")
MALFORMED = ("Group:g1", "group:g1 ", DEFAULT_ACL_MARK, "everyone")
WORDS = "falcon heron osprey kestrel harrier merlin hobby buzzard kite eagle owl swift".split()


@pytest.fixture(scope="module")
def random_world(tmp_path_factory):
    """120 documents with random ACLs (some empty, some malformed), types, dates, front matter and text."""
    rng = np.random.default_rng(5)
    store = SqliteStore(tmp_path_factory.mktemp("random-world") / "lore.db")
    for i in range(120):
        r = rng.random()
        acl = (() if r < 0.15 else (str(rng.choice(MALFORMED)),) if r < 0.22 else
               tuple(sorted(set(rng.choice(TOKENS, size=int(rng.integers(1, 3)))))))
        doc_id = f"doc-{i:03d}"
        texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 25)), p=np.linspace(2, 0.5, len(WORDS))
                                     / np.linspace(2, 0.5, len(WORDS)).sum())) for _ in range(int(rng.integers(1, 4)))]
        version = hashlib.sha256("|".join(texts).encode()).hexdigest()
        updated = (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 500)))).isoformat()
        doc = SourceDoc(doc_id, f"/kb/{'ab'[i % 2]}/{doc_id}.md", f"Report {WORDS[i % len(WORDS)]}",
                        DOC_TYPES[i % len(DOC_TYPES)], version, updated, updated, acl, 0, len(texts))
        chunks, pos = [], 0
        for o, t in enumerate(texts):
            chunks.append(Chunk(f"{doc_id}#{version[:12]}-{o:04d}", doc_id, version, o, t,
                                (doc.title, WORDS[(i + o) % len(WORDS)]), None, None, pos, pos + len(t),
                                hashlib.sha256(t.encode()).hexdigest(), len(t.split())))
            pos += len(t) + 2
        fm = {"tier": int(i % 3), "owner": ["ops", "payments"][i % 2], "pci": bool(i % 4 == 0)}
        store.replace_document(doc, "\n\n".join(texts), chunks, "fp", fm)
    return store, KeywordIndex.build(store)


principals = st.builds(lambda u, g: Principal(u, tuple(sorted(g))), st.sampled_from([None, "u1", "u2", "u9"]),
                       st.sets(st.sampled_from(["g1", "g2", "g3", "g9"])))
filters = st.builds(
    Filters,
    doc_types=st.lists(st.sampled_from(DOC_TYPES), max_size=2, unique=True).map(tuple),
    doc_ids=st.lists(st.sampled_from([f"doc-{i:03d}" for i in range(0, 130, 7)]), max_size=6).map(tuple),
    updated_after=st.none() | st.sampled_from([datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC)]),
    updated_before=st.none() | st.sampled_from([datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)]),
    metadata=st.lists(st.sampled_from([("tier", 1), ("tier", 2), ("owner", "ops"), ("pci", True), ("pci", 1)]),
                      max_size=2, unique_by=lambda kv: kv[0]).map(tuple))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(who=principals, default=st.sets(st.sampled_from(TOKENS + ("group:g9",))), f=filters,
       query=st.lists(st.sampled_from(WORDS + ["report", "nothing"]), min_size=1, max_size=4).map(" ".join),
       k=st.sampled_from([1, 3, 10_000]))
def test_memory_equals_fts5_for_random_principals_and_filters(random_world, who, default, f, query, k):
    store, idx = random_world
    access = Access.for_principal(who, tuple(sorted(default)))
    doc_ids = tuple(sorted(set(f.doc_ids))) if f.doc_ids else None
    want = fts5(store, query, access, f, doc_ids, k)
    got = memory(store, idx, query, access, f, doc_ids, k)
    assert_same_ranking(got, want, cut=k < 10_000)
    everything = dict(fts5(store, query, access, f, doc_ids))
    assert all(c in everything for c, _ in got)  # every hit permitted and matching


def test_mask_is_applied_before_the_top_k(random_world):
    """The best-scoring chunks are forbidden: the k returned are the best permitted ones, k of them."""
    store, idx = random_world
    q = "falcon heron osprey"
    everyone = idx.search(q, 10_000, np.ones(idx.n, bool))
    best = {c for c, _ in everyone[:20]}
    allowed = np.array([c not in best for c in idx.chunk_ids])
    got = idx.search(q, 5, allowed)
    assert len(got) == 5 and not {c for c, _ in got} & best
    assert got == [x for x in everyone if x[0] not in best][:5]


# -- generations, staleness, persistence ---------------------------------------------------------

def one_doc(doc_id: str, text: str, acl=()) -> tuple[SourceDoc, list[Chunk]]:
    version = hashlib.sha256(text.encode()).hexdigest()
    doc = SourceDoc(doc_id, f"/kb/{doc_id}.md", doc_id.title(), "other", version, "2026-01-01T00:00:00+00:00",
                    "2026-01-01T00:00:00+00:00", tuple(acl), len(text), 1)
    return doc, [Chunk(f"{doc_id}#{version[:12]}-0000", doc_id, version, 0, text, (doc.title,), None, None, 0,
                       len(text), hashlib.sha256(text.encode()).hexdigest(), len(text.split()))]


def test_generation_counts_every_registry_write_and_only_those(tmp_path):
    store = SqliteStore(tmp_path / "lore.db")
    g0 = store.generation()
    doc, chunks = one_doc("alpha", "alpha text")
    store.replace_document(doc, "alpha text", chunks, "fp")
    assert store.generation() == g0 + 1
    store.set_dirty(True)
    store.put_vectors({"k": np.zeros(3, np.float32)})
    assert store.generation() == g0 + 1
    with pytest.raises(StoreError):
        store.replace_document(doc, "alpha text", chunks + chunks, "fp")  # duplicate chunk id: rolled back
    assert store.generation() == g0 + 1
    store.delete_document("alpha")
    assert store.generation() == g0 + 2
    again = SqliteStore(tmp_path / "lore.db")  # another connection (process) sees the count and the same id
    assert again.generation() == g0 + 2 and again.store_id == store.store_id
    assert SqliteStore(tmp_path / "other.db").store_id != store.store_id


@pytest.fixture()
def office_kb(tmp_path):
    """Two documents written through the pipeline (hash embedder), with a saving accelerator."""
    emb = HashEmbedder()
    root = tmp_path / "office"
    tr.write_md(root / "wifi.md", "Office Network Guide", tr.WIFI_V1)
    tr.write_md(root / "parking.md", "Parking Guide", tr.PARKING)
    ing = Ingestor(SqliteStore(tmp_path / "kb" / "lore.db"),
                   ChromaChunkStore(emb.model_id, path=tmp_path / "kb" / "chroma"), emb, parse_workers=0)
    assert ing.ingest([root]).added == 2
    return ing, root, tmp_path / "kb" / "keyword-index"


def keyword_ids(r: Retriever, q: str) -> set[str]:
    return {h.chunk.id for h in r.search(q, ANON, top_k=50, mode="keyword").hits}


def test_stale_index_is_never_used_while_the_rebuild_runs_in_the_background(office_kb, monkeypatch):
    ing, root, folder = office_kb
    acc = KeywordAccelerator(ing.store, folder, mode="memory", sync_max_chunks=0)  # every rebuild in the background
    r = Retriever(ing.store, ing.vectors, ing.embedder, keyword_index=acc)
    acc.prepare()
    q = "parking garage gate intercom visitors wifi"
    before = keyword_ids(r, q)
    assert acc.served == {"memory": 1}
    park = {c.id for c in ing.store.chunks(doc_id_for(root / "parking.md"))}
    assert park & before
    gate, real_build = threading.Event(), KeywordIndex.build
    monkeypatch.setattr(KeywordIndex, "build", classmethod(lambda cls, *a, **kw: gate.wait(30) and real_build(*a, **kw)))
    (root / "parking.md").unlink()
    assert ing.ingest([root]).deleted == 1
    old = acc._index
    for _ in range(3):  # the old index is still in memory, but stale: FTS5 answers until the new one is ready
        got = keyword_ids(r, q)
        assert got and not got & park
    assert acc.served["fts5"] == 3 and acc._index is old and acc._thread.is_alive()
    gate.set()
    acc._thread.join(30)
    assert keyword_ids(r, q) == got and acc.served["memory"] == 2
    assert acc.current().generation == ing.store.generation()


def test_superseded_and_deleted_chunks_never_come_back_with_a_synchronous_rebuild(office_kb):
    ing, root, folder = office_kb
    acc = KeywordAccelerator(ing.store, folder, mode="memory")
    r = Retriever(ing.store, ing.vectors, ing.embedder, keyword_index=acc)
    wifi = doc_id_for(root / "wifi.md")
    old = {c.id for c in ing.store.chunks(wifi)}
    q = "zebra okapi wifi guest network"
    assert old & keyword_ids(r, q)
    v1 = acc.current()
    tr.write_md(root / "wifi.md", "Office Network Guide",
                {**tr.WIFI_V1, "Guest wifi": tr.WIFI_V1["Guest wifi"].replace("zebra", "okapi")})
    assert ing.ingest([root]).updated == 1
    got = keyword_ids(r, q)
    assert got and not got & old and got <= ing.store.chunk_ids()
    assert acc.current() is not v1 and acc.current().generation == ing.store.generation()
    ing.remove(wifi)
    assert keyword_ids(r, q) == set()
    assert acc.served == {"memory": 3}  # each rebuilt inside the search: a small registry


def test_saved_index_is_loaded_by_a_new_retriever(office_kb, monkeypatch):
    ing, _, folder = office_kb
    first = KeywordAccelerator(ing.store, folder, mode="memory")
    q = "wifi password guest network"
    want = first.search(q, 50, Scope(Access.for_principal(ANON, ("public",))))
    saved = list(folder.iterdir())
    assert len(saved) == 1 and saved[0].name.startswith(ing.store.store_id)

    def no_build(*a, **kw):
        raise AssertionError("the saved index should have been loaded")

    monkeypatch.setattr(KeywordIndex, "build", classmethod(no_build))
    store = SqliteStore(ing.store.path)  # as a new process (the CLI) would
    acc = KeywordAccelerator(store, folder, mode="memory", sync_max_chunks=0)
    r = Retriever(store, ing.vectors, ing.embedder, keyword_index=acc)
    assert [(h.chunk.id, h.keyword_score) for h in r.search(q, ANON, top_k=50, mode="keyword").hits] == \
        [(c, pytest.approx(s)) for c, s in want]
    assert acc.served == {"memory": 1}


CORRUPTIONS = {
    "flipped-byte": lambda d: _flip(d / "scores.npy"),
    "truncated-array": lambda d: (d / "indices.npy").write_bytes((d / "indices.npy").read_bytes()[:-7]),
    "missing-manifest": lambda d: (d / "manifest.json").unlink(),  # as a crash before the rename leaves it
    "garbage-manifest": lambda d: (d / "manifest.json").write_text("{\"format\": 1, \"files\""),
    "strings-changed": lambda d: (d / "strings.json").write_bytes((d / "strings.json").read_bytes().replace(b"wifi", b"wiff")),
    "array-swapped": lambda d: shutil.copy(d / "acl_ptr.npy", d / "indptr.npy"),
    "empty-array": lambda d: (d / "chunk_doc.npy").write_bytes(b""),
    "array-missing": lambda d: (d / "acl_pos.npy").unlink(),
}


def _flip(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[-3] ^= 0x40
    p.write_bytes(bytes(b))


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_or_partial_saved_index_is_ignored_and_rebuilt(office_kb, monkeypatch, corrupt):
    ing, _, folder = office_kb
    access = Access.for_principal(ANON, ("public",))
    q = "wifi password guest network parking"
    want = KeywordAccelerator(ing.store, folder, mode="memory").search(q, 50, Scope(access))
    (saved,) = folder.iterdir()
    corrupt(saved)
    (folder / ".tmp-crashed").mkdir()  # a writer that died before renaming: never read
    builds = []
    real = KeywordIndex.build
    monkeypatch.setattr(KeywordIndex, "build", classmethod(lambda cls, *a, **kw: builds.append(1) or real(*a, **kw)))
    acc = KeywordAccelerator(SqliteStore(ing.store.path), folder, mode="memory")
    assert_same_ranking(acc.search(q, 50, Scope(access)), want)
    assert builds == [1] and acc.served == {"memory": 1}
    assert KeywordIndex.load(saved).generation == ing.store.generation()  # replaced by a sound one


def test_stale_saved_index_is_ignored_and_removed(office_kb, monkeypatch):
    ing, root, folder = office_kb
    KeywordAccelerator(ing.store, folder, mode="memory").prepare()
    (old,) = folder.iterdir()
    (root / "parking.md").unlink()
    assert ing.ingest([root]).deleted == 1
    loads = []
    real = KeywordIndex.load
    monkeypatch.setattr(KeywordIndex, "load", classmethod(lambda cls, p: loads.append(p) or real(p)))
    acc = KeywordAccelerator(SqliteStore(ing.store.path), folder, mode="memory")
    assert acc.prepare().generation == ing.store.generation()
    assert old not in loads and not old.exists()
    assert [p.name for p in folder.iterdir()] == [
        KeywordIndex.folder_name(ing.store.store_id, ing.store.generation(), (1.0, 1.0, 1.0))]


def test_index_of_another_registry_in_the_folder_is_not_used(office_kb, tmp_path):
    """A data dir whose database was deleted and re-created starts counting generations again."""
    ing, _, folder = office_kb
    KeywordAccelerator(ing.store, folder, mode="memory").prepare()
    fresh = SqliteStore(tmp_path / "new" / "lore.db")
    doc, chunks = one_doc("solo", "a note on bicycles")
    while fresh.generation() < ing.store.generation():  # the same generation number as the saved index
        fresh.replace_document(doc, chunks[0].text, chunks, "fp")
    acc = KeywordAccelerator(fresh, folder, mode="memory")
    assert acc.search("wifi", 10, Scope(Access.for_principal(ANON, ("public",)))) == []
    assert acc.current().store_id == fresh.store_id


def test_modes_auto_threshold_memory_and_fts5(office_kb):
    ing, _, folder = office_kb
    access = Access.for_principal(ANON, ("public",))
    small = KeywordAccelerator(ing.store, folder, mode="auto", min_chunks=10_000)
    assert small.search("wifi", 10, Scope(access)) is None and small.prepare() is None and not folder.exists()
    assert KeywordAccelerator(ing.store, folder, mode="fts5").search("wifi", 10, Scope(access)) is None
    big = KeywordAccelerator(ing.store, folder, mode="auto", min_chunks=1)
    assert big.search("wifi", 10, Scope(access))
    with pytest.raises(ConfigError, match="auto, memory or fts5"):
        KeywordAccelerator(ing.store, folder, mode="lucene")
    with pytest.raises(ConfigError, match="field weights"):
        Retriever(ing.store, ing.vectors, ing.embedder, keyword_index=KeywordAccelerator(ing.store, weights=(2.0, 1.0, 1.0)))


def test_settings_pick_the_backend(office_kb, monkeypatch):
    from api.settings import Settings
    from api.wiring import build_retriever

    ing, _, folder = office_kb
    monkeypatch.setenv("LORE_RETRIEVAL__KEYWORD_INDEX", "memory")
    monkeypatch.setenv("LORE_RETRIEVAL__TITLE_WEIGHT", "2")
    s = Settings(data_dir=folder.parent)
    r = build_retriever(s, embedder=ing.embedder)
    assert (r.keyword_index.mode, r.keyword_index.folder, r.keyword_index.weights) == ("memory", folder, (2.0, 1.0, 1.0))
    assert r.search("wifi password", ANON, top_k=3, mode="keyword").hits and r.keyword_index.served == {"memory": 1}
    monkeypatch.delenv("LORE_RETRIEVAL__KEYWORD_INDEX")
    assert Settings().retrieval.keyword_index == "auto" and Settings().retrieval.keyword_index_min_chunks == 5_000


def test_a_term_fts5_splits_into_a_phrase_is_left_to_fts5(office_kb, monkeypatch):
    ing, _, folder = office_kb
    acc = KeywordAccelerator(ing.store, None, mode="memory")
    r = Retriever(ing.store, ing.vectors, ing.embedder, keyword_index=acc)
    monkeypatch.setitem(ki._TOKENS, "wifipassword", ("wifi", "password"))
    res = r.search("wifipassword", ANON, top_k=5, mode="keyword")
    assert acc.served == {"fts5": 1}
    assert [h.chunk.id for h in res.hits] == [c for c, _ in ing.store.keyword_search("wifipassword", 5)]


def test_a_failed_build_leaves_fts5_answering_without_retrying_each_search(office_kb, monkeypatch, caplog):
    ing, _, folder = office_kb
    calls = []

    def broken(cls, *a, **kw):
        calls.append(1)
        raise MemoryError("no room for the postings")

    monkeypatch.setattr(KeywordIndex, "build", classmethod(broken))
    acc = KeywordAccelerator(ing.store, folder, mode="memory")
    r = Retriever(ing.store, ing.vectors, ing.embedder, keyword_index=acc)
    q = "wifi password guest network"
    want = [c for c, _ in ing.store.keyword_search(q, 5)]
    for _ in range(3):
        assert [h.chunk.id for h in r.search(q, ANON, top_k=5, mode="keyword").hits] == want
    assert calls == [1] and acc.served == {"fts5": 3} and "build failed" in caplog.text


def test_a_one_shot_process_saves_its_background_build_before_exiting(office_kb):
    """As `lore search` does: one search answered by FTS5 while the index builds, then the process exits."""
    import subprocess
    import sys

    ing, _, folder = office_kb
    script = (
        "import sys; from pathlib import Path\n"
        "from ingest.sqlite_store import SqliteStore\n"
        "from ingest.access import Access, Scope\n"
        "from retriever.keyword_index import KeywordAccelerator\n"
        "from ingest.access import Principal\n"
        f"acc = KeywordAccelerator(SqliteStore({str(ing.store.path)!r}), Path({str(folder)!r}), mode='memory',"
        " sync_max_chunks=0)\n"
        "assert acc.search('wifi', 5, Scope(Access.for_principal(Principal(), ('public',)))) is None\n"
        "assert acc.served == {'fts5': 1}\n")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], check=True, cwd=root, timeout=120)
    name = KeywordIndex.folder_name(ing.store.store_id, ing.store.generation(), (1.0, 1.0, 1.0))
    assert [p.name for p in folder.iterdir()] == [name]
    assert KeywordIndex.load(folder / name).n == ing.store.counts()[1]


def test_words_of_several_or_no_tokens_are_expanded_in_the_postings(tmp_path, monkeypatch):
    """No real word has been seen to differ, but the build follows whatever tokens SQLite gives a word."""
    store = SqliteStore(tmp_path / "lore.db")
    doc, chunks = one_doc("mix", "alpha zzsplitword zzdropped alpha")
    store.replace_document(doc, chunks[0].text, chunks, "fp")
    monkeypatch.setitem(ki._TOKENS, "zzsplitword", ("zzsplit", "zzword"))
    monkeypatch.setitem(ki._TOKENS, "zzdropped", ())
    idx = KeywordIndex.build(store)
    df = dict(zip(idx.terms, np.diff(idx.indptr).tolist()))
    assert df == {"mix": 1, "alpha": 1, "zzsplit": 1, "zzword": 1}  # title "Mix", section "Mix", body
    everyone = np.ones(1, bool)
    for q in ("alpha", "zzsplit", "zzword"):
        assert [c for c, _ in idx.search(q, 5, everyone)] == [chunks[0].id]
    # bm25 with N = 1: idf floored at 1e-6; tf 2 of alpha, row length 2 + 4 tokens = avgdl
    assert idx.search("alpha", 1, everyone)[0][1] == pytest.approx(1e-6 * 2 * 2.2 / (2 + 1.2), rel=1e-6)


def test_lore_ingest_saves_the_keyword_index_when_searches_would_use_it(tmp_path, monkeypatch):
    """After `lore ingest` the first search loads a saved index instead of building one or asking FTS5."""
    from typer.testing import CliRunner

    from api.cli import app
    from ingest.sqlite_store import SqliteStore

    runner = CliRunner()
    monkeypatch.setenv("LORE_RETRIEVAL__KEYWORD_INDEX", "fts5")
    assert runner.invoke(app, ["ingest", str(SAMPLES), "--data-dir", str(tmp_path / "a")]).exit_code == 0
    assert not list((tmp_path / "a" / "keyword-index").glob("*-g*"))  # fts5 only: nothing built
    monkeypatch.setenv("LORE_RETRIEVAL__KEYWORD_INDEX", "memory")
    assert runner.invoke(app, ["ingest", str(SAMPLES), "--data-dir", str(tmp_path / "b")]).exit_code == 0
    store = SqliteStore(tmp_path / "b" / "lore.db")
    saved = [p.name for p in (tmp_path / "b" / "keyword-index").glob("*-g*")]
    assert len(saved) == 1 and f"-g{store.generation()}-" in saved[0]


def test_dense_check_uses_the_index_mask_not_sql_when_only_permissions_apply(crowded, monkeypatch):
    """With a current index, the dense over-fetch is checked against its permission mask; a filter sends
    it back to SQL. Both give what the SQL check gives."""
    ing, root, forbidden = crowded
    q = "quarterly Aurora budget forecast"
    sql = Retriever(ing.store, ing.vectors, ing.embedder)
    mem = memory_retriever(ing.store, ing.vectors, ing.embedder)
    mem.keyword_index.prepare()
    calls = []
    real = ing.store.permitted_chunks
    monkeypatch.setattr(ing.store, "permitted_chunks", lambda ids, scope=None: calls.append(1) or real(ids, scope))
    for p in (ANON, tr.ENG, Principal("fin", ("finance",))):
        assert ([h.chunk.id for h in mem.search(q, p, top_k=5, mode="dense").hits]
                == [h.chunk.id for h in sql.search(q, p, top_k=5, mode="dense").hits])
    n_sql = len(calls)
    calls.clear()
    for p in (ANON, tr.ENG, Principal("fin", ("finance",))):
        mem.search(q, p, top_k=5, mode="dense")
    assert calls == [] and n_sql > 0
    mem.search(q, ANON, Filters(doc_types=("other",)), top_k=5, mode="dense")
    assert calls  # a filter beyond permissions: the registry decides
