"""Hybrid retrieval: dense (Chroma) and keyword (FTS5 BM25) under the same pre-filter, fused, collapsed."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import numpy as np

from ingest.chroma_store import ChunkStore
from ingest.embedders import Embedder
from ingest.errors import ConfigError, InvalidInput
from ingest.keywords import query_terms
from ingest.sqlite_store import SqliteStore
from ingest.types import PUBLIC
from retriever.dedupe import collapse
from retriever.bm25 import ReaderFts
from ingest.access import Access, Filters, Principal, Scope
from retriever.fusion import fuse
from retriever.keyword_index import KeywordAccelerator
from retriever.types import Hit, SearchResult

log = logging.getLogger(__name__)
Mode = Literal["hybrid", "dense", "keyword"]
OVERFETCH = 8  # unfiltered neighbours fetched per wanted dense candidate before falling back to Chroma's filter
MAX_OVERFETCH = 2000
SHARE_MARGIN = 1.5  # neighbours fetched per wanted one, over the readable share, when the share is known


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant.

    >>> reranker.score("pto carry over", ["Up to five days carry over."])  # -> [4.2]
    """

    model_id: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    fusion: Literal["zscore", "weighted", "rrf"] = "zscore"
    dense_weight: float = 0.7  # share of the dense side (docs/decisions/0003-fusion.md)
    rrf_k: int = 60
    depth: int = 100  # candidates taken from each search before fusion
    field_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # BM25 weight of title, section, body
    dedup_threshold: float = 0.8  # word-shingle Jaccard at which two passages count as the same text
    rerank_depth: int = 30

    def __post_init__(self) -> None:
        if self.fusion not in ("zscore", "weighted", "rrf"):
            raise ConfigError(f"retrieval fusion must be zscore, weighted or rrf, got {self.fusion!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"retrieval dense_weight must be within 0..1, got {self.dense_weight}")
        if self.depth < 1 or self.rrf_k < 1 or self.rerank_depth < 1:
            raise ConfigError("retrieval depth, rrf_k and rerank_depth must be at least 1")
        if not 0.0 < self.dedup_threshold <= 1.0:
            raise ConfigError(f"retrieval dedup_threshold must be within (0, 1], got {self.dedup_threshold}")


class Retriever:
    """Decides what Lore can cite: only current, permitted, matching passages, best first."""

    def __init__(self, store: SqliteStore, vectors: ChunkStore, embedder: Embedder, *,
                 default_acl: Sequence[str] = (PUBLIC,), config: RetrievalConfig | None = None,
                 reranker: Reranker | None = None, keyword_index: KeywordAccelerator | None = None) -> None:
        self.store, self.vectors, self.embedder = store, vectors, embedder
        self.default_acl = tuple(default_acl)
        self.config = config or RetrievalConfig()
        self.reranker = reranker
        if keyword_index is not None and keyword_index.weights != tuple(self.config.field_weights):
            raise ConfigError(f"keyword index field weights {keyword_index.weights} differ from the retrieval "
                              f"config's {self.config.field_weights}")
        self.keyword_index = keyword_index  # None: FTS5 answers every keyword search
        self._fts = ReaderFts(store)

    def search(self, query: str, principal: Principal, filters: Filters | None = None, top_k: int = 10,
               mode: Mode = "hybrid") -> SearchResult:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("the search query is empty; type what you are looking for")
        if top_k < 1:
            raise InvalidInput(f"top_k must be at least 1, got {top_k}")
        if mode not in ("hybrid", "dense", "keyword"):
            raise InvalidInput(f"search mode {mode!r} is not one of hybrid, dense, keyword")
        scope = Scope(Access.for_principal(principal, self.default_acl), filters or Filters())
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        scope = self._resolve_doc_ids(scope)
        depth = max(self.config.depth, top_k * 2)
        dense: list[tuple[str, float]] = []
        keyword: list[tuple[str, float]] = []
        if scope.doc_ids != ():
            if mode in ("hybrid", "dense"):
                t1 = time.perf_counter()
                vec = self.embedder.embed_query(query)
                t["embed"] = time.perf_counter() - t1
                t1 = time.perf_counter()
                dense = self._dense(vec, depth, scope)
                t["dense"] = time.perf_counter() - t1
            if mode in ("hybrid", "keyword"):
                t1 = time.perf_counter()
                keyword = self._keyword(query, depth, scope)
                t["keyword"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        fused = fuse(dense, keyword, self.config.fusion, self.config.dense_weight, self.config.rrf_k)
        need = max(top_k, self.config.rerank_depth) if self.reranker is not None else top_k
        hits = self._hydrate_collapsed(fused, dense, keyword, scope, need)
        t["fuse"] = time.perf_counter() - t1
        if self.reranker is not None and hits:
            t1 = time.perf_counter()
            hits = self._rerank(query, hits)
            t["rerank"] = time.perf_counter() - t1
        hits = [_with_rank(h, i + 1) for i, h in enumerate(hits[:top_k])]
        t["total"] = time.perf_counter() - t0
        log.debug("search %r -> %d hits (dense %d, keyword %d)", query[:80], len(hits), len(dense), len(keyword))
        return SearchResult(query, tuple(hits), {k: round(v * 1000, 2) for k, v in t.items()})

    # -- steps ---------------------------------------------------------------------------------
    def _dense(self, vec, depth: int, scope: Scope) -> list[tuple[str, float]]:
        """The `depth` nearest current chunks the principal may read and the filters admit.

        Two exact strategies, chosen per query (FILTERS.md): an over-fetch of the unfiltered neighbours
        checked against the registry (one SQL query, or the keyword index's permission mask), cheap while
        the principal reads a fair share of the index; else Chroma's own pre-filtered search. Either way only permitted chunks ever take a
        candidate slot, and a superseded vector (an ingest in flight, or a crash before reconcile) never
        does. Both return the same chunks, up to the index's approximation.
        """
        if scope.doc_ids is None:
            readable, share = self._readable_check(scope)
            # with the exact readable share (the keyword index's mask) fetch what should hold `depth`
            # readable neighbours with a margin; without it, a fixed over-fetch
            want = OVERFETCH * depth if share is None else int(SHARE_MARGIN * depth / max(share, 1e-9))
            n = min(max(want, depth), MAX_OVERFETCH)
            for _ in range(2):
                got = self.vectors.query(vec, n)
                ok = readable([c for c, _ in got])
                dense = [(c, s) for c, s in got if c in ok]
                if len(dense) >= depth or len(got) < n:
                    return dense[:depth]
                share = len(dense) / max(len(got), 1)
                want = int(1.5 * depth / share) if share > 0 else MAX_OVERFETCH + 1
                if want > MAX_OVERFETCH or n >= MAX_OVERFETCH:
                    break
                n = max(want, 2 * n)
        n = depth
        while True:
            got = self.vectors.query(vec, n, scope)
            live = self.store.permitted_chunks([c for c, _ in got], scope)
            dense = [(c, s) for c, s in got if c in live]
            if len(got) < n or len(dense) >= depth or n >= 16 * depth:
                return dense[:depth]
            n *= 4

    def _readable_check(self, scope: Scope):  # scope.doc_ids is None here
        """(ids -> the current, permitted, matching ones; the share of chunks readable, when known).

        With no filter beyond permissions and a current keyword index this is a lookup in the index's
        permission mask (the same rule, FILTERS.md), whose share is exact; otherwise one SQL query over
        the registry, share unknown."""
        idx = self.keyword_index.current() if self.keyword_index is not None and not scope.narrowed else None
        if idx is None:
            return (lambda ids: self.store.permitted_chunks(ids, scope)), None
        allowed = idx.permitted(scope.access)

        def check(ids: list[str]) -> set[str]:
            pos = idx.positions(ids)
            return {c for c, p in zip(ids, pos) if p >= 0 and allowed[p]}
        return check, np.count_nonzero(allowed) / max(len(allowed), 1)

    def _keyword(self, query: str, depth: int, scope: Scope) -> list[tuple[str, float]]:
        """BM25 over permitted, matching chunks with the reader's statistics (retriever/bm25.py): the
        in-memory index while it is current, else FTS5's postings.

        Both apply the same condition before choosing the top `depth` (FILTERS.md), so both fill it.
        """
        if self.keyword_index is not None:
            got = self.keyword_index.search(query, depth, scope)
            if got is not None:
                return got
        return self._fts.search(query_terms(query), depth, self.config.field_weights, scope)

    def _resolve_doc_ids(self, scope: Scope) -> Scope:
        """The scope with the id and path filters resolved to doc ids (`doc_ids`: None = unrestricted,
        () = nothing).

        Resolved over the documents the principal may read (FILTERS.md): a filter that names only hidden
        documents resolves to (), exactly as one naming none, and neither search runs, so the answer and
        the time it takes are those of a miss."""
        f = scope.filters
        if not f.doc_ids and not f.path_prefix:
            return scope
        named = Scope(scope.access, Filters(doc_ids=f.doc_ids, path_prefix=f.path_prefix))
        return scope.resolved(sorted(self.store.doc_ids_in(named)))

    def _hydrate_collapsed(self, fused, dense, keyword, scope: Scope, need: int) -> list[Hit]:
        """The best `need` distinct passages: hydrated window by window, near-duplicates collapsed.

        Candidates after the window that filled `need` are not read; duplicates of kept passages are
        looked for within the windows read (at least 3·need candidates).
        """
        window = max(3 * need, 30)
        hits: list[Hit] = []
        for start in range(0, len(fused), window):
            hits += self._hydrate(fused[start:start + window], dense, keyword, scope)
            kept = collapse(hits, self.config.dedup_threshold, keep=need)
            if len(kept) >= need:
                return kept
        return collapse(hits, self.config.dedup_threshold, keep=need)

    def _hydrate(self, fused: list[tuple[str, float]], dense, keyword, scope: Scope) -> list[Hit]:
        """Chunks and documents from the registry (the current version only), checked once more."""
        ids = [cid for cid, _ in fused]
        chunks = self.store.get_chunks(ids)  # a vector of a superseded version has no row: dropped
        docs = self.store.get_documents({c.doc_id for c in chunks.values()})
        d_rank = {cid: (i + 1, s) for i, (cid, s) in enumerate(dense)}
        k_rank = {cid: (i + 1, s) for i, (cid, s) in enumerate(keyword)}
        hits = []
        for cid, score in fused:
            chunk = chunks.get(cid)
            if chunk is None or chunk.doc_id not in docs:
                continue
            doc, fm = docs[chunk.doc_id]
            if chunk.version != doc.version or not scope.admits(doc, fm):
                log.warning("dropped %s after the pre-filter: index and registry disagree", cid)
                continue
            dr, ds = d_rank.get(cid, (None, None))
            kr, ks = k_rank.get(cid, (None, None))
            hits.append(Hit(chunk, doc, score, 0, dr, ds, kr, ks))
        return hits

    def _rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if self.reranker is None:
            return hits
        head, tail = hits[:self.config.rerank_depth], hits[self.config.rerank_depth:]
        scores = self.reranker.score(query, [f"{h.doc.title}\n{h.chunk.text}" for h in head])
        ranked = sorted(zip(head, scores), key=lambda p: -p[1])
        out = [_replace(h, score=float(s), rerank_score=float(s)) for h, s in ranked]
        return out + tail


def _replace(h: Hit, **kw) -> Hit:
    from dataclasses import replace

    return replace(h, **kw)


def _with_rank(h: Hit, rank: int) -> Hit:
    return _replace(h, rank=rank)
