"""Permissions and filters compiled once, applied inside both searches (see FILTERS.md)."""

from __future__ import annotations

from ingest.access import Access, Filters
from ingest.types import DEFAULT_ACL_MARK, SourceDoc


def chroma_where(access: Access, f: Filters, doc_ids: tuple[str, ...] | None) -> dict:
    """A Chroma `where` that admits only readable, matching chunks. `doc_ids` is the resolved id set."""
    acl = [{"acl": {"$contains": t}} for t in access.tokens]
    clauses: list[dict] = [acl[0] if len(acl) == 1 else {"$or": acl}]
    if f.doc_types:
        clauses.append({"doc_type": {"$in": list(f.doc_types)}})
    if doc_ids is not None:
        clauses.append({"doc_id": {"$in": list(doc_ids)}})
    if f.updated_after:
        clauses.append({"updated_at": {"$gte": int(f.updated_after.timestamp())}})
    if f.updated_before:
        clauses.append({"updated_at": {"$lte": int(f.updated_before.timestamp())}})
    for k, v in f.metadata:
        clauses.append({f"fm_{k}": {"$eq": v}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def acl_where(access: Access) -> tuple[str, list]:
    """The permission condition over the `documents d` row: one of the principal's tokens, or no ACL when the
    default admits the principal."""
    real = [t for t in access.tokens if t != DEFAULT_ACL_MARK]
    return (f"(EXISTS (SELECT 1 FROM doc_acl a WHERE a.doc_id = d.doc_id AND a.token IN ({','.join('?' * len(real))}))"
            + (" OR d.acl = '[]')" if DEFAULT_ACL_MARK in access.tokens else ")"), list(real))


def scope_where(access: Access, f: Filters) -> tuple[str, list]:
    """The readable documents the id and path filters name. Resolved over readable documents only, so a
    filter naming only documents the principal may not read resolves to nothing, like one naming none."""
    cond, params = acl_where(access)
    conds = [cond]
    if f.doc_ids:
        conds.append(f"d.doc_id IN ({','.join('?' * len(f.doc_ids))})")
        params += list(f.doc_ids)
    if f.path_prefix:  # substr, not LIKE: LIKE ignores ASCII case and reads _ and % as wildcards
        conds.append("substr(d.uri, 1, length(?)) = ?")
        params += [f.path_prefix, f.path_prefix]
    return " AND ".join(conds), params


def sql_where(access: Access, f: Filters, doc_ids: tuple[str, ...] | None) -> tuple[str, list]:
    """The same conditions over the `documents d` row, for the keyword search's SQL."""
    cond, params = acl_where(access)
    conds = [cond]
    if f.doc_types:
        conds.append(f"d.doc_type IN ({','.join('?' * len(f.doc_types))})")
        params += list(f.doc_types)
    if doc_ids is not None:
        conds.append(f"d.doc_id IN ({','.join('?' * len(doc_ids))})" if doc_ids else "0")
        params += list(doc_ids)
    if f.updated_after:
        conds.append("unixepoch(d.updated_at) >= ?")
        params.append(int(f.updated_after.timestamp()))
    if f.updated_before:
        conds.append("unixepoch(d.updated_at) <= ?")
        params.append(int(f.updated_before.timestamp()))
    for k, v in f.metadata:  # SQLite says true = 1 = 1.0: compare the JSON type too, as Chroma does
        jt = ("'true','false'" if isinstance(v, bool) else "'integer'" if isinstance(v, int)
              else "'real'" if isinstance(v, float) else "'text'")
        conds.append(f"json_type(d.front_matter, ?) IN ({jt}) AND json_extract(d.front_matter, ?) = ?")
        params += [f"$.{k}", f"$.{k}", v]
    return " AND ".join(conds), params


def doc_matches(access: Access, f: Filters, doc: SourceDoc, front_matter: dict) -> bool:
    """The last check before a hit is returned: permission and every filter, fail closed."""
    if not access.can_read(doc):
        return False
    if f.doc_types and doc.doc_type not in f.doc_types:
        return False
    if f.doc_ids and doc.id not in f.doc_ids:
        return False
    if f.path_prefix and not doc.uri.startswith(f.path_prefix):
        return False
    if f.updated_after or f.updated_before:
        from datetime import datetime

        ts = datetime.fromisoformat(doc.updated_at)
        if (f.updated_after and ts < f.updated_after) or (f.updated_before and ts > f.updated_before):
            return False
    return all(k in front_matter and front_matter[k] == v and type(front_matter[k]) is type(v)
               for k, v in f.metadata)
