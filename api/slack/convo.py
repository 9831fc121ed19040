"""Conversation plumbing: the question in a Slack message, a thread's earlier turns, and retry de-duplication."""

from __future__ import annotations

import html
import re
import threading
import time
from collections import OrderedDict
from typing import Callable

from slack_sdk import WebClient

MAX_QUESTION = 2000  # as /v1/ask
MAX_TURNS = 10  # the last question-answer pairs of a thread given as history
MAX_TURN_CHARS = 8000
ANSWER_EVENT = "lore_answer"  # message metadata on every answer: the thread's history is read back from it
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#[CG][A-Z0-9]+\|([^>]*)>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(?:subteam\^[A-Z0-9]+\|)?([^>|]*)(?:\|[^>]*)?>")


def question_text(text: str, bot_user: str | None) -> str:
    """Slack's message markup as plain text: the bot's own mention removed, other mentions and links kept readable."""
    text = _USER.sub(lambda m: "" if m.group(1) == bot_user else f"@{m.group(1)}", text or "")
    text = _CHANNEL.sub(lambda m: f"#{m.group(1)}", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1).lstrip('@')}", text)
    return " ".join(html.unescape(text).split())


def answer_metadata(question: str, trace_id: str) -> dict:
    return {"event_type": ANSWER_EVENT, "event_payload": {"question": question[:MAX_QUESTION], "trace_id": trace_id}}


def thread_history(client: WebClient, channel: str, thread_ts: str, before: str | None,
                   bot_user: str | None) -> list[dict]:
    """Earlier question-answer pairs of a thread, oldest first, read from the bot's answers' metadata.

    Only Lore's own answers count: their metadata holds the question each one answered, so a thread started
    by a slash command has its question too, and side conversation between people is not taken as a turn.
    """
    turns: list[dict] = []
    cursor = None
    while True:
        page = client.conversations_replies(channel=channel, ts=thread_ts, include_all_metadata=True, limit=200,
                                            cursor=cursor)
        for m in page.get("messages") or []:
            meta = m.get("metadata") or {}
            if before is not None and float(m.get("ts", "0")) >= float(before):
                continue
            if meta.get("event_type") != ANSWER_EVENT or (bot_user and m.get("user") not in (bot_user, None)):
                continue
            q = (meta.get("event_payload") or {}).get("question")
            if q:
                turns += [{"role": "user", "content": q[:MAX_TURN_CHARS]},
                          {"role": "assistant", "content": (m.get("text") or "")[:MAX_TURN_CHARS]}]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return turns[-2 * MAX_TURNS:]


class Seen:
    """Keys seen within a TTL (Slack retries for up to about five minutes): `seen.first(key)` is True once."""

    def __init__(self, ttl: float = 900.0, capacity: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.capacity, self._clock = ttl, capacity, clock
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, *keys: str | None) -> bool:
        """True if none of the keys was seen; all of them are remembered either way."""
        now = self._clock()
        keys = tuple(k for k in keys if k)
        with self._lock:
            while self._keys and (len(self._keys) > self.capacity or now - next(iter(self._keys.values())) > self.ttl):
                self._keys.popitem(last=False)
            fresh = not any(k in self._keys for k in keys)
            for k in keys:
                self._keys[k] = now
                self._keys.move_to_end(k)
        return fresh
