"""Slack's Events API, slash commands and interactivity at POST /slack/events (docs/slack.md).

Slack's own protocol, signed with the app's signing secret, so it is left out of the OpenAPI schema: its
callers are Slack's servers, not API clients. Bolt runs on a worker thread; it returns as soon as the
listener acknowledges, and the answer follows on the bot's own thread pool.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.signature import SignatureVerifier

from api.deps import Services, services
from api.errors import body as error_body
from ingest.errors import LoreError

log = logging.getLogger(__name__)
router = APIRouter()
# Slack's Events API wants a 2xx within 3 seconds; later or not 2xx, it redelivers (three times), and an app that
# keeps failing has its event subscriptions disabled. So Slack always hears back in time.
ACK_WITHIN_S = 2.5
_OFF = ("the Slack bot is not configured on this server: set LORE_SLACK__BOT_TOKEN and LORE_SLACK__SIGNING_SECRET "
        "(docs/slack.md)")


def _signed(secret: str, raw: bytes, request: Request) -> bool:
    try:
        return SignatureVerifier(secret).is_valid(raw, request.headers.get("x-slack-request-timestamp", "0"),
                                                  request.headers.get("x-slack-signature", ""))
    except ValueError:  # a timestamp that is not a number
        return False


@router.post("/slack/events", include_in_schema=False)
async def events(request: Request, svc: Services = Depends(services)) -> Response:
    """Events (app_mention, message.im), /lore and button clicks; url_verification answers the challenge."""
    if not svc.settings.slack.enabled:
        return JSONResponse(error_body("not_found", _OFF), status_code=404)
    raw = await request.body()
    # checked before parsing too, so an unsigned body of any shape is a 401 and never reaches a parser
    if not _signed(svc.settings.slack.signing_secret.get_secret_value(), raw, request):
        return JSONResponse(error_body("unauthorized", "the request is not signed by Slack (bad signature, or a "
                                       "timestamp more than 5 minutes off)"), status_code=401)
    from api.slack.bot import bolt_app

    try:
        app = bolt_app(svc)
    except LoreError as exc:  # a bad LORE_SLACK__* mapping: Slack only shows "delivery failed", so log it
        log.error("the Slack bot cannot start: %s", exc)
        return JSONResponse(error_body("not_configured", f"the Slack bot cannot start: {exc}"), status_code=503)
    try:
        req = to_bolt_request(request, raw)
    except ValueError:
        return JSONResponse(error_body("bad_request", "the body is not a Slack payload"), status_code=400)
    kind = _kind(req.body)
    work = asyncio.get_running_loop().run_in_executor(None, app.dispatch, req)
    try:
        resp = await asyncio.wait_for(asyncio.shield(work), ACK_WITHIN_S)
    except asyncio.TimeoutError:  # Bolt's auth.test waits on Slack's Web API: answer Slack now, log the outcome
        log.warning("slack: the bot did not acknowledge a %s within %.1fs (is Slack's Web API slow or "
                    "unreachable?); acknowledged it so Slack does not redeliver it", kind, ACK_WITHIN_S)
        work.add_done_callback(lambda done: _late(kind, done))
        return Response(status_code=200)
    if resp.status >= 500:
        _failed(kind, resp)
        return Response(status_code=200)
    return to_starlette_response(resp)


def _kind(body: dict) -> str:
    return str(body.get("command") or (body.get("event") or {}).get("type") or body.get("type") or "request")


def _late(kind: str, done: asyncio.Future) -> None:
    if done.cancelled() or done.exception() is not None:
        log.error("slack: the bot failed on a %s: %s", kind, "cancelled" if done.cancelled() else done.exception())
    else:
        _failed(kind, done.result())


def _failed(kind: str, resp) -> None:
    if resp.status >= 500:  # Bolt logged the cause (a middleware, such as auth.test, raised)
        log.error("slack: the bot could not handle a %s (HTTP %d from Bolt: Slack's Web API unreachable or "
                  "failing?); it was acknowledged, so Slack will not redeliver it and no reply was posted",
                  kind, resp.status)
