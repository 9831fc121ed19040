"""What the tests share: paths of the repository and the corpora, and checks used by several packages' tests.

Fakes, drivers and builders live in the modules beside this one (`tests.support.live`, `...fake_slack`, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "acme"
ENTERPRISE = REPO.parent / "shared" / "corpora" / "enterprise"
ENTERPRISE_DIRS = [ENTERPRISE / d for d in ("policies", "specs", "incidents")]
LORE = str(Path(sys.executable).parent / "lore")


def snapshot(ingestor) -> dict:
    """Everything a knowledge base holds, minus ingest timestamps: for exact equality checks."""
    store, vectors = ingestor.store, ingestor.vectors
    docs = {d.id: (d.uri, d.title, d.doc_type, d.version, d.acl, d.chunk_count) for d in store.documents()}
    chunks = {}
    for doc_id in docs:
        for c in store.chunks(doc_id):
            chunks[c.id] = (c.text, c.section, c.start, c.end, c.page_start, c.page_end, c.content_hash)
    fts = store._db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
    ids = vectors.ids()
    got = vectors.get(sorted(ids)) if ids else {}
    vec_meta = {i: (m["doc_id"], m["version"], tuple(m["acl"])) for i, (_, m) in got.items()}
    return {"docs": docs, "chunks": chunks, "fts_rows": fts, "vector_ids": ids, "vector_meta": vec_meta}
