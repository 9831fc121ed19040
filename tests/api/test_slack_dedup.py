"""Slack's redeliveries are answered once across processes: `Seen` on SQLite, and two `lore serve` processes
on one data dir (and one restarted) given the same signed delivery, against the local Slack of tests/support/fake_slack.py."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.slack.convo import Seen
from tests.support import LORE, SAMPLES
from tests.support.fake_slack import BOT_USER, TEAM, TOKEN, FakeSlack
from tests.support.live import free_port
from tests.support.slack import PTO, SECRET, signed

RACERS, KEY_SETS = 4, 150


# -- Seen on SQLite --------------------------------------------------------------------------------------
def test_two_seen_on_one_data_dir_agree_that_only_the_first_delivery_is_new(tmp_path):
    a, b = Seen(tmp_path / "slack.db"), Seen(tmp_path / "slack.db")  # as two processes would open it
    assert a.shared and b.shared
    assert a.first("event:Ev1", "msg:C1:1.0", "cmsg:x1")
    assert not b.first("event:Ev1", "msg:C1:1.0", "cmsg:x1")  # Slack's retry, delivered to the other worker
    assert not b.first("event:Ev2", "msg:C1:1.0")  # the same message under another event id
    assert not a.first("event:Ev2")  # remembered by b although b did not answer it
    assert b.first("event:Ev3", "msg:C1:2.0") and not a.first("msg:C1:2.0")
    assert a.first() and a.first(None, "")  # payloads without delivery keys (button clicks) always pass
    a.close()
    assert not a.shared and Seen(tmp_path / "slack.db").first("event:Ev4") and not b.first("event:Ev4")


def _race(path: str, order: int, barrier, results) -> None:
    seen = Seen(path)
    sets = [(i, (f"event:E{i}", f"msg:C:{i}")) for i in range(KEY_SETS)]
    if order % 2:  # half the racers claim each delivery's keys in the other order
        sets = [(i, keys[::-1]) for i, keys in sets]
    barrier.wait()
    results.put([i for i, keys in sets if seen.first(*keys)])


def test_racing_processes_answer_each_delivery_exactly_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(RACERS), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "slack.db"), i, barrier, results))
             for i in range(RACERS)]
    for p in procs:
        p.start()
    won = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    claimed = sorted(i for w in won for i in w)
    assert claimed == list(range(KEY_SETS)), [len(w) for w in won]


def test_a_key_expires_after_the_ttl_and_expired_keys_are_pruned(tmp_path):
    t = [1000.0]
    path = tmp_path / "slack.db"
    a = Seen(path, ttl=60, clock=lambda: t[0], prune_every=1e9)  # no pruning: expiry alone must free the key
    assert a.first("event:Ev1")
    t[0] = 1059.0
    b = Seen(path, ttl=60, clock=lambda: t[0], prune_every=1e9)  # a restart within the TTL
    assert not b.first("event:Ev1")
    t[0] = 1061.0
    assert a.first("event:Ev1") and not b.first("event:Ev1")  # expired, then taken again by one of them
    c = Seen(path, ttl=60, clock=lambda: t[0], prune_every=10)
    assert c.first("event:Old")
    t[0] = 1200.0
    assert c.first("event:New")  # past prune_every: rows older than the TTL are deleted
    with sqlite3.connect(path) as db:
        assert [k for (k,) in db.execute("SELECT key FROM deliveries")] == ["event:New"]
    with pytest.raises(ValueError, match="ttl"):
        Seen(path, ttl=0)


def test_without_a_writable_data_dir_it_falls_back_to_memory_with_one_warning(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    caplog.set_level("WARNING", logger="api.slack.convo")
    seen = Seen(blocker / "slack.db")  # the data dir cannot be created: as unwritable as a read-only one
    assert not seen.shared
    assert seen.first("event:Ev1") and not seen.first("event:Ev1") and seen.first("event:Ev2")
    (warning,) = [r for r in caplog.records if r.name == "api.slack.convo"]
    assert warning.levelname == "WARNING" and "LORE_DATA_DIR" in warning.getMessage()


# -- live service processes ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kb(tmp_path_factory, onnx_cache) -> Path:
    from api.settings import Settings
    from tests.support.live import ingest

    data = tmp_path_factory.mktemp("slack-dedup-kb")
    ingest(Settings(data_dir=data), [SAMPLES])
    return data


@pytest.fixture(scope="module")
def slack():
    """One local Slack for the module, so message timestamps never repeat in the shared data dir's slack.db."""
    with FakeSlack() as s:
        s.add_user("USAM", email="sam@acme.test")
        s.add_channel("C0MIXED", ["USAM", BOT_USER])
        yield s


class Service:
    """`lore serve` in its own process on `data`, its Slack Web API calls going to `slack`."""

    def __init__(self, data: Path, slack: FakeSlack) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_SLACK__")}
        env |= {"LORE_DATA_DIR": str(data), "LORE_SLACK__BOT_TOKEN": TOKEN, "LORE_SLACK__SIGNING_SECRET": SECRET,
                "LORE_SLACK__API_URL": slack.url, "LORE_LOG_LEVEL": "INFO"}
        self.log = data.parent / f"serve-{self.port}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen([LORE, "serve", "--port", str(self.port)], env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT)

    def wait(self) -> "Service":
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"lore serve did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._out.close()


def delivery(message: dict, event_id: str) -> bytes:
    return json.dumps({"token": "legacy", "team_id": TEAM, "api_app_id": "A0LORE", "type": "event_callback",
                       "event": {**message, "type": "app_mention", "channel": "C0MIXED"}, "event_id": event_id,
                       "event_time": int(time.time()),
                       "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}]}).encode()


def deliver(svc: Service, body: bytes, retry: int | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **signed(body)}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    r = httpx.post(svc.url + "/slack/events", content=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r


def answered(slack: FakeSlack, ts: str) -> tuple[int, int]:
    """(status messages posted in the question's thread, chat.update calls on them), once the answer is in."""
    status = slack.wait_for("chat.postMessage", timeout=60, channel="C0MIXED", thread_ts=ts)[0]
    slack.wait_for("chat.update", timeout=60, channel="C0MIXED", ts=status.response["ts"])
    time.sleep(1.5)  # room for a second answer to show up
    posts = slack.calls_to("chat.postMessage", channel="C0MIXED", thread_ts=ts)
    return len(posts), sum(len(slack.calls_to("chat.update", channel="C0MIXED", ts=p.response["ts"])) for p in posts)


def test_two_service_processes_on_one_data_dir_answer_a_delivery_once(kb, slack):
    services = [Service(kb, slack), Service(kb, slack)]
    try:
        for s in services:
            s.wait()
        m = slack.user_message("C0MIXED", "USAM", f"<@{BOT_USER}> {PTO}")
        body, go, replies = delivery(m, "EvTWICE1"), threading.Barrier(2), []

        def send(svc: Service) -> None:
            go.wait()
            replies.append(deliver(svc, body))

        threads = [threading.Thread(target=send, args=(s,)) for s in services]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert answered(slack, m["ts"]) == (1, 1)
        assert sorted(r.headers.get("x-slack-no-retry") or "" for r in replies) == ["", "1"]
        for i, s in enumerate(services):  # both answer questions of their own: the one answer was not luck
            other = slack.user_message("C0MIXED", "USAM", f"<@{BOT_USER}> who approves PTO requests?")
            deliver(s, delivery(other, f"EvOWN{i}"))
            assert answered(slack, other["ts"]) == (1, 1)
    finally:
        for s in services:
            s.stop()


def test_a_restarted_service_still_ignores_a_retry_of_an_answered_event(kb, slack):
    m = slack.user_message("C0MIXED", "USAM", f"<@{BOT_USER}> what is the payments api rate limit?")
    body = delivery(m, "EvRESTART1")
    first = Service(kb, slack).wait()
    try:
        deliver(first, body)
        assert answered(slack, m["ts"]) == (1, 1)
    finally:
        first.stop()
    again = Service(kb, slack).wait()
    try:
        r = deliver(again, body, retry=1)
        assert r.headers.get("x-slack-no-retry") == "1"
        deliver(again, delivery(m, "EvRESTART2"))  # the same message under another event id
        other = slack.user_message("C0MIXED", "USAM", f"<@{BOT_USER}> {PTO}")
        deliver(again, delivery(other, "EvRESTART3"))
        assert answered(slack, other["ts"]) == (1, 1)  # the restarted service answers new questions
        assert len(slack.calls_to("chat.postMessage", channel="C0MIXED", thread_ts=m["ts"])) == 1
    finally:
        again.stop()
