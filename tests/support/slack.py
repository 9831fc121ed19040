"""Signed Slack deliveries and the question the Slack tests ask."""

from __future__ import annotations

import hashlib
import hmac
import time

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PTO = "How many PTO hours can I carry over into next year?"


def signed(body: bytes, ts: int | None = None, secret: str = SECRET) -> dict:
    ts = str(int(time.time()) if ts is None else ts)
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
