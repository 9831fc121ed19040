"""Permission properties run with both keyword backends: retriever/test_keyword_index.py patches `Retriever`."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from retriever.search import RetrievalConfig, Retriever
from ingest.access import Filters, Principal
from tests.support.acl_world import (  # noqa: F401
    PROPS,
    TERM,
    defaults,
    modes,
    oracle_readable,
    principals,
    type_filters,
    world,
)


@PROPS
@given(who=principals, default=defaults, mode=modes, types=type_filters)
@example(who=(None, set()), default=set(), mode="dense", types=set())
@example(who=("u3", {"g3"}), default={"user:u3"}, mode="hybrid", types=set())
def test_search_returns_exactly_the_readable_matching_documents(world, who, default, mode, types):
    store, vectors, embedder, by_id = world
    user, groups = who
    r = Retriever(store, vectors, embedder, default_acl=tuple(sorted(default)))
    res = r.search(TERM, Principal(user, tuple(sorted(groups))), Filters(doc_types=tuple(sorted(types))),
                   top_k=500, mode=mode)
    got = {h.doc.id for h in res.hits} | {a.doc_id for h in res.hits for a in h.alternatives}
    readable = {d for d, (acl, _, t) in by_id.items()
                if oracle_readable(acl, user, groups, default) and (not types or t in types)}
    with_term = {d for d, (_, has, _) in by_id.items() if has}
    assert got <= readable  # every hit is readable (and of a requested type)
    assert readable & with_term <= got  # every readable document with the term is found
    if mode == "keyword":
        assert got <= with_term
    else:
        assert got == readable  # the dense side returns every permitted passage up to its depth
    assert not any(d.startswith("malformed-") for d in got)  # a malformed stored token grants nothing
    for h in res.hits:
        assert h.chunk.version == h.doc.version and h.doc.acl == by_id[h.doc.id][0]


@PROPS
@given(who=principals, default=defaults, mode=modes, k=st.integers(1, 12))
def test_top_k_is_filled_from_readable_documents_even_with_shallow_searches(world, who, default, mode, k):
    store, vectors, embedder, by_id = world
    user, groups = who
    r = Retriever(store, vectors, embedder, default_acl=tuple(sorted(default)), config=RetrievalConfig(depth=1))
    res = r.search(TERM, Principal(user, tuple(sorted(groups))), top_k=k, mode=mode)
    readable = {d for d, (acl, has, _) in by_id.items()
                if oracle_readable(acl, user, groups, default) and (has or mode != "keyword")}
    assert len(res.hits) == min(k, len(readable))
    assert {h.doc.id for h in res.hits} <= readable
