"""Who may read a Confluence page, as Lore ACL tokens.

Confluence lets a person view a page when all of these hold:

1. the space grants them "View space" (Cloud v2: operation `read` on target `space`; Data Center: `read`
   on `space`, the old VIEWSPACE), directly, through a group, or to anonymous users;
2. if the page has a read (view) restriction, they are one of its users or in one of its groups;
3. the same for every ancestor page: view restrictions are inherited down the page tree.

Each of these is a *level*: a set of Lore tokens. The page's ACL is the set of tokens every one of whose
holders passes every level; this is how the mapping stays fail-closed, since a Lore ACL is a union:

- `user:<id>`: Cloud account ids (`557058:f5813...` becomes `user:557058.f5813...`: Lore ids cannot hold
  ':', and account ids never hold '.'), Data Center usernames. `group:<name>` for group names.
- anonymous access to a space ("View space" for anonymous users, Data Center) is `public`: a level holding
  `public` admits every token. Cloud's v2 permission listing names users, groups and roles only, so a
  Cloud space is never `public`; roles (the RBAC beta) are not expanded: their holders are left out.
- groups named in `all_users_groups` (default `confluence-users`, Data Center's group of every licensed user;
  on Cloud name the site's product-access group) admit every user and group token; they are kept as tokens themselves when nothing narrower applies,
  so a Lore principal needs that group to read an unrestricted page of such a space.
- a user token passes a level that names one of the user's groups (their memberships are looked up once per
  inventory); a group token passes only a level naming the same group (or public / an all-users group),
  since whether all of one group's members are in another is not asked. Such readers are left out.
- a Confluence identifier that is not a valid Lore token (a group name with a space) is dropped with a
  warning: its holders lose access in Lore, nobody gains it.

A page no Lore token can read (the levels share nobody Lore can name) is left out of the inventory with
a warning; an empty ACL would mean "the default applies", which could open it to everyone.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from ingest.errors import ConfigError
from ingest.types import PUBLIC, validate_acl

log = logging.getLogger(__name__)

ALL_USERS_GROUPS = ("confluence-users",)  # Data Center's default group of every licensed user


def user_token(ident: str) -> str | None:
    """The Lore token of a Confluence user (account id or username), or None when it cannot be one."""
    return _valid(f"user:{ident.replace(':', '.')}") if ident else None


def group_token(name: str) -> str | None:
    return _valid(f"group:{name}") if name else None


def _valid(token: str) -> str | None:
    try:
        return validate_acl([token], "confluence")[0]
    except ConfigError:
        log.warning("Confluence identifier %r is not a valid Lore ACL token; its holders get no access in Lore",
                    token)
        return None


class AclResolver:
    """Intersects permission levels into one ACL; `groups_of(user_token)` returns that user's group tokens."""

    def __init__(self, groups_of: Callable[[str], frozenset[str]], all_users_groups: Iterable[str]) -> None:
        self._groups_of = groups_of
        self._memberships: dict[str, frozenset[str]] = {}
        self.all_users = frozenset(t for t in (group_token(g) for g in all_users_groups) if t)

    def groups(self, user: str) -> frozenset[str]:
        if user not in self._memberships:
            self._memberships[user] = self._groups_of(user)
        return self._memberships[user]

    def admits(self, level: frozenset[str], token: str) -> bool:
        """Does every holder of `token` pass `level`?"""
        if PUBLIC in level or token in level:
            return True
        if token == PUBLIC:
            return False
        if level & self.all_users:
            return True
        if token.startswith("user:"):
            named = {t for t in level if t.startswith("group:")}
            return bool(named) and bool(named & self.groups(token))
        return False

    def acl(self, levels: list[frozenset[str]]) -> tuple[str, ...]:
        """The tokens that pass every level; () when nobody Lore can name does."""
        candidates = set().union(*levels) if levels else set()
        # cheapest checks first: levels that hold the token or public before any membership lookup
        ordered = sorted(levels, key=lambda lv: (PUBLIC not in lv, not (lv & self.all_users)))
        return tuple(t for t in sorted(candidates) if all(self.admits(lv, t) for lv in ordered))
