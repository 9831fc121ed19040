"""The one Bolt app: mentions, direct messages, `/lore` and feedback buttons, over HTTP or Socket Mode.

Every listener acknowledges at once (Bolt answers Slack before the listener body runs, since
`process_before_response` is off) and does the work on the app's thread pool: post a status message in the
question's thread, answer under the permissions of everyone who will see the reply, replace the status with
the answer. Whatever fails after the status message turns into a short apology in its place or in the thread.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from api.slack.blocks import (ACTION_DOWN, ACTION_UP, clip, escape, passage_link, render_answer, render_notice,
                              render_status)
from api.slack.client import web_client
from api.slack.convo import MAX_QUESTION, Seen, answer_metadata, question_text, thread_history
from api.slack.principals import Directory
from ingest.errors import ConfigError, LoreError
from ingest.access import Principal
from ingest.keys import Caller

if TYPE_CHECKING:
    from api.deps import Services
    from api.metrics import Metrics
    from api.settings import SlackSettings
    from assistant.service import Assistant
    from evals.audit import AuditLog

log = logging.getLogger(__name__)
WORKERS = 8
HELP = ("Ask me about your company's documents, e.g. `@Lore how many PTO hours carry over?`, "
        "a direct message, or `/lore <question>`. I answer with sources you can check.")
APOLOGY = ":warning: Sorry, something went wrong while answering; please try again in a minute."
NOT_HERE = ("I can't post in this conversation. Invite me with `/invite @Lore`, or ask me in a direct message "
            "(replies there use your own permissions).")
_apps: "weakref.WeakKeyDictionary[object, App]" = weakref.WeakKeyDictionary()
_apps_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Question:
    """One question to answer, and where and for whom the reply goes."""

    team: str | None
    channel: str
    user: str
    text: str
    thread_ts: str | None  # the thread the reply goes in; None = top level (slash commands)
    ts: str | None = None  # the question's own message, if it is one
    own: bool = False  # only the asker sees the conversation (their DM with the bot)
    follow_up: bool = False  # asked inside an existing thread: its earlier answers are history
    asked: str | None = None  # heads a reply that is not under the question message


def conversation_key(team: str | None, channel: str) -> str:
    """Who may rate an answer: the conversation it was posted in (the audit log's key_id for Slack answers)."""
    return f"slack:{team or '-'}:{channel}"


class Bot:
    """The listeners' work: `Bot(assistant, audit, metrics, client, settings.slack, seen, base_url)`, then
    `.answer(client, Question(...), bot_user)`. `assistant` and `audit` are built on first call (a bot that
    only acknowledges loads no model); `seen` is the data dir's slack.db, shared by every process on it."""

    def __init__(self, assistant: Callable[[], Assistant], audit: Callable[[], AuditLog], metrics: Metrics,
                 client: WebClient, settings: SlackSettings, seen: Path, base_url: str) -> None:
        self.assistant, self.audit, self.metrics = assistant, audit, metrics
        self.directory = Directory(client, settings)
        self.seen = Seen(seen)
        self.base_url = base_url

    # -- middleware and listeners ----------------------------------------------------------------
    def dedup(self, req, body: dict, next):
        """Slack redelivers an event it thinks was lost (X-Slack-Retry-Num); each question is answered once."""
        if self.seen.first(*_delivery_keys(body)):
            return next()
        retry = (req.headers.get("x-slack-retry-num") or [None])[0]
        log.info("slack: ignored a repeated delivery of %s (retry %s)", body.get("event_id") or "a request", retry)
        return BoltResponse(status=200, body="", headers={"x-slack-no-retry": "1"})

    def on_mention(self, event: dict, context, client: WebClient) -> None:
        if not event.get("user") or event.get("bot_id"):
            return
        ts = event["ts"]
        self.answer(client, Question(context.team_id, event["channel"], event["user"],
                                     question_text(event.get("text", ""), context.bot_user_id),
                                     event.get("thread_ts") or ts, ts, follow_up=bool(event.get("thread_ts"))),
                    context.bot_user_id)

    def on_message(self, event: dict, context, client: WebClient) -> None:
        """Direct messages only; edits, joins and other bots' messages are not questions."""
        if (event.get("channel_type") != "im" or event.get("subtype") not in (None, "thread_broadcast")
                or event.get("bot_id") or not event.get("user")):
            return
        ts = event["ts"]
        self.answer(client, Question(context.team_id, event["channel"], event["user"],
                                     question_text(event.get("text", ""), context.bot_user_id),
                                     event.get("thread_ts") or ts, ts, own=True,
                                     follow_up=bool(event.get("thread_ts"))), context.bot_user_id)

    def on_command(self, ack, command: dict, context, client: WebClient, respond) -> None:
        """`/lore <question>`: the reply is posted in the conversation, so it uses that conversation's
        permissions; only in the asker's own DM with the bot does it use theirs."""
        ack()
        user, channel = command["user_id"], command["channel_id"]
        text = question_text(command.get("text", ""), context.bot_user_id)
        if not text:
            respond(text=HELP, response_type="ephemeral")
            return
        try:
            info = client.conversations_info(channel=channel)["channel"]
        except SlackApiError as exc:  # a DM between two people, or a private channel without the bot
            log.info("slack /lore in %s: conversations.info failed (%s)", channel, exc.response.get("error"))
            respond(text=NOT_HERE, response_type="ephemeral")
            return
        own = bool(info.get("is_im")) and info.get("user") == user
        self.answer(client, Question(context.team_id, channel, user, text, None, own=own,
                                     asked=f"*<@{user}> asked:* {escape(clip(text, 500))}"),
                    context.bot_user_id, respond=respond)

    def on_feedback(self, ack, body: dict, action: dict, context, client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
        rating = "up" if action["action_id"] == ACTION_UP else "down"
        clicker = self.directory.user(user)
        who = Caller(Principal.of(self.directory.lore_user(clicker)), "reader", "slack",
                     conversation_key(context.team_id, channel))
        try:
            self.audit().feedback(caller=who, trace_id=action.get("value") or "", rating=rating, channel="slack")
            note = "Thanks, your feedback is recorded."
        except LoreError as exc:
            log.info("slack feedback on %s not recorded: %s", action.get("value"), exc)
            note = "Sorry, I could not record that: the answer is no longer in Lore's log."
        except Exception:  # the click is acknowledged already; the person still hears back
            log.exception("slack feedback on %s failed", action.get("value"))
            note = APOLOGY
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=note,
                                      thread_ts=(body.get("message") or {}).get("thread_ts"))
        except SlackApiError as exc:
            log.warning("slack chat.postEphemeral failed (%s)", exc.response.get("error"))

    # -- answering -------------------------------------------------------------------------------
    def answer(self, client: WebClient, q: Question, bot_user: str | None, respond=None) -> None:
        """Status message first, then the answer (or an apology) in its place: never silence."""
        if not q.text or len(q.text) > MAX_QUESTION:
            note = HELP if not q.text else f"That question is over {MAX_QUESTION} characters; please shorten it."
            self._post(client, q.channel, q.thread_ts, *render_notice(note, q.asked))
            return
        text, blocks = render_status(q.asked)
        try:
            status_ts = client.chat_postMessage(channel=q.channel, thread_ts=q.thread_ts, text=text,
                                                blocks=blocks)["ts"]
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("slack chat.postMessage in %s failed (%s): cannot answer there", q.channel, error)
            if respond is not None:
                respond(text=NOT_HERE if error in ("not_in_channel", "channel_not_found") else APOLOGY,
                        response_type="ephemeral")
            return
        thread = q.thread_ts or status_ts
        metadata = None
        try:
            text, blocks, metadata = self._reply(client, q, bot_user, thread)
        except LoreError as exc:  # bad input or a store that is down: the message says what to do
            log.warning("slack answer in %s failed: %s", q.channel, exc)
            text, blocks = render_notice(f":warning: Sorry, I could not answer that: {escape(str(exc))}", q.asked)
        except Exception:
            trace = uuid.uuid4().hex
            log.exception("slack answer %s in %s failed", trace, q.channel)
            text, blocks = render_notice(f"{APOLOGY} (trace `{trace}`)", q.asked)
        try:
            client.chat_update(channel=q.channel, ts=status_ts, text=text, blocks=blocks, metadata=metadata)
        except SlackApiError as exc:
            log.warning("slack chat.update in %s failed (%s): posting an apology", q.channel,
                        exc.response.get("error"))
            self._post(client, q.channel, thread, APOLOGY, None)

    def _reply(self, client: WebClient, q: Question, bot_user: str | None, thread: str):
        t0 = time.perf_counter()
        scope = self.directory.scope(q.channel, q.user, own=q.own, home_team=q.team, bot_user=bot_user)
        history = None
        if q.follow_up and q.thread_ts:
            try:
                history = thread_history(client, q.channel, q.thread_ts, q.ts, bot_user) or None
            except SlackApiError as exc:  # the question still gets an answer, as a standalone one
                log.warning("slack conversations.replies %s failed (%s): no history", q.channel,
                            exc.response.get("error"))
        answer = self.assistant().answer(q.text, scope.principal, None, history)
        d = answer.to_dict()
        asker = self.directory.lore_user(self.directory.user(q.user))
        who = Caller(Principal.of(asker, list(scope.principal.groups)), "reader", "slack",
                     conversation_key(q.team, q.channel))
        latency = round((time.perf_counter() - t0) * 1000, 2)
        self.audit().record(caller=who, channel="slack", question=q.text, answer=d, latency_ms=latency,
                              context={"team": q.team, "channel": q.channel, "thread_ts": thread,
                                       "slack_user": q.user, "permissions": scope.mode,
                                       "history_turns": len(history or ()) // 2})
        self.metrics.observe_answer(d, "slack")
        link = lambda chunk_id, start, end: passage_link(self.base_url, chunk_id, start, end)  # noqa: E731
        text, blocks = render_answer(answer, link, asked=q.asked)
        return text, blocks, answer_metadata(q.text, answer.trace_id)

    @staticmethod
    def _post(client: WebClient, channel: str, thread_ts: str | None, text: str, blocks) -> None:
        try:
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.error("slack chat.postMessage in %s failed (%s): the asker got no reply", channel,
                      exc.response.get("error"))


def _delivery_keys(body: dict) -> tuple[str, ...]:
    """What makes two deliveries the same: the event id, and for questions the message itself."""
    if body.get("type") == "event_callback":
        e = body.get("event") or {}
        keys = [f"event:{body.get('event_id')}"] if body.get("event_id") else []
        if e.get("type") == "app_mention" or (e.get("type") == "message" and e.get("channel_type") == "im"):
            keys += [f"msg:{e.get('channel')}:{e.get('ts')}"]
            keys += [f"cmsg:{e['client_msg_id']}"] if e.get("client_msg_id") else []
        return tuple(keys)
    if body.get("command") and body.get("trigger_id"):
        return (f"command:{body['trigger_id']}",)
    return ()


def build_app(svc: Services) -> App:
    """A Bolt app over the parts of `svc` the bot uses; building it makes no network call (the token is
    checked on first use)."""
    s = svc.settings.slack
    if not s.bot_token.get_secret_value():
        raise ConfigError("the Slack bot needs a bot token: set LORE_SLACK__BOT_TOKEN (xoxb-…; docs/slack.md)")
    client = web_client(s)
    app = App(client=client, signing_secret=s.signing_secret.get_secret_value(), token_verification_enabled=False,
              process_before_response=False, name="lore",
              listener_executor=ThreadPoolExecutor(WORKERS, thread_name_prefix="lore-slack"),
              logger=logging.getLogger("api.slack.bolt"))
    server = svc.settings.server
    bot = Bot(lambda: svc.assistant, lambda: svc.audit, svc.metrics, client, s, Path(svc.settings.data_dir) / "slack.db",
              server.public_url or f"http://{server.host}:{server.port}")
    app.use(bot.dedup)
    app.event("app_mention")(bot.on_mention)
    app.event("message")(bot.on_message)
    app.command(re.compile(r"^/"))(bot.on_command)  # whatever the command is named in the app's manifest
    app.action(re.compile(f"^({ACTION_UP}|{ACTION_DOWN})$"))(bot.on_feedback)
    app.lore_bot = bot  # type: ignore[attr-defined] # for tests and the Socket Mode runner
    return app


def bolt_app(svc: Services) -> App:
    """The one Bolt app of this Services, built on first use; HTTP and Socket Mode share it."""
    with _apps_lock:
        app = _apps.get(svc)
        if app is None:
            app = _apps[svc] = build_app(svc)
        return app


def socket_handler(svc: Services):
    """Socket Mode on the same Bolt app; needs the app-level token as well as the bot token."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    token = svc.settings.slack.app_token.get_secret_value()
    if not token:
        raise ConfigError("Socket Mode needs an app-level token: set LORE_SLACK__APP_TOKEN (xapp-…, created under "
                          "Basic Information > App-Level Tokens with the connections:write scope; docs/slack.md)")
    if not token.startswith("xapp-"):
        raise ConfigError("LORE_SLACK__APP_TOKEN must be an app-level token starting with xapp-, not a bot or "
                          "user token")
    return SocketModeHandler(bolt_app(svc), token)


def run_socket_mode(settings) -> None:
    """`lore slack --socket`: answer over Socket Mode until interrupted."""
    from api.deps import Services

    svc = Services(settings)
    handler = socket_handler(svc)
    svc.warm_up()
    log.warning("Lore's Slack bot is connecting over Socket Mode (%s)", settings.data_dir)
    try:
        handler.start()
    finally:
        handler.close()
        svc.close()
