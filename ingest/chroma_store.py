"""Vectors in Chroma: embedded PersistentClient by default, a Chroma server through HttpClient.

One HNSW node per distinct vector. hnswlib keeps a candidate neighbour unless it is strictly closer to a
chosen one than to the new node, so identical vectors (distance 0) keep each other: beyond
`ef_construction` copies they link only among themselves, the entry point soon is one, every search
returns only copies, and deleting them only marks them deleted (docs/benchmarks.md, "Duplicate vectors").
So a chunk within SAME_VECTOR of a stored node joins that node's group: one node in the main collection,
the members (own vector and metadata each) in `<name>.dups`, never searched by vector. A query expands a
group hit into its members; a filtered query also matches members by their own metadata. `check` finds
an index damaged before groups existed; `rebuild` repairs it (`lore index check|repair`).
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence
from urllib.parse import urlparse

import numpy as np

from ingest.access import Scope
from ingest.errors import ConfigError, StoreError

log = logging.getLogger(__name__)
SAME_VECTOR = 1e-4  # cosine distance: one text embeds to <= 1e-6 apart in any batch, one changed word ~1e-2
GROUP = "@lore-group:"  # ids of main-collection nodes that stand for a group (then 32 hex digits)
# HNSW candidates kept per search (Chroma's default 100). The retriever asks for 100, so with the default a
# search explores no more than it returns; a crowd of near-identical vectors could then trap it (measured
# once: recall@10 0.75 with 1,500 near-copies beside 38 chunks). Twice that costs no measurable time.
SEARCH_EF = 200
_GID = len(GROUP) + 32  # a member's record id: group id, "/", chunk id
_LORE_KEYS = ("lore_group", "lore_chunk", "lore_kind")
_PAGE = 1000


class ChunkStore(Protocol):
    """Where chunk vectors live, keyed by chunk id, with filterable metadata; `query` admits only what the
    Scope admits (compiled by the store itself).

    >>> store.upsert(["c1"], vectors, [{"doc_id": "d1"}]); store.ids()  # -> {"c1"}
    >>> store.query(vector, 10, Scope(access, Filters(doc_types=("policy",))))  # -> [("c1", 0.83)]
    """

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def ids(self) -> set[str]: ...

    def get(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict]]: ...

    def query(self, vector: np.ndarray, k: int, scope: Scope | None = None) -> list[tuple[str, float]]: ...

    def count(self) -> int: ...


def chroma_where(scope: Scope) -> dict:
    """The Chroma `where` for the chunks `scope` admits, over the metadata ingest writes (`acl` as a list, the
    default-ACL marker for none; `doc_type`, `doc_id`, `updated_at` in epoch s, `fm_<key>`). Its `$eq` takes
    1 and 1.0 for each other, so `query` re-checks a number filter's type on what Chroma returns."""
    if scope.path_prefix:
        raise ValueError("a path filter has no Chroma operator: resolve it to document ids first (Scope.resolved)")
    f = scope.filters
    acl = [{"acl": {"$contains": t}} for t in scope.access.tokens]
    clauses: list[dict] = [acl[0] if len(acl) == 1 else {"$or": acl}]
    if f.doc_types:
        clauses.append({"doc_type": {"$in": list(f.doc_types)}})
    if (ids := scope.ids) is not None:
        clauses.append({"doc_id": {"$in": list(ids)}})
    if f.updated_after:
        clauses.append({"updated_at": {"$gte": int(f.updated_after.timestamp())}})
    if f.updated_before:
        clauses.append({"updated_at": {"$lte": int(f.updated_before.timestamp())}})
    for k, v in f.metadata:
        clauses.append({f"fm_{k}": {"$eq": v}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def collection_name(model_id: str) -> str:
    """One collection per embedding model, so switching models never mixes vector spaces."""
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", model_id).strip("-_").lower()
    return f"lore-{slug}"[:60].rstrip("-_")


@dataclass(frozen=True, slots=True)
class IndexHealth:
    """What `check` found. Probes are stored nodes searched for with their own vector."""

    vectors: int  # chunks stored
    nodes: int  # HNSW nodes (live)
    groups: int  # nodes standing for several chunks
    probes: int
    unreachable: int  # probes whose search did not return their own vector
    duplicates: int  # probes with a second node at the same vector (an index from before groups)

    @property
    def damaged(self) -> bool:
        # a healthy index finds its own vectors (self-recall ~1): a few misses mean searches get trapped
        return self.duplicates > 0 or self.unreachable >= 3 or self.unreachable * 8 > self.probes

    def to_dict(self) -> dict:
        return {**asdict(self), "damaged": self.damaged}


def _numbers(scope: Scope | None) -> tuple[tuple[str, type], ...]:
    """Chroma's `$eq` takes 1 and 1.0 for each other; a Scope does not (nor SQL, nor `Scope.admits`): the
    front-matter keys with a number filter, and the type the stored value must have."""
    if scope is None:
        return ()
    return tuple((f"fm_{k}", type(v)) for k, v in scope.filters.metadata if type(v) in (int, float))


def _typed_ok(meta: dict | None, typed: tuple[tuple[str, type], ...]) -> bool:
    return all(type((meta or {}).get(key)) is t for key, t in typed)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1)


def _split(rid: str) -> tuple[str, str]:
    """A member record id -> (group id, chunk id)."""
    return rid[:_GID], rid[_GID + 1:]


def _names(client) -> set[str]:
    return {getattr(c, "name", c) for c in client.list_collections()}


def _reopening(fn):
    """A repair replaces the collections under a running process: reopen them once and retry."""
    @functools.wraps(fn)
    def call(self, *a, **kw):
        from chromadb.errors import NotFoundError

        try:
            return fn(self, *a, **kw)
        except NotFoundError:
            self._col = self._dup = None
            return fn(self, *a, **kw)
    return call


class ChromaChunkStore:
    """ChunkStore on a Chroma collection (cosine space); vectors are supplied, never computed here."""

    def __init__(self, model_id: str, path: str | Path | None = None, url: str | None = None,
                 _suffix: str = "") -> None:
        if (path is None) == (url is None):
            raise ConfigError("ChromaChunkStore needs exactly one of path (embedded) or url (server)")
        self.model_id = model_id
        self.path, self.url = path, url
        self.name = collection_name(model_id) + _suffix
        self._client: Any = None  # chromadb's client and collections: imported when first used
        self._col: Any = None
        self._dup: Any = None

    # -- opening -------------------------------------------------------------------------------
    def _cols(self):
        if self._col is None:
            try:
                client = self._client or self._connect()
                self._finish_swap(client)
                meta = {"hnsw:space": "cosine", "hnsw:search_ef": SEARCH_EF, "lore:model": self.model_id}
                self._col = client.get_or_create_collection(self.name, embedding_function=None, metadata=meta)
                self._dup = client.get_or_create_collection(self.name + ".dups", embedding_function=None,
                                                            metadata=meta)
                for col in (self._col, self._dup):  # collections made before SEARCH_EF get it too
                    if (col.configuration_json.get("hnsw") or {}).get("ef_search", SEARCH_EF) < SEARCH_EF:
                        col.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}})
                self._client, self._max_batch = client, client.get_max_batch_size()
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - chromadb raises many connection error types
                where = f"server {self.url}" if self.url else f"folder {self.path}"
                raise StoreError(f"cannot open Chroma at {where} ({exc}); check LORE_CHROMA_URL / LORE_DATA_DIR") from exc
        return self._col, self._dup

    def _connect(self):
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if self.url:
            u = urlparse(self.url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ConfigError(f"LORE_CHROMA_URL={self.url!r} is not a URL like http://127.0.0.1:8000")
            return chromadb.HttpClient(host=u.hostname, port=u.port or (443 if u.scheme == "https" else 80),
                                       ssl=u.scheme == "https", settings=settings)
        Path(self.path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=settings)

    def _collection(self):
        return self._cols()[0]

    # -- writing -------------------------------------------------------------------------------
    @_reopening
    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict]) -> None:
        if not len(ids):
            return
        if any(i.startswith(GROUP) for i in ids):
            raise ConfigError(f"chunk ids must not start with {GROUP!r}: that prefix names vector groups")
        self._cols()
        step = max(1, min(self._max_batch, _PAGE))
        for i in range(0, len(ids), step):
            self._upsert(list(ids[i:i + step]), np.asarray(vectors[i:i + step], dtype=np.float32),
                         list(metadatas[i:i + step]))

    def _upsert(self, ids: list[str], vecs: np.ndarray, metas: list[dict]) -> None:
        col, _ = self._cols()
        unit = _unit(vecs)
        done: set[int] = set()
        members = self._members_of(ids)
        if members:  # a member stays in its group while its vector is still the group's
            gvec = self._group_vectors({g for g, _ in members.values()})
            done = {r for r, i in enumerate(ids) if i in members
                    and 1.0 - float(unit[r] @ gvec.get(members[i][0], -unit[r])) <= SAME_VECTOR}
            self._remove_members({ids[r]: members[ids[r]] for r in range(len(ids)) if ids[r] in members and r not in done})
            stay = sorted(done)
            self._add_members([members[ids[r]][0] for r in stay], [ids[r] for r in stay], vecs[stay],
                              [metas[r] for r in stay])
        singles = set(col.get(ids=ids, include=[])["ids"]) - {ids[r] for r in done}
        if singles:  # a node of its own is replaced in place, as before
            rows = [r for r, i in enumerate(ids) if i in singles]
            col.upsert(ids=[ids[r] for r in rows], embeddings=vecs[rows], metadatas=[metas[r] for r in rows])
            done.update(rows)
        new = [r for r in range(len(ids)) if r not in done]
        if new:
            self._add_new(new, ids, vecs, unit, metas)

    def _add_new(self, rows: list[int], ids: list[str], vecs: np.ndarray, unit: np.ndarray, metas: list[dict]) -> None:
        """Each row either has the vector of an earlier row of the batch (follows that head), or is a head:
        a head within SAME_VECTOR of a stored node joins its group (a lone node becomes a group first);
        another head with followers starts a group; a lone head becomes a node of its own."""
        col, _ = self._cols()
        u = unit[rows]
        heads: list[int] = []  # positions in rows
        follow: dict[int, list[int]] = {}
        for a in range(len(rows)):
            near = np.flatnonzero(1.0 - u[heads] @ u[a] <= SAME_VECTOR) if heads else np.empty(0, int)
            if len(near):
                follow.setdefault(heads[near[0]], []).append(a)
            else:
                heads.append(a)
        found = col.query(query_embeddings=vecs[[rows[h] for h in heads]], n_results=1, include=["distances"])
        grouped: dict[str, str] = {}  # lone node made a group here -> its group id
        lone: list[int] = []
        for n, h in enumerate(heads):
            same = [rows[x] for x in (h, *follow.get(h, []))]
            hit = found["ids"][n][0] if found["ids"][n] and found["distances"][n][0] <= SAME_VECTOR else None
            if hit is not None and not hit.startswith(GROUP):
                hit = grouped.get(hit) or grouped.setdefault(hit, self._make_group(hit))
            if hit is None and len(same) == 1:
                lone.append(same[0])
                continue
            gid = hit or self._new_group(vecs[same[0]])
            self._add_members([gid] * len(same), [ids[r] for r in same], vecs[same], [metas[r] for r in same])
        if lone:
            col.add(ids=[ids[r] for r in lone], embeddings=vecs[lone], metadatas=[metas[r] for r in lone])

    def _new_group(self, vec: np.ndarray) -> str:
        gid = GROUP + uuid.uuid4().hex
        self._cols()[0].add(ids=[gid], embeddings=np.asarray([vec], dtype=np.float32), metadatas=[{"lore_kind": "group"}])
        return gid

    def _make_group(self, node: str) -> str:
        """Turn a lone node into a group holding it: group node first, then the member, then the old node
        goes (a crash in between leaves the chunk findable twice, never not at all)."""
        col, _ = self._cols()
        got = col.get(ids=[node], include=["embeddings", "metadatas"])
        vec = np.asarray(got["embeddings"][0], dtype=np.float32)
        gid = self._new_group(vec)
        self._add_members([gid], [node], vec[None, :], [got["metadatas"][0] or {}])
        col.delete(ids=[node])
        return gid

    def _add_members(self, gids: list[str], chunk_ids: list[str], vecs: np.ndarray, metas: list[dict]) -> None:
        if chunk_ids:
            self._cols()[1].upsert(ids=[f"{g}/{c}" for g, c in zip(gids, chunk_ids)], embeddings=vecs,
                                   metadatas=[{**m, "lore_group": g, "lore_chunk": c} for g, c, m in zip(gids, chunk_ids, metas)])

    def _members_of(self, chunk_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """chunk id -> (group id, record id) for the given chunks that are group members."""
        _, dup = self._cols()
        out: dict[str, tuple[str, str]] = {}
        ids = list(chunk_ids)
        if not ids or not dup.count():
            return out
        for i in range(0, len(ids), _PAGE):
            for rid in dup.get(where={"lore_chunk": {"$in": ids[i:i + _PAGE]}}, include=[])["ids"]:
                g, c = _split(rid)
                out[c] = (g, rid)
        return out

    def _remove_members(self, members: dict[str, tuple[str, str]]) -> None:
        """Delete member records; a group left empty loses its node."""
        if not members:
            return
        col, dup = self._cols()
        dup.delete(ids=[rid for _, rid in members.values()])
        gids = sorted({g for g, _ in members.values()})
        left = {_split(r)[0] for r in dup.get(where={"lore_group": {"$in": gids}}, include=[])["ids"]}
        if empty := [g for g in gids if g not in left]:
            col.delete(ids=empty)

    def _group_vectors(self, gids) -> dict[str, np.ndarray]:
        if not gids:
            return {}
        got = self._cols()[0].get(ids=sorted(gids), include=["embeddings"])
        return dict(zip(got["ids"], _unit(np.asarray(got["embeddings"], dtype=np.float32).reshape(len(got["ids"]), -1))))

    @_reopening
    def delete(self, ids: Sequence[str]) -> None:
        ids = [i for i in ids if not i.startswith(GROUP)]
        if not ids:
            return
        col, _ = self._cols()
        for i in range(0, len(ids), _PAGE):
            col.delete(ids=ids[i:i + _PAGE])
        self._remove_members(self._members_of(ids))

    # -- reading -------------------------------------------------------------------------------
    @_reopening
    def ids(self) -> set[str]:
        col, dup = self._cols()
        return ({i for i in self._all_ids(col) if not i.startswith(GROUP)}
                | {_split(r)[1] for r in self._all_ids(dup)})

    @staticmethod
    def _all_ids(c) -> Iterator[str]:
        offset = 0
        while True:
            got = c.get(include=[], limit=5000, offset=offset)["ids"]
            yield from got
            if len(got) < 5000:
                return
            offset += len(got)

    @_reopening
    def get(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict]]:
        col, dup = self._cols()
        ids = [i for i in ids if not i.startswith(GROUP)]
        res = col.get(ids=ids, include=["embeddings", "metadatas"]) if ids else {"ids": [], "embeddings": [], "metadatas": []}
        out = {i: (np.asarray(e, dtype=np.float32), m) for i, e, m in zip(res["ids"], res["embeddings"], res["metadatas"])}
        rest = [i for i in ids if i not in out]
        for i in range(0, len(rest) if dup.count() else 0, _PAGE):
            got = dup.get(where={"lore_chunk": {"$in": rest[i:i + _PAGE]}}, include=["embeddings", "metadatas"])
            for e, m in zip(got["embeddings"], got["metadatas"]):
                out[m["lore_chunk"]] = (np.asarray(e, dtype=np.float32), {k: v for k, v in m.items() if k not in _LORE_KEYS})
        return out

    @_reopening
    def query(self, vector: np.ndarray, k: int, scope: Scope | None = None) -> list[tuple[str, float]]:
        """The k nearest chunks `scope` admits (None: every chunk), as (chunk id, cosine similarity)."""
        where = chroma_where(scope) if scope is not None else None
        if scope is not None and scope.ids == ():  # names no document (Chroma refuses an empty $in)
            return []
        col, _ = self._cols()
        v = np.asarray(vector, dtype=np.float32)
        typed = _numbers(scope)
        n = k
        while True:  # more than k only while Chroma's $eq admits a number of the other type
            res = col.query(query_embeddings=[v], n_results=n, where=where or None,
                            include=["distances", "metadatas"] if typed else ["distances"])
            keep = [r for r in range(len(res["ids"][0])) if not typed or _typed_ok(res["metadatas"][0][r], typed)]
            if len(keep) >= k or len(res["ids"][0]) < n:
                break
            n *= 4
        hits = [(res["ids"][0][r], float(res["distances"][0][r])) for r in keep]
        if where:  # group nodes match no filter: members are matched by their own metadata
            hits = [h for h in hits if not h[0].startswith(GROUP)] + self._matching_members(v, where, typed)
        elif any(i.startswith(GROUP) for i, _ in hits):
            hits = self._expand(hits, k)
        else:
            return [(i, 1.0 - d) for i, d in hits]
        best: dict[str, float] = {}  # each chunk at its nearest distance
        for i, d in sorted(hits, key=lambda h: h[1]):
            best.setdefault(i, d)
        return [(i, 1.0 - d) for i, d in list(best.items())[:k]]

    def _expand(self, hits: list[tuple[str, float]], k: int) -> list[tuple[str, float]]:
        """Group nodes replaced by their members (at the group's distance), at most k chunks in all."""
        _, dup = self._cols()
        gids = [i for i, _ in hits if i.startswith(GROUP)]
        limit = 4 * k + len(gids)
        rids = dup.get(where={"lore_group": {"$in": gids}}, include=[], limit=limit)["ids"] if len(gids) > 1 else []
        if len(gids) == 1 or len(rids) >= limit:  # big groups: group by group, best first, what can still rank
            rids, room = [], k
            for i, _d in hits:
                got = dup.get(where={"lore_group": i}, include=[], limit=room)["ids"] if i.startswith(GROUP) else [i]
                rids += got if i.startswith(GROUP) else []
                if (room := room - len(got)) <= 0:
                    break
        members: dict[str, list[str]] = {}
        for g, c in map(_split, rids):
            members.setdefault(g, []).append(c)
        out = []
        for i, d in hits:
            out += [(c, d) for c in sorted(members.get(i, ()))] if i.startswith(GROUP) else [(i, d)]
        return out

    def _matching_members(self, v: np.ndarray, where: dict, typed: tuple = ()) -> list[tuple[str, float]]:
        _, dup = self._cols()
        if not dup.count():
            return []
        got = dup.get(where=where, include=["metadatas"] if typed else [])
        pairs = [_split(r) for n, r in enumerate(got["ids"]) if not typed or _typed_ok(got["metadatas"][n], typed)]
        if not pairs:
            return []
        gvec = self._group_vectors({g for g, _ in pairs})
        q = _unit(v)
        return [(c, 1.0 - float(gvec[g] @ q)) for g, c in pairs if g in gvec]

    @_reopening
    def count(self) -> int:
        col, dup = self._cols()
        members = dup.count()
        return col.count() - (self._groups() if members else 0) + members

    def _groups(self) -> int:
        return len(self._cols()[0].get(where={"lore_kind": "group"}, include=[])["ids"])

    # -- health and repair ---------------------------------------------------------------------
    @_reopening
    def check(self, probes: int = 64) -> IndexHealth:
        """Search for up to `probes` stored nodes (from the start and the middle of insertion order) with their
        own vectors, in one batched query: a healthy index returns each first, and no second at distance 0."""
        col, dup = self._cols()
        nodes, groups = col.count(), self._groups()
        vecs = []
        for offset in sorted({0, max(0, nodes // 2 - probes // 2)}):
            vecs.extend(col.get(include=["embeddings"], limit=max(1, probes // 2), offset=offset)["embeddings"])
        unreachable = duplicates = 0
        if vecs:
            res = col.query(query_embeddings=np.asarray(vecs, np.float32), n_results=min(2, nodes), include=["distances"])
            for ds in res["distances"]:
                unreachable += not ds or ds[0] > SAME_VECTOR
                duplicates += len(ds) > 1 and ds[1] <= SAME_VECTOR and ds[0] <= SAME_VECTOR
        return IndexHealth(nodes - groups + dup.count(), nodes, groups, len(vecs), unreachable, duplicates)

    def _records(self) -> Iterator[tuple[list[str], np.ndarray, list[dict]]]:
        """Every stored chunk as (ids, vectors, metadatas) pages, group members with their own vectors."""
        col, dup = self._cols()
        for c, member in ((col, False), (dup, True)):
            offset = 0
            while True:
                got = c.get(include=["embeddings", "metadatas"], limit=_PAGE, offset=offset)
                keep = [n for n, i in enumerate(got["ids"]) if member or not i.startswith(GROUP)]
                if keep:
                    yield ([_split(got["ids"][n])[1] if member else got["ids"][n] for n in keep],
                           np.asarray([got["embeddings"][n] for n in keep], dtype=np.float32),
                           [{k: v for k, v in (got["metadatas"][n] or {}).items() if k not in _LORE_KEYS} for n in keep])
                if len(got["ids"]) < _PAGE:
                    break
                offset += len(got["ids"])

    @_reopening
    def rebuild(self) -> tuple[IndexHealth, IndexHealth]:
        """Copy every chunk into new collections (one node per distinct vector, no deleted nodes) and swap
        them in. The caller must hold the ingest lock; a crash before the swap leaves the old index in
        use, a crash during it is finished on the next open. Returns the health before and after."""
        before = self.check()
        col, _ = self._cols()
        client = self._client
        tmp = ChromaChunkStore(self.model_id, self.path, self.url, _suffix=".rebuild")
        tmp._client = client
        for name in {tmp.name, tmp.name + ".dups"} & _names(client):  # an earlier, unfinished rebuild
            client.delete_collection(name)
        for ids, vecs, metas in self._records():
            tmp.upsert(ids, vecs, metas)
        if tmp.ids() != self.ids():
            raise StoreError("the vector index changed while it was being rebuilt; stop ingests and run "
                             "'lore index repair' again")
        tmp._collection().modify(metadata={"lore:model": self.model_id, "lore:complete": True})
        # .dups first: while the main collection still exists a reopening process never starts a swap, so
        # the new .dups it would rename into place cannot be deleted here a moment later
        if self.name + ".dups" in _names(client):
            client.delete_collection(self.name + ".dups")
        client.delete_collection(self.name)
        self._finish_swap(client, interrupted=False)
        self._col = self._dup = None
        after = self.check()
        log.info("rebuilt vector index %s: %d chunks, %d -> %d nodes", self.name, after.vectors, before.nodes, after.nodes)
        return before, after

    def _finish_swap(self, client, interrupted: bool = True) -> None:
        """A rebuild stopped after dropping the old collections: rename the complete new ones into place."""
        names, tmp = _names(client), self.name + ".rebuild"
        if self.name in names or tmp not in names or not (client.get_collection(tmp).metadata or {}).get("lore:complete"):
            return
        if tmp + ".dups" in names:
            if self.name + ".dups" in names:
                client.delete_collection(self.name + ".dups")
            client.get_collection(tmp + ".dups").modify(name=self.name + ".dups")
        client.get_collection(tmp).modify(name=self.name)
        if interrupted:
            log.warning("finished an interrupted rebuild of the vector index %s", self.name)
