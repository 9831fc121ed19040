"""Property tests: over random ACLs, principals and default ACLs, search shows exactly what may be read.

One small store per module (HashEmbedder, real SQLite, embedded Chroma) holds a document for every
ACL over a small token alphabet, twice (with and without the query term), plus documents whose
stored ACL is malformed. Each example varies only the principal, the default ACL, the filters and
the mode, and compares the result with an independent oracle.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ingest.chroma_store import ChromaChunkStore
from ingest.embedders import HashEmbedder
from ingest.errors import ConfigError
from ingest.pipeline import Ingestor
from ingest.sqlite_store import SqliteStore
from ingest.types import DEFAULT_ACL_MARK, DOC_TYPES, Chunk, SourceDoc
from ingest.access import Access
from ingest.access import doc_matches
from retriever.search import RetrievalConfig, Retriever
from ingest.access import Filters, Principal

USERS = ("u1", "u2", "u3")  # u3 appears in no stored ACL
GROUPS = ("g1", "g2", "g3")  # g3 appears in no stored ACL
STORED_TOKENS = ("public", "user:u1", "user:u2", "group:g1", "group:g2")
ALL_TOKENS = STORED_TOKENS + ("user:u3", "group:g3")
TERM = "falcon"
NAME_OK = re.compile(r"[A-Za-z0-9._@+\-]{1,128}")  # the documented id/group alphabet, whole string
TOKEN_OK = re.compile(r"public|(user|group):[A-Za-z0-9._@+\-]{1,128}")
MALFORMED_STORED = (("everyone",), ("group:",), ("Group:g1",), ("group:g1 ",), ("user:u1,group:g1",),
                    ("group:g1\n",), ("PUBLIC",), ("*",))
PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oracle_readable(acl: tuple[str, ...], user: str | None, groups: set[str], default: set[str]) -> bool:
    """Independent statement of the rule: tokens intersect; an empty ACL means the default ACL."""
    mine = {"public"} | {f"group:{g}" for g in groups} | ({f"user:{user}"} if user else set())
    return bool(set(acl or default) & mine)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """64 documents (every ACL subset x with/without the term) + malformed-ACL ones, ingested once."""
    root = tmp_path_factory.mktemp("acl-world")
    corpus = root / "corpus"
    corpus.mkdir()
    docs = {}  # file name -> (acl, has_term, doc_type)
    subsets = [c for r in range(len(STORED_TOKENS) + 1) for c in itertools.combinations(STORED_TOKENS, r)]
    n = 0
    for acl in subsets:
        for has_term in (True, False):
            doc_type = DOC_TYPES[n % len(DOC_TYPES)]
            words = " ".join(f"w{n}x{j}" for j in range(10))  # unique words: no near-duplicates
            body = f"{TERM} sighting {n}: {words}" if has_term else f"heron sighting {n}: {words}"
            fm = [f"title: Report {n}", f"doc_type: {doc_type}"] + ([f"acl: [{', '.join(acl)}]"] if acl else [])
            name = f"r{n:03d}.md"
            (corpus / name).write_text("---\n" + "\n".join(fm) + f"\n---\n# Report {n}\n\n{body}\n")
            docs[name] = (acl, has_term, doc_type)
            n += 1
    store = SqliteStore(root / "kb" / "lore.db")
    embedder = HashEmbedder()
    vectors = ChromaChunkStore(embedder.model_id, path=root / "kb" / "chroma")
    ing = Ingestor(store, vectors, embedder, parse_workers=0)
    rep = ing.ingest([corpus])
    assert rep.failed == [] and rep.added == len(docs) == 64
    by_id = {}
    for d in store.documents():
        acl, has_term, doc_type = docs[d.uri.rsplit("/", 1)[-1]]
        assert d.acl == tuple(sorted(acl)) and d.doc_type == doc_type
        by_id[d.id] = (d.acl, has_term, doc_type)
    # malformed ACL tokens cannot come through ingest; write them as a buggy writer would, everywhere
    for i, acl in enumerate(MALFORMED_STORED):
        doc_id = f"malformed-{i}"
        text = f"{TERM} sighting malformed {i}: " + " ".join(f"m{i}x{j}" for j in range(10))
        version = hashlib.sha256(text.encode()).hexdigest()
        doc = SourceDoc(doc_id, f"/virtual/{doc_id}.md", f"Malformed {i}", "other", version,
                        datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(), "2026-01-01T00:00:00+00:00", acl,
                        len(text), 1)
        chunk = Chunk(f"{doc_id}#{version[:12]}-0000", doc_id, version, 0, text, (doc.title,), None, None, 0,
                      len(text), hashlib.sha256(text.encode()).hexdigest(), len(text.split()))
        store.replace_document(doc, text, [chunk], "manual")
        vectors.upsert([chunk.id], embedder.embed_documents([text]), [Ingestor._meta(doc, chunk)])
        by_id[doc_id] = (acl, True, "other")
    return store, vectors, embedder, by_id


principals = st.builds(lambda u, g: (u, g), st.sampled_from((None,) + USERS), st.sets(st.sampled_from(GROUPS)))
defaults = st.sets(st.sampled_from(ALL_TOKENS))
modes = st.sampled_from(("hybrid", "dense", "keyword"))
type_filters = st.sets(st.sampled_from(DOC_TYPES), max_size=3)


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


# -- pure functions ------------------------------------------------------------------------------

acls = st.sets(st.sampled_from(ALL_TOKENS)).map(lambda s: tuple(sorted(s)))
malformed_tokens = st.one_of(
    st.sampled_from(["everyone", "group:", "user:", "Group:g1", "group:g1 ", " public", "PUBLIC", "group:g 1",
                     "user:u1,group:g1", "group:g1\n", "public\n", "*", ""]),
    st.text(max_size=20).filter(lambda t: not TOKEN_OK.fullmatch(t) and t != DEFAULT_ACL_MARK),
)


def _doc(acl: tuple[str, ...], doc_type: str = "policy", uri: str = "/kb/policies/a.md",
         updated: str = "2026-03-01T00:00:00+00:00") -> SourceDoc:
    return SourceDoc("a-00000000", uri, "A", doc_type, "v" * 64, updated, updated, acl)


@given(acl=acls, who=principals, default=defaults)
def test_can_read_matches_the_rule(acl, who, default):
    user, groups = who
    access = Access.for_principal(Principal(user, tuple(sorted(groups))), tuple(sorted(default)))
    assert access.can_read(_doc(acl)) == oracle_readable(acl, user, groups, default)
    assert doc_matches(access, Filters(), _doc(acl), {}) == oracle_readable(acl, user, groups, default)


@given(bad=st.lists(malformed_tokens, min_size=1, max_size=3), who=principals, default=defaults)
def test_malformed_doc_acl_token_matches_no_principal(bad, who, default):
    user, groups = who
    access = Access.for_principal(Principal(user, tuple(sorted(groups))), tuple(sorted(default)))
    assert not access.can_read(_doc(tuple(bad)))
    assert not doc_matches(access, Filters(), _doc(tuple(bad)), {})


def test_stored_default_marker_token_is_not_a_grant():
    """A stored ACL of the literal marker is malformed (ingest never writes it): it must grant nothing.

    Only an empty stored ACL means "the default ACL applies"; FILTERS.md: a malformed token matches no
    principal. (Reported: `Access.can_read` treats a literal '@default' like an empty ACL.)
    """
    access = Access.for_principal(Principal("ana"), ("public",))
    assert not access.can_read(_doc((DEFAULT_ACL_MARK,)))


@given(name=st.text(max_size=140).filter(lambda s: not NAME_OK.fullmatch(s)))
@example(name="bob\n")
@example(name="")
@example(name="a" * 129)
@example(name="ana,bob")
@example(name="group:hr")
def test_principal_rejects_malformed_ids(name):
    if name:  # an empty user id means anonymous
        with pytest.raises(ConfigError, match="user id"):
            Principal(name)
    with pytest.raises(ConfigError, match="group"):
        Principal("ana", (name,))


@given(user=st.from_regex(NAME_OK, fullmatch=True), groups=st.lists(st.from_regex(NAME_OK, fullmatch=True), max_size=3))
def test_valid_principals_have_well_formed_tokens(user, groups):
    p = Principal.of(user, groups)
    toks = p.tokens()
    assert "public" in toks and f"user:{user}" in toks and {f"group:{g}" for g in groups} <= set(toks)
    assert all(TOKEN_OK.fullmatch(t) for t in toks)
    assert Principal.of(user, ",".join(groups)) == p  # comma-separated form, as the CLI passes it


scalars = st.one_of(st.sampled_from(["payments", "1", "true", ""]), st.integers(-2, 2), st.booleans(),
                    st.sampled_from([1.0, 2.5, -0.5]))
front_matters = st.dictionaries(st.sampled_from(["owner", "tier", "pci"]), scalars, max_size=3)
times = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1),
                     timezones=st.just(timezone.utc)).map(lambda d: d.replace(microsecond=0))


@given(fm=front_matters, want=st.lists(st.tuples(st.sampled_from(["owner", "tier", "pci"]), scalars), max_size=2),
       types=type_filters, doc_type=st.sampled_from(DOC_TYPES), prefix=st.sampled_from(["", "/kb/", "/kb/pol", "/KB/"]),
       updated=times, after=st.none() | times, before=st.none() | times, ids=st.sampled_from([(), ("a-00000000",),
                                                                                             ("b-00000000",)]))
def test_doc_matches_applies_every_filter(fm, want, types, doc_type, prefix, updated, after, before, ids):
    assume(not (after and before and after > before))
    f = Filters(doc_types=tuple(types), doc_ids=ids, path_prefix=prefix or None, updated_after=after,
                updated_before=before, metadata=tuple(want))
    doc = _doc(("public",), doc_type, "/kb/policies/a.md", updated.isoformat())
    expect = ((not types or doc_type in types) and (not ids or doc.id in ids)
              and "/kb/policies/a.md".startswith(prefix)
              and (after is None or updated >= after) and (before is None or updated <= before)
              and all(k in fm and type(fm[k]) is type(v) and fm[k] == v for k, v in want))
    assert doc_matches(Access.for_principal(Principal(), ("public",)), f, doc, fm) == expect


def test_every_document_acl_is_in_the_vector_metadata(world):
    """The dense pre-filter sees the same ACL as the registry (empty ACL -> the default marker)."""
    store, vectors, _, by_id = world
    meta = vectors.get(sorted(vectors.ids()))
    assert len(meta) == len(by_id)
    for _, m in meta.values():
        acl = by_id[m["doc_id"]][0]
        assert m["acl"] == (list(acl) or [DEFAULT_ACL_MARK])
    assert np.isfinite([v for v, _ in meta.values()]).all()
