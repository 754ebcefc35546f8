"""Reads on tenants and people, always scoped and permission-checked (STYLE rules 1, 3, 4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from apps.accounts.models import AllowedOrigin, Membership, Role, Tenant, User
from apps.core.errors import Forbidden, NotFound, Unauthorized
from apps.core.realtime import StaffStream

# Who may receive each stream of staff pushes: the one place that decides it. Editors never get the agent
# stream (private notes, customers' names); agents never get the knowledge stream, which they have no page
# for. Admins hold every role, so they are in every set.
STAFF_STREAM_ROLES: Mapping[StaffStream, frozenset[str]] = MappingProxyType(
    {
        StaffStream.KNOWLEDGE: frozenset({Role.EDITOR, Role.ADMIN}),
        StaffStream.AGENT: frozenset({Role.AGENT, Role.ADMIN}),
    }
)


def tenants_for_user(*, user: User) -> QuerySet[Tenant]:
    return Tenant.objects.filter(memberships__user=user, is_active=True).distinct().order_by("name")


def user_roles(*, user: User, tenant: Tenant) -> set[str]:
    """The roles `user` holds in `tenant`, read again from the database: a deactivated account holds none
    (a staff socket keeps its user object for hours, so `user.is_active` in memory proves nothing)."""
    rows = Membership.objects.for_tenant(tenant).filter(user=user, user__is_active=True)
    return set(rows.values_list("role", flat=True))


def access_tenant(
    *, actor: User | AnonymousUser, slug: str, roles: Iterable[str] | None = None
) -> tuple[Tenant, set[str]]:
    """The tenant `slug` if `actor` belongs to it (with one of `roles`, when given).

    A non-member gets `NotFound`, never `Forbidden`: whether another company exists is not theirs to learn.
    Admins of a tenant hold every role in it.
    """
    if not actor.is_authenticated:
        raise Unauthorized()
    assert isinstance(actor, User)
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    held = user_roles(user=actor, tenant=tenant) if tenant else set()
    if tenant is None or not held:
        raise NotFound()
    if roles is not None and Role.ADMIN not in held and not held.intersection(roles):
        raise Forbidden()
    return tenant, held


def staff_streams(*, roles: Iterable[str]) -> frozenset[StaffStream]:
    """The staff push streams a member holding `roles` (as `access_tenant` returns them) may receive."""
    held = set(roles)
    return frozenset(stream for stream, allowed in STAFF_STREAM_ROLES.items() if held & allowed)


def tenant_memberships(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(tenant).select_related("user")


def tenant_origins(*, tenant: Tenant) -> list[str]:
    return list(AllowedOrigin.objects.for_tenant(tenant).values_list("origin", flat=True))


def tenant_by_widget_key(*, widget_key: str) -> Tenant | None:
    return Tenant.objects.filter(widget_key=widget_key, is_active=True).first()


def tenant_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug, is_active=True).first()


def tenant_fresh(*, tenant: Tenant) -> Tenant:
    """The tenant's current row: long-lived sockets must not answer by yesterday's settings."""
    return Tenant.objects.get(id=tenant.id)


def origin_allowed_by_any_tenant(*, origin: str) -> bool:
    """For CORS preflights, which carry neither a widget key nor a token."""
    return AllowedOrigin.objects.filter(origin=origin, tenant__is_active=True).exists()
