"""A local Slack Web API for tests: a real HTTP server on loopback that keeps users, conversations and
messages, answers the methods the bot calls the way Slack does, validates Block Kit limits like Slack,
records every call, and can be scripted to fail (429 with Retry-After, or `{"ok": false, "error": ...}`)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

TOKEN = "xoxb-test-token"
TEAM = "T0ACME"
BOT_USER = "U0LORE"
BOT_ID = "B0LORE"


@dataclass
class Call:
    method: str
    args: dict
    at: float
    response: dict = field(default_factory=dict)
    status: int = 200


def block_problems(blocks: list | None, text: str | None) -> list[str]:
    """What Slack would reject in a message (the limits chat.postMessage and chat.update enforce)."""
    out = []
    if text and len(text) > 40_000:
        out.append(f"text is {len(text)} chars")
    blocks = blocks or []
    if len(blocks) > 50:
        out.append(f"{len(blocks)} blocks")
    for b in blocks:
        t = b.get("type")
        if t == "section" and len(b["text"]["text"]) > 3000:
            out.append(f"section text of {len(b['text']['text'])} chars")
        if t == "context":
            if len(b["elements"]) > 10:
                out.append("context with over 10 elements")
            out += [f"context element of {len(e['text'])} chars" for e in b["elements"] if len(e["text"]) > 3000]
        if t == "header" and len(b["text"]["text"]) > 150:
            out.append("header over 150 chars")
        if t == "actions":
            for e in b["elements"]:
                if len(e["text"]["text"]) > 75 or len(e.get("value", "")) > 2000:
                    out.append("button label over 75 or value over 2000 chars")
    return out


class FakeSlack:
    """`with FakeSlack() as slack: WebClient(TOKEN, base_url=slack.url)`; see the methods below for state."""

    def __init__(self) -> None:
        self.users: dict[str, dict] = {}
        self.channels: dict[str, dict] = {}
        self.usergroups: list[dict] = []
        self.messages: dict[str, list[dict]] = {}
        self.calls: list[Call] = []
        self.responses: list[tuple[str, dict]] = []  # posts to response_url
        self._script: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        self._clock = 1_700_000_000.0
        self.add_user(BOT_USER, name="lore", is_bot=True)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:
                fake._serve(self)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def __enter__(self) -> "FakeSlack":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- state -----------------------------------------------------------------------------------
    def add_user(self, uid: str, *, name: str | None = None, email: str | None = None, is_bot: bool = False,
                 guest: bool = False, team: str = TEAM) -> None:
        self.users[uid] = {"id": uid, "team_id": team, "name": name or uid.lower(), "is_bot": is_bot,
                           "is_restricted": guest, "is_ultra_restricted": False, "deleted": False,
                           "profile": {"email": email} if email else {}}

    def add_channel(self, cid: str, members: list[str], *, im_user: str | None = None) -> None:
        self.channels[cid] = {"id": cid, "members": list(members), "is_im": im_user is not None, "user": im_user,
                              "is_channel": im_user is None}
        self.messages.setdefault(cid, [])

    def add_usergroup(self, gid: str, handle: str, users: list[str]) -> None:
        self.usergroups.append({"id": gid, "handle": handle, "users": list(users)})

    def user_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> dict:
        """A person's message, as Slack stores it before sending its event; returns the message."""
        with self._lock:
            m = {"type": "message", "user": user, "text": text, "ts": self._ts(), "client_msg_id": f"c{time.time_ns()}"}
            if thread_ts:
                m["thread_ts"] = thread_ts
            self.messages[channel].append(m)
        return m

    def script(self, method: str, *, times: int = 1, status: int = 200, retry_after: int | None = None,
               error: str | None = None) -> None:
        """The next `times` calls of `method` fail: HTTP `status` (429 with Retry-After), or ok=false `error`."""
        with self._lock:
            self._script.setdefault(method, []).extend(
                [{"status": status, "retry_after": retry_after, "error": error}] * times)

    def calls_to(self, method: str, **match) -> list[Call]:
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c.method == method and all(c.args.get(k) == v for k, v in match.items())]

    def wait_for(self, method: str, timeout: float = 20.0, count: int = 1, **match) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [c for c in self.calls_to(method, **match) if c.status == 200]
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"no {count} x {method} {match} within {timeout}s; calls: "
                             f"{[(c.method, c.status, c.response.get('error')) for c in self.calls]}")

    def message(self, channel: str, ts: str) -> dict:
        return next(m for m in self.messages[channel] if m["ts"] == ts)

    def _ts(self) -> str:
        self._clock += 1.0
        return f"{self._clock:.6f}"

    # -- the wire --------------------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if parts.path.startswith("/respond/"):
            with self._lock:
                self.responses.append((parts.path, json.loads(raw or b"{}")))
            return self._send(h, 200, b"ok", "text/plain")
        method = parts.path.removeprefix("/api/")
        args = dict(parse_qsl(parts.query))
        if raw:
            if "json" in (h.headers.get("Content-Type") or ""):
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode()))
        for k in ("blocks", "metadata"):
            if isinstance(args.get(k), str):
                args[k] = json.loads(args[k])
        call = Call(method, args, time.monotonic())
        with self._lock:
            self.calls.append(call)
            fail = self._script[method].pop(0) if self._script.get(method) else None
        if fail and fail["status"] != 200:
            call.status = fail["status"]
            headers = {"Retry-After": str(fail["retry_after"])} if fail["retry_after"] is not None else {}
            return self._send(h, fail["status"], b'{"ok": false, "error": "ratelimited"}', headers=headers)
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            body = {"ok": False, "error": "not_authed" if not h.headers.get("Authorization") else "invalid_auth"}
        elif fail:
            body = {"ok": False, "error": fail["error"]}
        else:
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            body = handler(args) if handler else {"ok": False, "error": "unknown_method"}
        call.response = body
        self._send(h, 200, json.dumps(body).encode())

    @staticmethod
    def _send(h, status: int, payload: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)

    # -- methods ---------------------------------------------------------------------------------
    def _auth_test(self, a: dict) -> dict:
        return {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "lore", "team_id": TEAM,
                "user_id": BOT_USER, "bot_id": BOT_ID}

    def _users_info(self, a: dict) -> dict:
        u = self.users.get(a.get("user"))
        return {"ok": True, "user": u} if u else {"ok": False, "error": "user_not_found"}

    def _conversations_info(self, a: dict) -> dict:
        c = self.channels.get(a.get("channel"))
        if c is None or BOT_USER not in c["members"]:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {k: v for k, v in c.items() if k != "members"}}

    def _conversations_members(self, a: dict) -> dict:
        c = self.channels.get(a.get("channel"))
        if c is None:
            return {"ok": False, "error": "channel_not_found"}
        start, limit = int(a.get("cursor") or 0), int(a.get("limit") or 100)
        page = c["members"][start:start + limit]
        more = start + limit < len(c["members"])
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _conversations_replies(self, a: dict) -> dict:
        msgs = self.messages.get(a.get("channel"))
        if msgs is None:
            return {"ok": False, "error": "channel_not_found"}
        ts, meta = a.get("ts"), str(a.get("include_all_metadata")).lower() in ("1", "true")
        with self._lock:
            found = [dict(m) for m in msgs if m["ts"] == ts or m.get("thread_ts") == ts]
        if not meta:
            for m in found:
                m.pop("metadata", None)
        return {"ok": True, "messages": sorted(found, key=lambda m: float(m["ts"])), "has_more": False}

    def _usergroups_list(self, a: dict) -> dict:
        users = str(a.get("include_users")).lower() in ("1", "true")
        return {"ok": True, "usergroups": [{k: v for k, v in g.items() if users or k != "users"}
                                           for g in self.usergroups]}

    def _chat_postMessage(self, a: dict) -> dict:
        c = self.channels.get(a.get("channel"))
        if c is None:
            return {"ok": False, "error": "channel_not_found"}
        if BOT_USER not in c["members"]:
            return {"ok": False, "error": "not_in_channel"}
        problems = block_problems(a.get("blocks"), a.get("text"))
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        with self._lock:
            m = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": a.get("text", ""),
                 "blocks": a.get("blocks") or [], "ts": self._ts()}
            if a.get("thread_ts"):
                m["thread_ts"] = a["thread_ts"]
            if a.get("metadata"):
                m["metadata"] = a["metadata"]
            c_msgs = self.messages[a["channel"]]
            c_msgs.append(m)
        return {"ok": True, "channel": a["channel"], "ts": m["ts"], "message": m}

    def _chat_update(self, a: dict) -> dict:
        problems = block_problems(a.get("blocks"), a.get("text"))
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        with self._lock:
            m = next((m for m in self.messages.get(a.get("channel"), []) if m["ts"] == a.get("ts")), None)
            if m is None:
                return {"ok": False, "error": "message_not_found"}
            m.update(text=a.get("text", ""), blocks=a.get("blocks") or [])
            if a.get("metadata"):
                m["metadata"] = a["metadata"]
        return {"ok": True, "channel": a["channel"], "ts": a["ts"], "text": m["text"]}

    def _chat_postEphemeral(self, a: dict) -> dict:
        return {"ok": True, "message_ts": self._ts()}
