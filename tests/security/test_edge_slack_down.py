"""A signed Slack request while Slack's Web API is unreachable: acknowledged at once (2xx, as Slack's Events
API asks within 3 seconds, so Slack neither retries nor counts the app as failing) and the failure logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.live import free_port

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, BOT = "T0ACME", "U0LORE"


def signed_post(url: str, body: bytes, content_type: str) -> tuple[httpx.Response, float]:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    t0 = time.monotonic()
    r = httpx.post(url + "/slack/events", content=body, timeout=30,
                   headers={"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig})
    return r, time.monotonic() - t0


@pytest.fixture()
def lore(tmp_path):
    from api.settings import Settings
    from tests.support.live import LiveServer

    nowhere = f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there: connection refused
    settings = Settings(data_dir=tmp_path, embedding={"backend": "hash"},
                        slack={"bot_token": "xoxb-test-token", "signing_secret": SECRET, "api_url": nowhere})
    with LiveServer(settings) as srv:
        yield srv


def test_events_are_acknowledged_and_the_failure_logged(lore, caplog):
    caplog.set_level(logging.INFO)
    event = {"type": "event_callback", "team_id": TEAM, "api_app_id": "A0LORE", "event_id": "Ev0001",
             "event_time": int(time.time()), "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
             "event": {"type": "app_mention", "user": "UANA", "text": f"<@{BOT}> pto?", "ts": "1.000100",
                       "channel": "C0GEN", "event_ts": "1.000100"}}
    r, took = signed_post(lore.url, json.dumps(event).encode(), "application/json")
    assert 200 <= r.status_code < 300 and took < 3, (r.status_code, r.text, took)

    form = {"token": "legacy", "team_id": TEAM, "channel_id": "C0GEN", "user_id": "UANA", "command": "/lore",
            "text": "pto?", "api_app_id": "A0LORE", "response_url": "http://127.0.0.1:9/respond",
            "trigger_id": "trig.1"}
    r, took = signed_post(lore.url, urlencode(form).encode(), "application/x-www-form-urlencoded")
    assert 200 <= r.status_code < 300 and took < 3, (r.status_code, r.text, took)

    challenge = json.dumps({"token": "legacy", "challenge": "abc123", "type": "url_verification"}).encode()
    r, _ = signed_post(lore.url, challenge, "application/json")
    assert r.status_code == 200 and "abc123" in r.text  # needs no Web API call, so unaffected

    def ours() -> list[str]:  # Lore's own account of it, not only slack_sdk's
        return [x.getMessage() for x in caplog.records if x.name == "api.routes.slack" and x.levelno >= logging.ERROR]

    deadline = time.monotonic() + 30  # logged once the Web API call behind the acknowledgement gives up
    while time.monotonic() < deadline and len(ours()) < 2:
        time.sleep(0.2)
    assert len(ours()) == 2, ours()  # the mention and the command; the challenge needed no Web API call
    assert all("Slack's Web API unreachable" in m and "no reply was posted" in m for m in ours()), ours()
