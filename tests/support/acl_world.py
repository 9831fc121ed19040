"""The permission property tests' world (documents under every ACL) and hypothesis strategies."""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ingest.chroma_store import ChromaChunkStore
from ingest.embedders import HashEmbedder
from ingest.pipeline import Ingestor
from ingest.sqlite_store import SqliteStore
from ingest.types import DOC_TYPES, Chunk, SourceDoc

USERS = ("u1", "u2", "u3")  # u3 appears in no stored ACL
GROUPS = ("g1", "g2", "g3")  # g3 appears in no stored ACL
STORED_TOKENS = ("public", "user:u1", "user:u2", "group:g1", "group:g2")
ALL_TOKENS = STORED_TOKENS + ("user:u3", "group:g3")
TERM = "falcon"
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
