"""Which tenant a widget request belongs to, and the limits that apply to it."""

from __future__ import annotations

from django.conf import settings

from apps.accounts.models import Tenant
from apps.accounts.selectors import tenant_by_widget_key, tenant_origins
from apps.accounts.services import normalize_origin
from apps.conversations.identity import SessionClaims
from apps.core.errors import HelpdeskError
from apps.core.ratelimit import Limit


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


def rate_limits_for_message(*, tenant: Tenant, claims: SessionClaims, ip: str) -> list[Limit]:
    return [
        Limit("visitor", f"{tenant.id}:{claims.visitor_id}", settings.WIDGET_RATE_VISITOR, 60),
        Limit("ip", ip, settings.WIDGET_RATE_IP, 60),
        Limit("tenant", str(tenant.id), settings.WIDGET_RATE_TENANT, 60),
    ]


def rate_limits_for_session(*, ip: str) -> list[Limit]:
    return [Limit("session-ip", ip, settings.WIDGET_RATE_SESSIONS_IP, 60)]
