"""Which tenant a widget request belongs to, and the limits that apply to it."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.accounts.models import Tenant
from apps.accounts.selectors import tenant_by_widget_key, tenant_origins
from apps.accounts.services import normalize_origin
from apps.conversations import hooks
from apps.conversations.identity import SessionClaims
from apps.core.errors import HelpdeskError
from apps.core.ratelimit import Limit, Slots


def origin_allowed(*, tenant: Tenant, origin: str) -> bool:
    """Exact match of the browser's Origin header with one of the tenant's allowed origins."""
    if not origin or origin == "null":
        return False
    try:
        normalized = normalize_origin(origin)
    except HelpdeskError:
        return False
    return normalized in tenant_origins(tenant=tenant)


def widget_tenant_for_origin(*, widget_key: str, origin: str) -> Tenant | None:
    """The active tenant of `widget_key` if `origin` may embed its widget; None for anything else (the
    caller answers 403 without saying which part was wrong)."""
    if not widget_key or len(widget_key) > 64:
        return None
    tenant = tenant_by_widget_key(widget_key=widget_key)
    if tenant is None or not origin_allowed(tenant=tenant, origin=origin):
        return None
    return tenant


def widget_session_limits(*, tenant: Tenant) -> dict[str, Any]:
    """What the widget may send for this company: the message length, and what higher apps add (voice)."""
    limits: dict[str, Any] = {"max_message_chars": settings.WIDGET_MAX_MESSAGE_CHARS}
    for contribute in hooks.session_limits_contributors():
        limits.update(contribute(tenant))
    return limits


def rate_limits_for_message(*, tenant: Tenant, claims: SessionClaims, ip: str) -> list[Limit]:
    return [
        Limit("visitor", f"{tenant.id}:{claims.visitor_id}", settings.WIDGET_RATE_VISITOR, 60),
        Limit("ip", ip, settings.WIDGET_RATE_IP, 60),
        Limit("tenant", str(tenant.id), settings.WIDGET_RATE_TENANT, 60),
    ]


def rate_limits_for_session(*, ip: str) -> list[Limit]:
    return [Limit("session-ip", ip, settings.WIDGET_RATE_SESSIONS_IP, 60)]


def rate_limits_for_frame(*, tenant: Tenant, claims: SessionClaims | None, ip: str) -> list[Limit]:
    """Every inbound frame counts, pings and malformed ones included: each costs a parse, and some a
    database round trip, a redaction or a push to every agent. Before `hello` only the address is known."""
    limits = [Limit("frames-ip", ip, settings.WIDGET_RATE_FRAMES_IP, 60)]
    if claims is not None:
        subject = f"{tenant.id}:{claims.visitor_id}"
        limits.append(Limit("frames-visitor", subject, settings.WIDGET_RATE_FRAMES_VISITOR, 60))
    return limits


# A live socket renews its slot at least this often (the widget pings every 20 s); a slot not renewed for
# twice as long belongs to a connection that is gone.
SOCKET_SLOT_RENEW_SECONDS = 60


def socket_slots_for_ip(*, ip: str) -> Slots:
    return Slots("sockets-ip", ip, settings.WIDGET_SOCKETS_PER_IP, 2 * SOCKET_SLOT_RENEW_SECONDS)
