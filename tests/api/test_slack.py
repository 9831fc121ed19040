"""The Slack bot end to end: signed Slack payloads over real HTTP to a running Lore service, whose Web API
calls go to a local Slack (tests/support/fake_slack.py) that keeps messages and records every call."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.support import LORE, SAMPLES
from tests.support.fake_slack import BOT_USER, TEAM, TOKEN, FakeSlack, block_problems
from tests.support.slack import PTO, SECRET, signed  # noqa: F401

PUBLIC_URL = "https://lore.example.com"
SALARY = "what is the salary band for a senior engineer in Lisbon?"
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer, ingest

    with FakeSlack() as slack:
        slack.add_user("UANA", email="ana@acme.test")
        slack.add_user("UBEN", email="ben@acme.test")
        slack.add_user("USAM", email="sam@acme.test")
        slack.add_user("UGUS", email="gus@acme.test", guest=True)
        slack.add_usergroup("S0PEOPLE", "people-ops", ["UANA", "UBEN", "UGUS"])
        slack.add_channel("C0MIXED", ["UANA", "USAM", BOT_USER])
        slack.add_channel("C0HR", ["UANA", "UBEN", BOT_USER])
        slack.add_channel("C0GUEST", ["UANA", "UBEN", "UGUS", BOT_USER])
        slack.add_channel("C0NOBOT", ["UANA", "USAM"])
        slack.add_channel("D0ANA", ["UANA", BOT_USER], im_user="UANA")
        slack.add_channel("D0SAM", ["USAM", BOT_USER], im_user="USAM")
        data = tmp_path_factory.mktemp("slack-kb")
        settings = Settings(data_dir=data, server={"public_url": PUBLIC_URL}, slack={
            "bot_token": TOKEN, "signing_secret": SECRET, "app_token": "xapp-1-test", "api_url": slack.url,
            "users": {"UANA": "ana"}, "email_domains": {"acme.test": ["staff"]},
            "user_groups": {"people-ops": ["hr"]}})
        ingest(settings, [SAMPLES])
        with LiveServer(settings) as srv:
            srv.slack = slack
            srv.admin = srv.services.keys.create("root", "", "admin")[0]
            yield srv


def post(env, body: bytes, content_type: str, headers: dict | None = None, **sign) -> httpx.Response:
    h = {"Content-Type": content_type, **signed(body, **sign), **(headers or {})}
    t0 = time.monotonic()
    r = httpx.post(env.url + "/slack/events", content=body, headers=h, timeout=10)
    r.elapsed_s = time.monotonic() - t0
    return r


def send_event(env, event: dict, event_id: str | None = None, headers: dict | None = None) -> httpx.Response:
    body = {"token": "legacy", "team_id": TEAM, "api_app_id": "A0LORE", "type": "event_callback", "event": event,
            "event_id": event_id or f"Ev{next(_ids):06d}", "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}]}
    r = post(env, json.dumps(body).encode(), "application/json", headers)
    assert r.status_code == 200 and r.elapsed_s < 3, (r.status_code, r.text, r.elapsed_s)
    return r


def mention(env, channel: str, user: str, text: str, thread_ts: str | None = None, **kw) -> dict:
    """A person mentions the bot: the message is stored in Slack, then its app_mention event is delivered."""
    m = env.slack.user_message(channel, user, f"<@{BOT_USER}> {text}", thread_ts)
    send_event(env, {**m, "type": "app_mention", "channel": channel}, **kw)
    return m


def dm(env, channel: str, user: str, text: str, thread_ts: str | None = None) -> dict:
    m = env.slack.user_message(channel, user, text, thread_ts)
    send_event(env, {**m, "channel": channel, "channel_type": "im"})
    return m


def reply_to(env, channel: str, thread_ts: str | None, **match) -> dict:
    """The status message posted for a question and the chat.update that replaced it: the final message."""
    (status,) = env.slack.wait_for("chat.postMessage", channel=channel, thread_ts=thread_ts, **match)[-1:]
    assert "Searching" in status.args["text"]
    ts = status.response["ts"]
    env.slack.wait_for("chat.update", channel=channel, ts=ts)
    return env.slack.message(channel, ts)


def texts(msg: dict) -> str:
    out = []
    for b in msg["blocks"]:
        if b["type"] == "section":
            out.append(b["text"]["text"])
        elif b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return "\n".join(out)


def trace_of(msg: dict) -> str:
    (actions,) = [b for b in msg["blocks"] if b["type"] == "actions"]
    values = {e["action_id"]: e["value"] for e in actions["elements"]}
    assert set(values) == {"lore_feedback_up", "lore_feedback_down"} and len(set(values.values())) == 1
    return values["lore_feedback_up"]


def audit(env, **params) -> dict:
    r = httpx.get(env.url + "/v1/audit", params=params, headers={"Authorization": f"Bearer {env.admin}"})
    assert r.status_code == 200, r.text
    return r.json()


# -- the protocol ----------------------------------------------------------------------------------------
def test_url_verification_and_signatures(env):
    body = json.dumps({"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    r = post(env, body, "application/json")
    assert r.status_code == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in r.text
    assert post(env, body, "application/json", secret="not-the-secret").status_code == 401
    stale = post(env, body, "application/json", ts=int(time.time()) - 6 * 60)
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "unauthorized"
    assert httpx.post(env.url + "/slack/events", content=body).status_code == 401  # unsigned
    bad_ts = httpx.post(env.url + "/slack/events", content=b"{not json",
                        headers={"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"})
    assert bad_ts.status_code == 401
    tampered = signed(body)
    r = httpx.post(env.url + "/slack/events", content=body.replace(b"3eZ", b"4eZ"), headers=tampered)
    assert r.status_code == 401
    assert "/slack/events" not in httpx.get(env.url + "/openapi.json").json()["paths"]


def test_off_when_not_configured(tmp_path, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer

    with LiveServer(Settings(data_dir=tmp_path)) as srv:
        r = httpx.post(srv.url + "/slack/events", content=b"{}")
    assert r.status_code == 404
    assert "LORE_SLACK__BOT_TOKEN" in r.json()["error"]["message"]


# -- answering -------------------------------------------------------------------------------------------
def test_mention_in_a_channel_answers_in_the_thread_with_sources_and_buttons(env):
    q = mention(env, "C0MIXED", "USAM", PTO)
    msg = reply_to(env, "C0MIXED", q["ts"])
    body = texts(msg)
    assert msg["thread_ts"] == q["ts"] and "40" in msg["text"]
    assert "*Sources*" in body and "Paid Time Off (PTO) Policy" in body
    assert "Carry-over" in body and "Policy" in body and "updated 2026-03-01" in body
    links = [x.split("|")[0] for x in body.split("<")[1:] if x.startswith("http")]
    assert links and all(x.startswith(PUBLIC_URL + "/?passage=") for x in links)
    q0 = parse_qs(urlsplit(links[0]).query)
    assert "#" in q0["passage"][0] and int(q0["end"][0]) > int(q0["start"][0])  # chunk ids are percent-encoded
    trace = trace_of(msg)
    (rec,) = audit(env, trace_id=trace)["records"]
    assert rec["channel"] == "slack" and rec["via"] == "slack" and rec["question"] == PTO
    assert rec["context"]["channel"] == "C0MIXED" and rec["context"]["thread_ts"] == q["ts"]
    assert rec["context"]["slack_user"] == "USAM" and rec["context"]["team"] == TEAM
    assert rec["user"] == "sam@acme.test" and rec["groups"] == ["staff"]  # the channel's common groups
    assert not block_problems(msg["blocks"], msg["text"])
    metrics = httpx.get(env.url + "/metrics").text
    assert 'lore_answers_total{channel="slack"' in metrics


def test_abstention_says_so_and_lists_the_closest_sources(env):
    q = mention(env, "C0MIXED", "USAM", "what is our parental leave policy?")
    msg = reply_to(env, "C0MIXED", q["ts"])
    body = texts(msg)
    assert "Not found in the knowledge base" in body and "Closest sources" in body
    assert body.count(f"<{PUBLIC_URL}/?passage=") >= 1 and trace_of(msg)


def test_retries_never_answer_twice(env):
    q = mention(env, "C0MIXED", "USAM", "what is the payments api rate limit?", event_id="EvRETRY1")
    reply_to(env, "C0MIXED", q["ts"])
    event = {**q, "type": "app_mention", "channel": "C0MIXED"}
    r = send_event(env, event, event_id="EvRETRY1", headers={"X-Slack-Retry-Num": "1",
                                                             "X-Slack-Retry-Reason": "http_timeout"})
    assert r.headers.get("x-slack-no-retry") == "1"
    send_event(env, event, event_id="EvRETRY1")  # redelivered without the header
    send_event(env, event, event_id="EvOTHER1")  # the same message under another event id
    time.sleep(1.0)
    assert len(env.slack.calls_to("chat.postMessage", channel="C0MIXED", thread_ts=q["ts"])) == 1


def test_hr_passage_in_a_dm_but_never_in_a_mixed_channel(env):
    q = dm(env, "D0ANA", "UANA", SALARY)
    msg = reply_to(env, "D0ANA", q["ts"])
    assert "Compensation Bands 2026" in texts(msg) and "68,000" in texts(msg)
    (rec,) = audit(env, trace_id=trace_of(msg))["records"]
    assert rec["user"] == "ana" and rec["groups"] == ["hr", "staff"] and rec["context"]["permissions"] == "own"

    q = mention(env, "C0MIXED", "UANA", SALARY)  # sam, who is not in HR, reads this channel
    msg = reply_to(env, "C0MIXED", q["ts"])
    assert "Compensation" not in texts(msg) and "68,000" not in json.dumps(msg)
    (rec,) = audit(env, trace_id=trace_of(msg))["records"]
    assert rec["groups"] == ["staff"] and rec["context"]["permissions"] == "common"
    assert not any("compensation" in s["uri"] for s in rec["sources"])

    q = mention(env, "C0GUEST", "UANA", SALARY)  # a guest in the HR user group: no domain group, so no staff
    (rec,) = audit(env, trace_id=trace_of(reply_to(env, "C0GUEST", q["ts"])))["records"]
    assert rec["groups"] == ["hr"]

    q = dm(env, "D0SAM", "USAM", SALARY)
    assert "Compensation" not in texts(reply_to(env, "D0SAM", q["ts"]))


def test_channel_of_hr_members_reads_hr_unless_strict(env):
    q = mention(env, "C0HR", "UBEN", SALARY)
    msg = reply_to(env, "C0HR", q["ts"])
    assert "Compensation Bands 2026" in texts(msg)
    slack = env.services.settings.slack
    slack.channel_permissions = "strict"
    try:
        q = mention(env, "C0HR", "UBEN", SALARY)
        msg = reply_to(env, "C0HR", q["ts"])
    finally:
        slack.channel_permissions = "common"
    assert "Compensation" not in texts(msg)
    (rec,) = audit(env, trace_id=trace_of(msg))["records"]
    assert rec["groups"] == [] and rec["context"]["permissions"] == "strict"


def test_follow_up_in_the_thread_uses_its_history(env):
    alone = dm(env, "D0ANA", "UANA", "and in Lisbon?")  # standalone, it is about hotel rates
    assert "Travel and Expense" in texts(reply_to(env, "D0ANA", alone["ts"]))
    q = dm(env, "D0ANA", "UANA", "what is the salary band for a Staff Engineer?")
    first = reply_to(env, "D0ANA", q["ts"])
    assert first["metadata"]["event_payload"]["trace_id"] == trace_of(first)
    dm(env, "D0ANA", "UANA", "and in Lisbon?", thread_ts=q["ts"])
    msg = reply_to(env, "D0ANA", q["ts"], count=2)
    assert msg["thread_ts"] == q["ts"]
    assert env.slack.calls_to("conversations.replies", channel="D0ANA", ts=q["ts"])
    (rec,) = audit(env, trace_id=trace_of(msg))["records"]
    assert rec["context"]["history_turns"] == 1 and rec["context"]["thread_ts"] == q["ts"]
    assert "Compensation Bands 2026" in texts(msg) and "Travel and Expense" not in texts(msg)


def test_slash_command_in_a_channel_uses_the_channel_and_in_the_dm_the_asker(env):
    def command(channel: str, user: str, text: str) -> httpx.Response:
        form = {"token": "legacy", "team_id": TEAM, "team_domain": "acme", "channel_id": channel,
                "channel_name": "directmessage" if channel.startswith("D") else "general", "user_id": user,
                "user_name": user.lower(), "command": "/lore", "text": text, "api_app_id": "A0LORE",
                "response_url": env.slack.url.replace("/api/", f"/respond/{next(_ids)}"),
                "trigger_id": f"trig.{next(_ids)}"}
        r = post(env, urlencode(form).encode(), "application/x-www-form-urlencoded")
        assert r.status_code == 200 and r.elapsed_s < 3
        return r

    command("C0MIXED", "UANA", SALARY)
    posted = env.slack.wait_for("chat.postMessage", channel="C0MIXED", thread_ts=None)
    status = [c for c in posted if SALARY in json.dumps(c.args.get("blocks"))][-1]
    env.slack.wait_for("chat.update", channel="C0MIXED", ts=status.response["ts"])
    msg = env.slack.message("C0MIXED", status.response["ts"])
    assert "<@UANA> asked:" in texts(msg) and "Compensation" not in texts(msg)
    assert msg["metadata"]["event_payload"]["question"] == SALARY

    command("D0ANA", "UANA", SALARY)
    status = [c for c in env.slack.wait_for("chat.postMessage", channel="D0ANA", thread_ts=None)][-1]
    env.slack.wait_for("chat.update", channel="D0ANA", ts=status.response["ts"])
    assert "Compensation Bands 2026" in texts(env.slack.message("D0ANA", status.response["ts"]))

    before = len(env.slack.responses)
    command("C0NOBOT", "UANA", SALARY)  # the bot is not in this conversation: a hint only the asker sees
    deadline = time.monotonic() + 10
    while len(env.slack.responses) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    (_, hint), = env.slack.responses[before:]
    assert hint["response_type"] == "ephemeral" and "/invite" in hint["text"]
    assert not env.slack.calls_to("chat.postMessage", channel="C0NOBOT")


def test_feedback_buttons_are_recorded_with_the_trace_id(env):
    q = mention(env, "C0MIXED", "USAM", PTO)
    msg = reply_to(env, "C0MIXED", q["ts"])
    trace = trace_of(msg)
    payload = {"type": "block_actions", "user": {"id": "UANA", "team_id": TEAM}, "api_app_id": "A0LORE",
               "token": "legacy", "team": {"id": TEAM, "domain": "acme"}, "trigger_id": f"trig.{next(_ids)}",
               "container": {"type": "message", "message_ts": msg["ts"], "channel_id": "C0MIXED"},
               "channel": {"id": "C0MIXED", "name": "general"}, "message": msg,
               "response_url": env.slack.url.replace("/api/", "/respond/fb"),
               "actions": [{"action_id": "lore_feedback_down", "block_id": "lore_feedback", "value": trace,
                            "type": "button", "action_ts": f"{time.time():.6f}"}]}
    r = post(env, urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.elapsed_s < 3
    (thanks,) = env.slack.wait_for("chat.postEphemeral", channel="C0MIXED", user="UANA")
    assert "Thanks" in thanks.args["text"] and thanks.args["thread_ts"] == q["ts"]
    (rec,) = audit(env, trace_id=trace)["records"]
    assert rec["feedback"]["rating"] == "down" and rec["feedback"]["channel"] == "slack"
    assert rec["feedback"]["user"] == "ana"
    assert audit(env, trace_id=trace, rating="down")["total"] == 1


# -- failures --------------------------------------------------------------------------------------------
def test_rate_limits_and_transient_errors_are_retried_and_logged(env, caplog):
    env.slack.script("chat.postMessage", status=429, retry_after=1)
    env.slack.script("conversations.members", error="service_unavailable")
    caplog.set_level("WARNING", logger="api.slack.client")
    t0 = time.monotonic()
    q = mention(env, "C0MIXED", "USAM", "who approves PTO requests?")
    msg = reply_to(env, "C0MIXED", q["ts"])
    tries = env.slack.calls_to("chat.postMessage", channel="C0MIXED", thread_ts=q["ts"])
    assert [c.status for c in tries] == [429, 200] and tries[1].at - tries[0].at >= 1.0
    members = [c.response.get("ok") for c in env.slack.calls_to("conversations.members") if c.at > tries[0].at]
    assert members == [False, True]
    assert trace_of(msg) and time.monotonic() - t0 < 15
    (rec,) = audit(env, trace_id=trace_of(msg))["records"]
    assert rec["context"]["permissions"] == "common"  # the retried look-up counted, not a fallback
    logged = [r.getMessage() for r in caplog.records if r.name == "api.slack.client"]
    assert any("chat.postMessage rate limited (429)" in m for m in logged)
    assert any("conversations.members failed (service_unavailable)" in m for m in logged)


def test_a_failed_update_posts_an_apology_in_the_thread(env):
    env.slack.script("chat.update", error="cant_update_message")
    q = mention(env, "C0MIXED", "USAM", "what happened in the checkout outage?")
    env.slack.wait_for("chat.postMessage", channel="C0MIXED", thread_ts=q["ts"], count=2)
    apology = env.slack.calls_to("chat.postMessage", channel="C0MIXED", thread_ts=q["ts"])[-1]
    assert "Sorry" in apology.args["text"]


def test_a_failed_answer_posts_an_apology_in_place_of_the_status(env, monkeypatch):
    def broken(*a, **kw):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(env.services.assistant, "answer", broken)
    q = mention(env, "C0MIXED", "USAM", "what is the expense limit for meals?")
    ts = env.slack.wait_for("chat.postMessage", channel="C0MIXED", thread_ts=q["ts"])[0].response["ts"]
    env.slack.wait_for("chat.update", channel="C0MIXED", ts=ts)
    msg = env.slack.message("C0MIXED", ts)
    assert "Sorry" in msg["text"] and "trace" in texts(msg) and "Searching" not in msg["text"]


def test_long_answers_stay_within_slack_limits(env):
    from api.slack.blocks import passage_link, render_answer
    from ingest.access import Principal

    a = env.services.assistant.answer(PTO, Principal("sam"))
    many = tuple(replace(c, marker=i, quote=c.quote * 40, title=c.title * 20)
                 for i, c in enumerate(a.citations * 40, 1))
    huge = replace(a, text=("PTO carries over [1]. " * 3000), citations=many)
    text, blocks = render_answer(huge, lambda i, s, e: passage_link(PUBLIC_URL, i, s, e), asked="*x* " * 2000)
    assert not block_problems(blocks, text) and len(blocks) == 50
    assert blocks[-1]["type"] == "actions" and "more sources" in json.dumps(blocks)
    assert "answer shortened" in json.dumps(blocks)


# -- Socket Mode -----------------------------------------------------------------------------------------
def test_socket_mode_runs_the_same_bolt_app(env):
    from slack_bolt.adapter.socket_mode.internals import run_bolt_app
    from slack_sdk.socket_mode.request import SocketModeRequest

    from api.slack.bot import bolt_app, socket_handler

    handler = socket_handler(env.services)
    try:
        assert handler.app is bolt_app(env.services) and handler.app.client.base_url == env.slack.url
        m = env.slack.user_message("D0ANA", "UANA", SALARY)
        payload = {"team_id": TEAM, "api_app_id": "A0LORE", "type": "event_callback", "event_id": "EvSOCKET1",
                   "event": {**m, "channel": "D0ANA", "channel_type": "im"}}
        resp = run_bolt_app(handler.app, SocketModeRequest(type="events_api", envelope_id="e1", payload=payload))
        assert resp.status == 200  # no signature over a socket: Slack authenticated the connection
        assert "Compensation Bands 2026" in texts(reply_to(env, "D0ANA", m["ts"]))
    finally:
        handler.close()


def test_lore_slack_socket_needs_the_app_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_SLACK__")}
    env |= {"LORE_DATA_DIR": str(tmp_path), "LORE_SLACK__BOT_TOKEN": TOKEN}
    r = subprocess.run([LORE, "slack", "--socket"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "LORE_SLACK__APP_TOKEN" in r.stderr
    r = subprocess.run([LORE, "slack", "--socket"], env=env | {"LORE_SLACK__BOT_TOKEN": "",
                       "LORE_SLACK__APP_TOKEN": "xapp-1-x"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "LORE_SLACK__BOT_TOKEN" in r.stderr
    r = subprocess.run([LORE, "slack"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "lore serve" in r.stderr


# -- mapping Slack people to Lore principals ---------------------------------------------------------------
def test_directory_maps_people_and_channels_fail_closed(monkeypatch):
    from api.settings import SlackSettings
    from api.slack import principals
    from api.slack.client import web_client
    from api.slack.principals import Directory
    from ingest.errors import ConfigError

    with FakeSlack() as slack:
        slack.add_user("UANA", email="Ana@Acme.test")
        slack.add_user("UOUT", email="omar@acme.test", team="T0OTHER")  # Slack Connect: another workspace
        slack.add_user("UNEW", email="nia@elsewhere.test")
        slack.add_user("UHOOK", name="deploy-bot", is_bot=True)
        slack.add_usergroup("S0ENG", "eng", ["UANA", "UOUT"])
        crowd = [f"U{i:05d}" for i in range(450)]
        for u in crowd:
            slack.add_user(u, email=f"{u.lower()}@acme.test")
        slack.add_channel("C0BIG", [BOT_USER, *crowd])
        slack.add_channel("C0BOTS", [BOT_USER, "UANA", "UHOOK"])
        cfg = SlackSettings(bot_token=TOKEN, api_url=slack.url, email_domains={"acme.test": ["staff"]},
                            user_groups={"eng": ["engineering"]}, default_groups=["everyone"])
        d = Directory(web_client(cfg), cfg)
        assert d.principal("UANA", TEAM).user_id == "ana@acme.test"
        assert d.principal("UANA", TEAM).groups == ("engineering", "staff")
        assert d.principal("UOUT", TEAM).groups == ("engineering",)  # no domain or default groups from outside
        assert d.principal("UNEW", TEAM).groups == ("everyone",)  # unmapped: the configured default
        assert d.principal("UHOOK", TEAM) == principals.Principal(None, ())
        assert d.principal("UGONE", TEAM).groups == ()  # users.info fails: explicit mappings only
        assert len(slack.calls_to("usergroups.list")) == 1  # cached

        big = d.scope("C0BIG", crowd[0], own=False, home_team=TEAM, bot_user=BOT_USER)
        assert big.principal == principals.Principal(None, ("staff",)) and big.members == 450
        assert len(slack.calls_to("conversations.members", channel="C0BIG")) == 3  # 200 a page
        infos = len(slack.calls_to("users.info"))
        d.scope("C0BIG", crowd[0], own=False, home_team=TEAM, bot_user=BOT_USER)
        assert len(slack.calls_to("users.info")) == infos  # members are looked up once per TTL
        # another bot in the channel could repost the answer anywhere: it counts as a public-only reader
        assert d.scope("C0BOTS", "UANA", own=False, home_team=TEAM, bot_user=BOT_USER).principal.groups == ()
        assert d.scope("C0NONE", "UANA", own=False, home_team=TEAM, bot_user=BOT_USER).mode == "strict"

        monkeypatch.setattr(principals, "MAX_MEMBERS", 100)
        assert d.scope("C0BIG", crowd[0], own=False, home_team=TEAM, bot_user=BOT_USER).mode == "strict"
        with pytest.raises(ConfigError, match="LORE_SLACK__USER_GROUPS"):
            Directory(web_client(cfg), SlackSettings(user_groups={"eng": ["not a group"]}))


def test_question_text_and_dedup():
    from api.slack.convo import Seen, question_text

    assert question_text(f"<@{BOT_USER}> what's the PTO policy for <@U0X|sam> in <#C0G|general>?", BOT_USER) == \
        "what's the PTO policy for @U0X in #general?"
    assert question_text("see <https://x.test/a|the spec> &amp; <!subteam^S1|@hr>", BOT_USER) == "see the spec & @hr"
    t = [0.0]
    seen = Seen(ttl=10, clock=lambda: t[0])
    assert seen.first("a", "b") and not seen.first("b") and not seen.first("c", "a")
    t[0] = 11.0
    assert seen.first("a")


def test_the_setup_guide_manifests_are_complete():
    import re

    import yaml

    from tests.support import REPO

    text = (REPO / "docs" / "slack.md").read_text()
    http, socket = (yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S))
    needed = {"app_mentions:read", "chat:write", "commands", "im:history", "im:read", "users:read",
              "users:read.email", "channels:read", "groups:read", "usergroups:read", "channels:history"}
    for m in (http, socket):
        assert needed <= set(m["oauth_config"]["scopes"]["bot"])
        assert set(m["settings"]["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
        assert m["features"]["slash_commands"][0]["command"] == "/lore" and m["settings"]["interactivity"]["is_enabled"]
    assert http["settings"]["event_subscriptions"]["request_url"].endswith("/slack/events")
    assert http["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert socket["settings"]["socket_mode_enabled"] and not http["settings"]["socket_mode_enabled"]
