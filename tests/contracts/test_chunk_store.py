"""The ChunkStore contract (ingest/chroma_store.py), run against every implementation: embedded Chroma
(in-process) and a real `chroma run` server. What ingest and search rely on: upsert/get/delete/count/ids,
and `query` admitting exactly what a neutral `Scope` admits (ACL tokens with the default-ACL marker, doc
types, doc ids, dates, front-matter values of each type), compiled by the store itself.

The last test is the cross-encoding contract: for generated scopes, Chroma's compiled `where`, the
registry's compiled SQL (`SqliteStore`), the in-memory keyword index's mask and `Scope.admits` (the final
check in Python) admit exactly the same chunks.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.access import Access, Filters, Principal, Scope
from ingest.chroma_store import ChromaChunkStore, ChunkStore, chroma_where
from ingest.pipeline import Ingestor
from ingest.sqlite_store import SqliteStore, scope_sql
from ingest.types import DEFAULT_ACL_MARK, DOC_TYPES, Chunk, SourceDoc
from retriever.bm25 import ReaderFts
from retriever.keyword_index import KeywordIndex
from tests.support.chroma import start_chroma, stop_chroma

DIM = 16
ACLS = ((), ("public",), ("group:a",), ("user:u1",), ("group:a", "group:b"), ("group:b",))
TIERS = (None, 1, True, 1.0, "1", 2)  # bool vs int vs float vs text: each matches only itself
OWNERS = (None, "payments", "ops")
DATES = ("2025-01-01T00:00:00+00:00", "2025-06-30T12:00:00+00:00", "2026-02-01T08:30:00+00:00")
FOLDERS = ("/kb/a_b/", "/kb/axb/", "/kb/a%/", "/KB/")  # LIKE would read _ and % as wildcards and ignore case
TERM = "falcon"


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    """One `chroma run` server for the module; every test uses collections of its own."""
    proc, url = start_chroma(tmp_path_factory.mktemp("chroma-server"))
    yield url
    stop_chroma(proc)


IMPLS = ["embedded", "server"]


def _make(kind: str, request, tmp_path_factory) -> ChromaChunkStore:
    model = f"contract-{uuid.uuid4().hex[:12]}"  # a collection of its own
    if kind == "embedded":
        return ChromaChunkStore(model, path=tmp_path_factory.mktemp("chroma"))
    return ChromaChunkStore(model, url=request.getfixturevalue("chroma_url"))


@pytest.fixture(params=IMPLS)
def store(request, tmp_path_factory) -> ChunkStore:
    return _make(request.param, request, tmp_path_factory)


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _reader(user=None, groups=(), default=("public",)) -> Access:
    return Access.for_principal(Principal(user, tuple(groups)), default)


# -- the basic operations ------------------------------------------------------------------------

def test_upsert_get_count_ids_and_idempotent_upsert(store):
    ids = [f"d1#c-{i:04d}" for i in range(5)]
    vecs = _vecs(5)
    metas = [{"doc_id": "d1", "acl": ["public"], "ordinal": i} for i in range(5)]
    assert store.count() == 0 and store.ids() == set()
    store.upsert(ids, vecs, metas)
    store.upsert(ids, vecs, metas)  # the same write twice changes nothing
    assert store.count() == 5 and store.ids() == set(ids)
    got = store.get(ids[:2] + ["missing"])
    assert set(got) == set(ids[:2])
    assert np.allclose(got[ids[1]][0], vecs[1], atol=1e-6) and got[ids[1]][1]["ordinal"] == 1
    store.upsert(ids[:1], vecs[:1], [{**metas[0], "ordinal": 9}])  # replaced in place
    assert store.count() == 5 and store.get(ids[:1])[ids[0]][1]["ordinal"] == 9
    store.upsert([], np.zeros((0, DIM), np.float32), [])


def test_delete_removes_and_ignores_missing_ids(store):
    ids = [f"d2#c-{i:04d}" for i in range(4)]
    store.upsert(ids, _vecs(4, 1), [{"doc_id": "d2", "acl": ["public"]}] * 4)
    store.delete(["never-stored", ids[0]])
    store.delete(["never-stored"])
    store.delete([])
    assert store.ids() == set(ids[1:]) and store.count() == 3
    assert ids[0] not in {c for c, _ in store.query(_vecs(4, 1)[0], 10)}


def test_query_ranks_by_cosine_similarity(store):
    vecs = _vecs(6, 2)
    ids = [f"d3#c-{i:04d}" for i in range(6)]
    store.upsert(ids, vecs, [{"doc_id": "d3", "acl": ["public"]}] * 6)
    got = store.query(vecs[4], 3)
    assert got[0][0] == ids[4] and got[0][1] == pytest.approx(1.0, abs=1e-4)
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True) and len(got) == 3


def test_duplicate_vectors_keep_their_own_metadata(store):
    """Chunks with one vector share a node (ingest/chroma_store.py): the scope still decides chunk by chunk."""
    v = _vecs(1, 3)
    store.upsert(["hr#c-0000", "pub#c-0000"], np.vstack([v, v]),
                 [{"doc_id": "hr", "acl": ["group:hr"]}, {"doc_id": "pub", "acl": ["public"]}])
    assert store.count() == 2 and store.ids() == {"hr#c-0000", "pub#c-0000"}
    assert {c for c, _ in store.query(v[0], 5, Scope(_reader()))} == {"pub#c-0000"}
    assert {c for c, _ in store.query(v[0], 5, Scope(_reader("x", ("hr",))))} == {"hr#c-0000", "pub#c-0000"}
    store.delete(["pub#c-0000"])
    assert store.query(v[0], 5, Scope(_reader())) == [] and store.ids() == {"hr#c-0000"}


# -- a small knowledge base: documents in the registry, their chunks in the vector store ----------------

def _corpus() -> list[tuple[SourceDoc, dict, list[Chunk]]]:
    out = []
    n = 0
    for a, acl in enumerate(ACLS):
        for t, tier in enumerate(TIERS):
            owner = OWNERS[(a + t) % len(OWNERS)]
            fm = {k: v for k, v in (("tier", tier), ("owner", owner)) if v is not None}
            text = f"{TERM} report {n}: " + " ".join(f"w{n}x{j}" for j in range(6))
            version = hashlib.sha256(text.encode()).hexdigest()
            updated = DATES[n % len(DATES)]
            doc = SourceDoc(f"doc-{n:03d}", f"{FOLDERS[n % len(FOLDERS)]}doc-{n:03d}.md", f"Report {n}",
                            DOC_TYPES[n % len(DOC_TYPES)], version, updated, updated, acl, len(text), 2)
            chunks = [Chunk(f"{doc.id}#{version[:12]}-{o:04d}", doc.id, version, o, f"{text} part {o}",
                            (doc.title,), None, None, 0, len(text), hashlib.sha256(f"{text}{o}".encode()).hexdigest(),
                            8) for o in range(2)]
            out.append((doc, fm, chunks))
            n += 1
    return out


CORPUS = _corpus()
DOC_IDS = tuple(d.id for d, _, _ in CORPUS)


class World:
    def __init__(self, registry: SqliteStore, vectors: ChromaChunkStore) -> None:
        self.registry, self.vectors = registry, vectors
        self.rows = {c.id: (doc, fm) for doc, fm, chunks in CORPUS for c in chunks}
        all_chunks = [c for _, _, cs in CORPUS for c in cs]
        vecs = _vecs(len(all_chunks), 7)
        vecs[1] = vecs[0]  # two chunks of one document share a vector: one group node
        vecs[13] = vecs[0]  # and one of another document with another ACL
        for doc, fm, chunks in CORPUS:
            registry.replace_document(doc, " ".join(c.text for c in chunks), chunks, "contract", fm)
        vectors.upsert([c.id for c in all_chunks], vecs,
                       [Ingestor._meta(doc, c, fm) for doc, fm, cs in CORPUS for c in cs])
        self.probe = vecs[0]
        self.index = KeywordIndex.build(registry)
        self.fts = ReaderFts(registry)

    def want(self, scope: Scope) -> set[str]:
        return {c for c, (doc, fm) in self.rows.items() if scope.admits(doc, fm)}

    def dense(self, scope: Scope) -> set[str]:
        return {c for c, _ in self.vectors.query(self.probe, len(self.rows), scope)}


@pytest.fixture(scope="module", params=IMPLS)
def world(request, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("chunk-store-world")
    return World(SqliteStore(root / "lore.db"), _make(request.param, request, tmp_path_factory))


SCOPES = {
    "anonymous, default public": Scope(_reader()),
    "anonymous, default private": Scope(_reader(default=("group:z",))),
    "default admits by group": Scope(_reader("u2", ("a",), default=("group:a",))),
    "user and two groups": Scope(_reader("u1", ("a", "b"), default=("group:z",))),
    "no marker token at all": Scope(Access(("group:b",))),
    "marker only": Scope(Access((DEFAULT_ACL_MARK,))),
    "doc types": Scope(_reader("u1"), Filters(doc_types=("policy", "spec"))),
    "doc ids, unresolved": Scope(_reader(), Filters(doc_ids=DOC_IDS[::3])),
    "doc ids, resolved": Scope(_reader(), doc_ids=DOC_IDS[1::4]),
    "doc ids, resolved within the id filter": Scope(_reader(), Filters(doc_ids=DOC_IDS[:6]), DOC_IDS[4:10]),
    "updated after": Scope(_reader(), Filters(updated_after=datetime(2025, 6, 30, 12, tzinfo=timezone.utc))),
    "updated before": Scope(_reader(), Filters(updated_before=datetime(2025, 6, 30, 12, tzinfo=timezone.utc))),
    "updated between": Scope(_reader(), Filters(updated_after=datetime(2025, 3, 1, tzinfo=timezone.utc),
                                                updated_before=datetime(2025, 12, 1, tzinfo=timezone.utc))),
    "metadata int": Scope(_reader(), Filters(metadata=(("tier", 1),))),
    "metadata bool": Scope(_reader(), Filters(metadata=(("tier", True),))),
    "metadata float": Scope(_reader(), Filters(metadata=(("tier", 1.0),))),
    "metadata text": Scope(_reader(), Filters(metadata=(("tier", "1"),))),
    "metadata two keys": Scope(_reader("u1", ("a", "b")), Filters(metadata=(("tier", 2), ("owner", "ops")))),
    "metadata missing key": Scope(_reader(), Filters(metadata=(("nope", "x"),))),
    "everything at once": Scope(_reader("u1", ("b",)), Filters(doc_types=("policy", "incident", "other"),
                                                               updated_before=datetime(2026, 1, 1, tzinfo=timezone.utc),
                                                               metadata=(("owner", "payments"),)), DOC_IDS[::2]),
}


@pytest.mark.parametrize("name", SCOPES)
def test_query_admits_exactly_what_the_scope_admits(world, name):
    scope = SCOPES[name]
    want = world.want(scope)
    assert world.dense(scope) == want, name
    assert world.registry.permitted_chunks(list(world.rows), scope) == want, name


def test_scope_filters_are_not_vacuous():
    """The fixed scopes above each admit some chunks and exclude others (else they would prove nothing)."""
    rows = {c.id: (doc, fm) for doc, fm, cs in CORPUS for c in cs}
    for name, scope in SCOPES.items():
        n = sum(scope.admits(doc, fm) for doc, fm in rows.values())
        assert (0 < n < len(rows)) or name == "metadata missing key", (name, n)


def test_a_scope_naming_no_document_admits_nothing(world):
    assert world.dense(Scope(_reader(), doc_ids=())) == set()
    assert world.registry.permitted_chunks(list(world.rows), Scope(_reader(), doc_ids=())) == set()


def test_an_unresolved_path_filter_is_refused_not_ignored(world):
    """Chroma has no prefix operator: a path filter must reach it resolved to ids, never be dropped."""
    with pytest.raises(ValueError, match="resolve"):
        world.vectors.query(world.probe, 5, Scope(_reader(), Filters(path_prefix="/kb/")))
    with pytest.raises(ValueError, match="resolve"):
        chroma_where(Scope(_reader(), Filters(path_prefix="/kb/")))
    assert "substr" in scope_sql(Scope(_reader(), Filters(path_prefix="/kb/")))[0]


# -- every encoding admits the same chunks ------------------------------------------------------------

tokens = st.sets(st.sampled_from(("public", "group:a", "group:b", "group:z", "user:u1")))
times = st.sampled_from([datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2025, 6, 30, 12, tzinfo=timezone.utc),
                         datetime(2025, 9, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, 8, 30, tzinfo=timezone.utc)])
metadata = st.lists(st.one_of(st.tuples(st.just("tier"), st.sampled_from(TIERS[1:])),
                              st.tuples(st.just("owner"), st.sampled_from(OWNERS[1:]))), max_size=2, unique_by=lambda kv: kv[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(user=st.sampled_from((None, "u1", "u2")), groups=st.sets(st.sampled_from(("a", "b", "c"))), default=tokens,
       types=st.sets(st.sampled_from(DOC_TYPES), max_size=3),
       ids=st.none() | st.sets(st.sampled_from(DOC_IDS), max_size=8),
       prefix=st.sampled_from((None, "/kb/", "/kb/a_b/", "/kb/a", "/KB/", "/kb/a%")),
       after=st.none() | times, before=st.none() | times, meta=metadata)
def test_every_encoding_admits_the_same_chunks(world, user, groups, default, types, ids, prefix, after, before, meta):
    if after and before and after > before:
        after, before = before, after
    f = Filters(doc_types=tuple(sorted(types)), doc_ids=tuple(sorted(ids or ())), path_prefix=prefix,
                updated_after=after, updated_before=before, metadata=tuple(meta))
    access = Access.for_principal(Principal(user, tuple(sorted(groups))), tuple(sorted(default)))
    scope = Scope(access, f)
    want = world.want(scope)
    assert world.registry.permitted_chunks(list(world.rows), scope) == want  # SQL, path filter unresolved
    if f.doc_ids or f.path_prefix:  # as the retriever does: the id and path filters become ids first
        named = Scope(access, Filters(doc_ids=f.doc_ids, path_prefix=f.path_prefix))
        scope = scope.resolved(sorted(world.registry.doc_ids_in(named)))
    assert world.want(scope) == want
    assert world.registry.permitted_chunks(list(world.rows), scope) == want  # SQL, resolved
    assert world.dense(scope) == want  # Chroma's where
    assert {c for c, _ in world.registry.keyword_search(TERM, 10_000, scope=scope)} == want  # FTS5 MATCH + SQL
    assert {c for c, _ in world.fts.search([TERM], 10_000, (1.0, 1.0, 1.0), scope)} == want  # reader's BM25
    mask = world.index.permitted(access, world.registry.doc_ids_in(scope) if scope.narrowed else None)
    assert {c for c, ok in zip(world.index.chunk_ids, mask) if ok} == want  # the keyword index's mask
    docs = set(world.registry.doc_ids_in(scope))
    assert docs == {world.rows[c][0].id for c in want}
