"""Who may read what only the platform's operators should: `/metrics`, and the details of `/healthz`.

Both are fetched by machines (Prometheus, a monitor, `make run`'s supervisor) holding a bearer token from
the environment; a token is compared in constant time. A deployment that is only ever reached from the
developer's own machine (`make run`: DEBUG on, loopback-only ALLOWED_HOSTS) may serve metrics without one.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest

from helpdesk.keys import is_loopback_host


def bearer_matches(header: str, token: str) -> bool:
    """Whether an `Authorization` header value carries `Bearer <token>` (scheme case-insensitive)."""
    if not token:
        return False  # an unset token must never match an empty one presented
    scheme, _, presented = header.partition(" ")
    # Compared as bytes: compare_digest takes str only when it is ASCII, and a header need not be.
    matches = hmac.compare_digest(presented.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and matches


def request_bears_token(request: HttpRequest, *tokens: str | None) -> bool:
    """Whether the request's bearer token is one of `tokens` (unset ones are skipped)."""
    header = request.headers.get("Authorization", "")
    # Every configured token is compared, so the time taken does not tell which one was close.
    results = [bearer_matches(header, token) for token in tokens if token]
    return any(results)


def is_local_deployment() -> bool:
    """DEBUG on and every ALLOWED_HOSTS entry a loopback name or address, as under `make run`.

    Django refuses any Host header not in ALLOWED_HOSTS, so such a server only answers requests addressed
    to loopback; with DEBUG off it is a real deployment whatever its host list says.
    """
    if not settings.DEBUG:
        return False
    # With DEBUG on, an empty list means Django's own loopback default (.localhost, 127.0.0.1, [::1]).
    return all(is_loopback_host(entry) for entry in settings.ALLOWED_HOSTS)
