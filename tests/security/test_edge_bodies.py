"""Request bodies at the edge: credentials are judged before the body, and text that is not valid Unicode
(lone surrogates from JSON \\ud800 escapes) is a clear 4xx naming the field, never a 500."""

from __future__ import annotations

import httpx
import pytest

DOC = ("---\ntitle: Leave policy\nteam: people\n---\n# Carry-over\n\n"
       "Employees may carry over 40 hours of PTO into the next year.\n")
JSON = {"content-type": "application/json"}
BROKEN = b'{"question": '
POSTS = ["/v1/ask", "/v1/ask/stream", "/v1/search", "/v1/feedback", "/v1/chat/completions", "/v1/ingest"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from tests.support.live import small_service

    with small_service(tmp_path_factory.mktemp("bodies"), DOC) as s:
        yield s


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("auth", [None, "Bearer lore_nope_nope", "Basic Zm9vOmJhcg=="])
def test_no_credentials_is_401_whatever_the_body(srv, path, auth):
    headers = {**JSON, **({"Authorization": auth} if auth else {})}
    for body in (BROKEN, b"\xff\xfe", b"[1, 2", b'{"question": "pto"'):
        r = httpx.post(srv.url + path, content=body, headers=headers)
        assert r.status_code == 401, (path, body, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("path", POSTS)
def test_malformed_json_from_a_caller_is_a_clear_4xx(srv, path):
    with srv.client(srv.admin) as c:
        r = c.post(path, content=BROKEN, headers=JSON)
        assert r.status_code == 422, r.text
        msg = r.json()["error"]["message"]
        assert "not valid JSON" in msg and "character 13" in msg, msg
        for body in (b"\xff\xfe", b"[1, 2", b""):
            r = c.post(path, content=body, headers=JSON)
            assert r.status_code in (400, 422) and r.json()["error"]["message"], (body, r.status_code, r.text)


LONE = [
    ("/v1/ask", b'{"question": "pto \\ud800"}', "question"),
    ("/v1/ask", b'{"question": "pto", "history": [{"role": "user", "content": "x\\udc00y"}]}', "history.0.content"),
    ("/v1/ask/stream", b'{"question": "\\ud800"}', "question"),
    ("/v1/search", b'{"query": "pto \\ud800"}', "query"),
    ("/v1/search", b'{"query": "pto", "filters": {"metadata": {"team": "\\ud800"}}}', "filters.metadata"),
    ("/v1/search", b'{"query": "pto", "filters": {"metadata": {"te\\ud800am": "people"}}}', "filters.metadata"),
    ("/v1/search", b'{"query": "pto", "filters": {"doc_ids": ["\\ud800"]}}', "filters.doc_ids.0"),
    ("/v1/search", b'{"query": "pto", "filters": {"path_prefix": "/srv/\\ud800"}}', "filters.path_prefix"),
    ("/v1/ask", b'{"question": "pto", "filters": {"doc_ids": ["a", "\\udfff"]}}', "filters.doc_ids.1"),
    ("/v1/chat/completions", b'{"model": "lore", "messages": [{"role": "user", "content": "pto \\ud800"}]}',
     "messages.0.content"),
    ("/v1/chat/completions", b'{"model": "lore", "messages": [{"role": "user", "content": [{"type": "text", '
     b'"text": "pto \\ud800"}]}]}', "messages.0.content"),
    ("/v1/chat/completions", b'{"model": "lore", "messages": [{"role": "user", "content": "\\ud800"}, '
     b'{"role": "assistant", "content": "x"}, {"role": "user", "content": "pto"}]}', "messages.0.content"),
    ("/v1/chat/completions", b'{"model": "lore", "stream": true, "messages": [{"role": "user", '
     b'"content": "pto \\ud800"}]}', "messages.0.content"),
    ("/v1/feedback", b'{"trace_id": "t", "rating": "up", "comment": "\\ud800"}', "comment"),
]


@pytest.mark.parametrize("path,body,field", LONE, ids=[f"{p}:{f}" for p, _, f in LONE])
def test_lone_surrogates_are_a_4xx_naming_the_field(srv, path, body, field):
    with srv.client(srv.admin) as c:
        r = c.post(path, content=body, headers=JSON)
    assert r.status_code == 422, (r.status_code, r.text)
    msg = r.json()["error"]["message"]
    assert field in msg and "surrogate" in msg, msg


def test_ids_in_paths_and_queries_never_500(srv):
    with srv.client(srv.admin) as c:
        for path in ("/v1/documents/%ED%A0%80", "/v1/passages/%ED%A0%80", "/v1/jobs/%ED%A0%80",
                     "/v1/models/%ED%A0%80", "/v1/documents?q=%ED%A0%80", "/v1/audit?user=%ED%A0%80"):
            assert c.get(path).status_code in (200, 404), path
        assert c.delete("/v1/documents/%ED%A0%80").status_code == 404
        # the valid requests still work, Unicode included
        ok = c.post("/v1/search", json={"query": "PTO carry over 😀", "filters": {"metadata": {"team": "people"}}})
        assert ok.status_code == 200 and ok.json()["hits"], ok.text
