"""The client's address, as far as it can be trusted (every per-IP limit keys on it).

`X-Forwarded-For` is a list anyone can start: a client sends `X-Forwarded-For: 1.2.3.4` and each proxy
appends the address it received the request from. Only the entries added by our own proxies are facts, so
the client is the address the outermost of our `TRUSTED_PROXY_HOPS` proxies saw: counted from the right of
the list with the socket's peer (the innermost proxy) at the end. With no trusted proxy (the default, and
`make run`) the header is ignored and the socket's peer is the client.

`ClientAddressMiddleware` wraps the whole ASGI application and rewrites `scope["client"]` once, so Django's
`REMOTE_ADDR`, DRF's throttles, sign-in lockouts and the websocket consumers all see the same address.
Daphne must not run with `--proxy-headers`: it trusts the left-most entry, the one a client writes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.conf import settings
from django.http import HttpRequest

UNKNOWN = "unknown"


def _address(raw: str) -> str | None:
    """An IP address in canonical form (IPv4-mapped IPv6 as IPv4), or None for anything else."""
    value = raw.strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]  # [v6]:port
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]  # v4:port
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def client_ip(*, peer: str | None, forwarded_for: Iterable[str], trusted_hops: int) -> str:
    """The client's address: `peer` when no proxy is trusted; else the entry `trusted_hops` from the right
    of `forwarded_for` + [peer]. Something that is not an address there is reported as unknown (all such
    clients then share one set of limits). Web processes must be reachable only through those proxies:
    a request sent to them directly can write every entry itself."""
    chain = [part for header in forwarded_for for part in header.split(",") if part.strip()]
    chain.append(peer or "")
    index = max(0, len(chain) - 1 - max(0, trusted_hops))
    return _address(chain[index]) or UNKNOWN


def _trusted_hops() -> int:
    return max(0, int(getattr(settings, "TRUSTED_PROXY_HOPS", 0)))


def client_ip_from_scope(scope: dict[str, Any] | Any) -> str:
    """The client of an ASGI scope (already rewritten by the middleware: its `client` is the answer)."""
    client = scope.get("client") or (None, 0)
    return str(client[0] or UNKNOWN)


def client_ip_from_request(request: HttpRequest) -> str:
    """The client of a Django request (REMOTE_ADDR, which the middleware set from the trusted hop)."""
    return str(request.META.get("REMOTE_ADDR") or UNKNOWN)


class ClientAddressMiddleware:
    """Rewrites `scope["client"]` to the trusted client address for HTTP and websocket connections."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope.get("type") in ("http", "websocket"):
            peer = scope.get("client") or (None, 0)
            forwarded = [
                value.decode("latin-1")
                for name, value in scope.get("headers") or []
                if name.lower() == b"x-forwarded-for"
            ]
            address = client_ip(peer=peer[0], forwarded_for=forwarded, trusted_hops=_trusted_hops())
            scope = {**scope, "client": (address, peer[1] if address == peer[0] else 0)}
        await self.app(scope, receive, send)
