"""Who is calling over HTTP: a bearer API key, an SSO proxy's headers, or the explicit demo mode.

The keys themselves (stored hashed, with a role) live in `ingest/keys.py`; this module reads what a
request carries. `api.deps.caller` is the FastAPI dependency that puts the two together.
"""

from __future__ import annotations

import ipaddress

from ingest.keys import Unauthorized


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <API key>'")
    return token.strip()


def trusted(client_host: str | None, networks: list[str]) -> bool:
    if not client_host:
        return False
    try:
        addr = ipaddress.ip_address(client_host)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n, strict=False) for n in networks)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
