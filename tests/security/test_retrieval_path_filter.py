"""M1: the id and path filters are resolved over readable documents only, so a prefix (or id) that names
only hidden documents takes exactly the code path of one that names nothing: the same calls, no search,
no timing difference to measure. Structural checks on the real retriever, not timings."""

from __future__ import annotations

import os

import pytest

from retriever.search import Retriever
from ingest.access import Filters, Principal

MODES = ("hybrid", "dense", "keyword")
READER, HR = Principal("sam"), Principal("ana", ("hr",))


class Spy:
    """Records the names of the methods called on the wrapped object, and what doc_ids_in returned."""

    def __init__(self, inner, log: list):
        self._inner, self._log = inner, log

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*a, **kw):
            out = attr(*a, **kw)
            self._log.append((name, tuple(out) if name == "doc_ids_in" else None))
            return out
        return call


@pytest.fixture(scope="module")
def kb(tmp_path_factory, embedder):
    from ingest.chroma_store import ChromaChunkStore
    from ingest.pipeline import Ingestor
    from ingest.sqlite_store import SqliteStore

    root = tmp_path_factory.mktemp("path-filter")
    for name, text in {"salaries-2026.md": "Salary bands for 2026: engineers 90k to 140k.",
                       "layoffs-plan.md": "Confidential: the restructuring plan for the PTO policy team."}.items():
        (root / "docs" / "hr-private").mkdir(parents=True, exist_ok=True)
        (root / "docs" / "hr-private" / name).write_text(f"# {name}\n\n{text}\n")
    (root / "docs" / "public").mkdir()
    (root / "docs" / "public" / "pto.md").write_text("# PTO\n\nEmployees carry over up to 40 hours of PTO.\n")
    ing = Ingestor(SqliteStore(root / "kb" / "lore.db"), ChromaChunkStore(embedder.model_id, path=root / "kb" / "chroma"),
                   embedder, parse_workers=0)
    ing.ingest([root / "docs" / "hr-private"], acl=["group:hr"])
    ing.ingest([root / "docs" / "public"])
    hidden = {d.id for d in ing.store.documents() if d.acl == ("group:hr",)}
    assert len(hidden) == 2
    return ing, root / "docs", hidden


def traced_search(ing, who: Principal, f: Filters, mode: str):
    log: list = []
    r = Retriever(Spy(ing.store, log), Spy(ing.vectors, log), Spy(ing.embedder, log))
    res = r.search("PTO policy salary plan", who, f, top_k=5, mode=mode)
    return res, log


@pytest.mark.parametrize("mode", MODES)
def test_a_filter_naming_only_hidden_documents_runs_exactly_like_one_naming_nothing(kb, mode):
    ing, docs, hidden = kb
    hidden_path = str(docs / "hr-private") + os.sep
    pairs = [(Filters(path_prefix=hidden_path), Filters(path_prefix=str(docs / "no-such-folder") + os.sep)),
             (Filters(path_prefix=str(docs / "hr-private" / "salaries")), Filters(path_prefix=str(docs / "zz"))),
             (Filters(doc_ids=tuple(sorted(hidden))), Filters(doc_ids=("no-such-doc-00000000",)))]
    for hidden_f, missing_f in pairs:
        got, calls = traced_search(ing, READER, hidden_f, mode)
        want, want_calls = traced_search(ing, READER, missing_f, mode)
        assert got.hits == want.hits == ()
        assert calls == want_calls  # the same calls, in the same order, with the same resolved ids (none)
        assert set(got.timings_ms) == set(want.timings_ms) == {"fuse", "total"}  # no embedding, no search
        assert not any(name in ("embed_query", "query", "keyword_search", "permitted_chunks") for name, _ in calls)
    # the owners of those documents get them through the same filters
    res, _ = traced_search(ing, HR, pairs[0][0], mode)
    assert {h.doc.id for h in res.hits} == hidden


def test_resolved_ids_never_include_documents_the_principal_cannot_read(kb):
    ing, docs, hidden = kb
    everything = {d.id for d in ing.store.documents()}
    for who, readable in ((READER, everything - hidden), (HR, everything)):
        for f in (Filters(path_prefix=str(docs)), Filters(path_prefix=str(docs / "hr")), Filters(path_prefix="/"),
                  Filters(doc_ids=tuple(sorted(everything))), Filters(path_prefix=str(docs), doc_ids=tuple(hidden))):
            for mode in MODES:
                _, calls = traced_search(ing, who, f, mode)
                resolved = [ids for name, ids in calls if name == "doc_ids_in"][0]
                assert set(resolved) <= readable, (who, f, mode)
                assert set(resolved) == {d for d in readable if ing.store.get_document(d).uri.startswith(f.path_prefix or "")
                                         and (not f.doc_ids or d in f.doc_ids)}
