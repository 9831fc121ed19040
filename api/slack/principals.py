"""Slack users and conversations as Lore principals: who asks, and what everyone who will see the reply may read.

A user's principal: the Lore user id from LORE_SLACK__USERS (else the Slack e-mail), and the groups their
e-mail domain and Slack user groups map to (else LORE_SLACK__DEFAULT_GROUPS). Guests, users of other
workspaces (Slack Connect), bots and accounts Slack will not describe get only what is mapped to them by id or
user group: never a domain's or the default groups. A channel's principal has no user id and the groups all
its members share (Lore's own bot user aside); in strict mode, or past MAX_MEMBERS, it reads public passages only.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from api.settings import SlackSettings
from ingest.errors import ConfigError
from ingest.access import Principal

if TYPE_CHECKING:  # every settings load checks the Slack names: slack_sdk (~30 ms) loads only when the bot runs
    from slack_sdk import WebClient

log = logging.getLogger(__name__)
USER_TTL_S = 600.0  # profile and group changes reach answers within this time
MAX_MEMBERS = 1000  # bigger channels answer from public passages rather than look up every member
Mode = Literal["own", "common", "strict"]


@dataclass(frozen=True, slots=True)
class SlackUser:
    """What Slack's users.info says about a user, as far as permissions go."""

    id: str
    team_id: str | None
    email: str | None
    is_bot: bool = False
    is_guest: bool = False  # a single- or multi-channel guest
    deleted: bool = False
    known: bool = True  # False when users.info failed: the user gets explicit mappings only


@dataclass(frozen=True, slots=True)
class Scope:
    """The principal an answer is written under, and why (own: the asker alone sees it)."""

    principal: Principal
    mode: Mode
    members: int = 1


class Directory:
    """`Directory(client, settings).scope(channel, asker, own=False, home_team="T1", bot_user="U0")`."""

    def __init__(self, client: WebClient, settings: SlackSettings, *, ttl: float = USER_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        settings.check_names()  # also when built with model_construct, skipping validation
        self.client, self.settings, self.ttl, self._clock = client, settings, ttl, clock
        self._users: dict[str, tuple[float, SlackUser]] = {}
        self._groups: tuple[float, dict[str, frozenset[str]]] | None = None
        self._lock = threading.Lock()

    # -- users -----------------------------------------------------------------------------------
    def user(self, user_id: str) -> SlackUser:
        """users.info, cached; a failed look-up is a user with explicit mappings only (fail closed)."""
        now = self._clock()
        with self._lock:
            hit = self._users.get(user_id)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        from slack_sdk.errors import SlackApiError

        try:
            u = self.client.users_info(user=user_id)["user"]
            profile = u.get("profile") or {}
            user = SlackUser(user_id, u.get("team_id"), (profile.get("email") or "").lower() or None,
                             bool(u.get("is_bot") or u.get("is_app_user")),
                             bool(u.get("is_restricted") or u.get("is_ultra_restricted") or u.get("is_stranger")),
                             bool(u.get("deleted")))
        except SlackApiError as exc:
            log.warning("slack users.info %s failed (%s): the user reads only what is mapped to their id",
                        user_id, exc.response.get("error"))
            return SlackUser(user_id, None, None, known=False)  # not cached: the next question tries again
        with self._lock:
            self._users[user_id] = (now, user)
        return user

    def lore_user(self, user: SlackUser) -> str | None:
        """The Lore user id: the configured mapping, else the Slack e-mail when it is a valid id."""
        if user.id in self.settings.users:
            return self.settings.users[user.id]
        if user.email and not user.is_bot:
            try:
                return Principal(user.email).user_id
            except ConfigError:
                return None
        return None

    def groups(self, user: SlackUser, home_team: str | None) -> tuple[str, ...]:
        s = self.settings
        explicit = {g for handle, gs in s.user_groups.items() if user.id in self._slack_groups().get(handle, ())
                    for g in gs}
        outsider = (not user.known or user.is_bot or user.is_guest or user.deleted
                    or (home_team is not None and user.team_id not in (None, home_team)))
        if outsider:
            return tuple(sorted(explicit))
        domain = user.email.rpartition("@")[2] if user.email else None
        mapped = explicit | set(s.email_domains.get(domain, ()) if domain else ())
        return tuple(sorted(mapped or set(s.default_groups)))

    def principal(self, user_id: str, home_team: str | None) -> Principal:
        """The asker's own principal: for replies only they can see."""
        u = self.user(user_id)
        return Principal.of(self.lore_user(u), list(self.groups(u, home_team)))

    def _slack_groups(self) -> dict[str, frozenset[str]]:
        """Slack user group id and handle -> member ids, from one usergroups.list call per TTL."""
        if not self.settings.user_groups:
            return {}
        now = self._clock()
        with self._lock:
            cached = self._groups
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        from slack_sdk.errors import SlackApiError

        try:
            found: dict[str, frozenset[str]] = {}
            for g in self.client.usergroups_list(include_users=True, include_disabled=False)["usergroups"]:
                members = frozenset(g.get("users") or ())
                for name in (g.get("id"), g.get("handle")):
                    if name:
                        found[name] = members
        except SlackApiError as exc:
            log.warning("slack usergroups.list failed (%s): user group mappings are off until it works",
                        exc.response.get("error"))
            return {}
        with self._lock:
            self._groups = (now, found)
        return found

    # -- conversations ---------------------------------------------------------------------------
    def members(self, channel: str) -> list[str]:
        """Every member of a conversation (conversations.members, all pages)."""
        out: list[str] = []
        cursor = None
        while True:
            page = self.client.conversations_members(channel=channel, limit=200, cursor=cursor)
            out += page.get("members") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor or len(out) > MAX_MEMBERS:
                return out

    def scope(self, channel: str, asker: str, *, own: bool, home_team: str | None,
              bot_user: str | None) -> Scope:
        """The principal for a reply: the asker's own when only they see it, else the channel's."""
        if own:
            return Scope(self.principal(asker, home_team), "own")
        if self.settings.channel_permissions == "strict":
            return Scope(Principal(), "strict")
        from slack_sdk.errors import SlackApiError

        try:
            members = [m for m in self.members(channel) if m != bot_user]
        except SlackApiError as exc:
            log.warning("slack conversations.members %s failed (%s): answering from public passages",
                        channel, exc.response.get("error"))
            return Scope(Principal(), "strict")
        if len(members) > MAX_MEMBERS:
            log.info("slack channel %s has over %d members: answering from public passages", channel, MAX_MEMBERS)
            return Scope(Principal(), "strict", len(members))
        common: set[str] | None = None
        for m in members or [asker]:
            mine = set(self.groups(self.user(m), home_team))
            common = mine if common is None else common & mine
            if not common:
                break  # nobody else can widen an empty intersection: skip the remaining look-ups
        return Scope(Principal.of(None, sorted(common or ())), "common", len(members))
