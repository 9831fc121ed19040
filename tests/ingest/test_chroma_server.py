"""LORE_CHROMA_URL: the same ingest against a real `chroma run` server on loopback."""


import pytest

from tests.support import snapshot
from tests.support.chroma import chroma_server  # noqa: F401 - fixture
from tests.support.live import free_port


def test_ingest_update_delete_against_chroma_server(tmp_path, corpus, embedder, chroma_server):
    from ingest.access import Access, Filters, Scope
    from ingest.chroma_store import ChromaChunkStore
    from ingest.pipeline import Ingestor, doc_id_for
    from ingest.types import DEFAULT_ACL_MARK
    from ingest.sqlite_store import SqliteStore

    ing = Ingestor(SqliteStore(tmp_path / "kb" / "lore.db"), ChromaChunkStore(embedder.model_id, url=chroma_server),
                   embedder, parse_workers=0)
    rep = ing.ingest([corpus])
    assert rep.added == 10 and rep.failed == []
    snap = snapshot(ing)
    assert snap["vector_ids"] == set(snap["chunks"])
    # a filtered query works on the server
    v = embedder.embed_query("how many requests per minute can an API key send?")
    anyone = Access(tuple(sorted({t for d in ing.store.documents() for t in d.acl} | {DEFAULT_ACL_MARK})))
    hits = ing.vectors.query(v, 3, Scope(anyone, Filters(doc_types=("spec",))))
    assert hits and hits[0][0].startswith(doc_id_for(corpus / "specs" / "payments-api.md"))
    (corpus / "specs" / "payments-api.md").unlink()
    assert ing.ingest([corpus]).deleted == 1
    assert not any(i.startswith("payments-api") for i in ing.vectors.ids())


def test_unreachable_server_is_a_clear_error(tmp_path, embedder):
    from ingest.chroma_store import ChromaChunkStore
    from ingest.errors import ConfigError, StoreError

    with pytest.raises(StoreError, match="LORE_CHROMA_URL"):
        ChromaChunkStore(embedder.model_id, url=f"http://127.0.0.1:{free_port()}").count()
    with pytest.raises(ConfigError, match="not a URL"):
        ChromaChunkStore(embedder.model_id, url="chroma:8000").count()
