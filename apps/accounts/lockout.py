"""Staff sign-in lockout: how django-axes counts, resets and answers (settings: "Staff sign-in").

Axes locks a counter (one client address, one username) once it holds AXES_FAILURE_LIMIT failures that
are younger than the cool-off. Two things differ from its defaults, for reasons axes cannot know:

- A successful sign-in clears only the failures that person made from that address. Axes would clear
  every failure from the address and every failure for the username, so anyone with an account of their
  own could sign in between guesses at somebody else's password and never reach the limit.
- The person locked out gets the product's own answer: a page (or JSON under /api/) that says when the
  lock lifts, with Retry-After, and that an admin can lift it sooner.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime, timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from apps.core.clientip import client_ip_from_request
from apps.core.errors import RateLimited


def client_address(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: apps.core.clientip's address (X-Forwarded-For only as far as
    TRUSTED_PROXY_HOPS), or None when it is no IP address (a unix socket, a proxy that wrote garbage):
    axes stores addresses in an IP column, where anything else fails the sign-in with a 500. Such
    clients share one counter."""
    address = client_ip_from_request(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class SignInAttempts(AxesDatabaseHandler):
    """Axes' database handler (its admin pages and `axes_reset*` commands keep working on the same rows)."""

    def reset_user_attempts(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username,
            ip_address=request.axes_ip_address,  # type: ignore[attr-defined]
        ).delete()
        return count

    def lockout_ends_at(self, request: HttpRequest, credentials: dict[str, Any] | None) -> datetime | None:
        """When the last counter that holds this request at the limit drops below it; None if none does.

        Each counter lifts when its newest failure is a cool-off old (the time is an upper bound: older
        failures may expire sooner)."""
        cool_off = get_cool_off(request)
        if cool_off is None:
            return None
        limit = get_failure_limit(request, credentials)
        ends = []
        for attempts in self.get_user_attempts(request, credentials):
            counted = attempts.aggregate(failures=Sum("failures_since_start"), newest=Max("attempt_time"))
            if (counted["failures"] or 0) >= limit and counted["newest"] is not None:
                ends.append(counted["newest"] + cool_off)
        return max(ends, default=None)


def lockout_response(request: HttpRequest, *args: Any) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After, as a page or as the API's `rate_limited` body.

    Axes passes `(request, original_response, credentials)` from synchronous middleware but
    `(request, credentials)` from asynchronous middleware (Daphne), so the credentials are read from the
    request, where axes also keeps them."""
    credentials = getattr(request, "axes_credentials", None)
    handler = AxesProxyHandler.get_implementation()
    ends_at = handler.lockout_ends_at(request, credentials) if isinstance(handler, SignInAttempts) else None
    now = timezone.now()
    if ends_at is None:
        ends_at = now + (get_cool_off(request) or timedelta(minutes=15))
    retry_after = max(1, math.ceil((ends_at - now).total_seconds()))
    minutes = math.ceil(retry_after / 60)
    in_minutes = f"{minutes} minute{'s' if minutes != 1 else ''}"
    error = RateLimited(
        f"Too many failed sign-ins. Try again in {in_minutes}, or ask an administrator to unlock sign-in "
        "for you.",
        retry_after=retry_after,
    )
    response: HttpResponse
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse(error.as_payload(), status=error.http_status)
    else:
        response = render(
            request,
            "registration/locked_out.html",
            {"error": error, "until": timezone.localtime(ends_at), "in_minutes": in_minutes},
            status=error.http_status,
        )
    response["Retry-After"] = str(retry_after)
    return response
