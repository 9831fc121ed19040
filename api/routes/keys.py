"""API keys over HTTP (admins): list, create (the key is shown once) and revoke, as `lore keys` does."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from ingest.keys import Caller, KeyInfo, KeyStore
from api.deps import Lazy, admin, get_audit, get_keys
from api.errors import Conflict
from api.routes.admin import admin_for, audited
from api.schemas import KeyInfoOut, Strict, Text, errors
from evals.audit import AuditLog
from ingest.errors import NotFound

router = APIRouter(prefix="/v1", tags=["keys"])


class KeyOut(KeyInfoOut):
    computed = {"current": "whether the request was made with this key"}

    current: bool = Field(..., description="the key this request was made with")


class KeyListOut(BaseModel):
    keys: list[KeyOut]


class KeyIn(Strict):
    user: Text | None = Field(None, max_length=128, description="the user id whose permissions apply; none for a "
                              "service key (it reads only what is public or its groups may)", examples=["ana"])
    groups: list[Text] = Field([], max_length=50, description="group names, without the group: prefix",
                               examples=[["hr"]])
    role: Literal["reader", "admin"] = Field("reader", description="reader: ask, search, read; admin: also upload, "
                                             "delete, ingest, keys and the audit log")
    note: Text | None = Field(None, max_length=500, description="what the key is for")


class KeyCreatedOut(KeyOut):
    computed = {**KeyOut.computed, "key": "the secret, returned once"}

    key: str = Field(..., description="the API key itself: shown this once, only its hash is stored")


def _out(info: KeyInfo, who: Caller, **given: str) -> KeyOut:
    return (KeyCreatedOut if given else KeyOut).of(info, current=info.key_id == who.key_id, **given)


@router.get("/keys", response_model=KeyListOut, responses=errors(401, 403, 503), summary="List API keys (admin)")
def list_keys(who: Caller = Depends(admin), keys: KeyStore = Depends(get_keys),
              include_revoked: bool = Query(False, description="also the revoked keys")) -> dict:
    """Ids, users, groups, roles, notes and times, oldest first; never the keys themselves (only their hashes
    are stored). `current` marks the key the request was made with."""
    return {"keys": [_out(i, who) for i in keys.list(include_revoked=include_revoked)]}


@router.post("/keys", status_code=201, response_model=KeyCreatedOut, responses=errors(400, 401, 403, 422, 503),
             summary="Create an API key (admin)")
def create_key(body: KeyIn, who: Caller = Depends(admin_for("key.create")), keys: KeyStore = Depends(get_keys),
               audit: Lazy[AuditLog] = Depends(get_audit)) -> KeyOut:
    """The response holds the key (`lore_<id>_<secret>`) once: store it now, it cannot be shown again. The audit
    log records the new key's id, user, groups and role, never the key."""
    with audited(audit, who, "key.create", body.user) as act:
        key, info = keys.create(body.user, tuple(body.groups), body.role, body.note)
        act.target = info.key_id
        act.detail = f"user {info.user_id or '-'}, groups {','.join(info.groups) or '-'}, role {info.role}"
    return _out(info, who, key=key)


@router.delete("/keys/{key_id}", response_model=KeyOut, responses=errors(401, 403, 404, 409, 503),
               summary="Revoke an API key (admin)")
def revoke_key(key_id: str = Path(..., max_length=64), who: Caller = Depends(admin_for("key.revoke")),
               keys: KeyStore = Depends(get_keys), audit: Lazy[AuditLog] = Depends(get_audit)) -> KeyOut:
    """Requests with the key get 401 from now on; it stays listed (with `include_revoked`) for the record.
    Revoking a revoked key changes nothing. The key this request is made with is refused (409): that would
    sign you out at once; revoke it with another admin key, or with `lore keys revoke` on the server."""
    with audited(audit, who, "key.revoke", key_id) as act:
        info = keys.get(key_id)
        if info is None:
            raise NotFound(f"no API key with id {key_id!r}; GET /v1/keys lists the ids")
        if key_id == who.key_id:
            raise Conflict(f"API key {key_id} is the key you are signed in with; revoking it would sign you out at "
                           "once. Sign in with another admin key to revoke it, or run `lore keys revoke "
                           f"{key_id}` on the server")
        info = keys.revoke(key_id)
        act.detail = f"user {info.user_id or '-'}, role {info.role}"
    return _out(info, who)
