"""Property tests: over random ACLs, principals and default ACLs, search shows exactly what may be read.

One small store per module (HashEmbedder, real SQLite, embedded Chroma) holds a document for every
ACL over a small token alphabet, twice (with and without the query term), plus documents whose
stored ACL is malformed. Each example varies only the principal, the default ACL, the filters and
the mode, and compares the result with an independent oracle.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from ingest.errors import ConfigError
from ingest.types import DEFAULT_ACL_MARK, DOC_TYPES, SourceDoc
from ingest.access import Access
from ingest.access import doc_matches
from ingest.access import Filters, Principal
from tests.support.acl_world import ALL_TOKENS, defaults, oracle_readable, principals, type_filters, world  # noqa: F401
# the tests shared with retriever/test_keyword_index.py (run again there with the in-memory index)
from tests.support.acl_suite import (  # noqa: F401
    test_search_returns_exactly_the_readable_matching_documents,
    test_top_k_is_filled_from_readable_documents_even_with_shallow_searches,
)

NAME_OK = re.compile(r"[A-Za-z0-9._@+\-]{1,128}")  # the documented id/group alphabet, whole string
TOKEN_OK = re.compile(r"public|(user|group):[A-Za-z0-9._@+\-]{1,128}")


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
