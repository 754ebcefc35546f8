"""Reads for the admins' handoff settings page: rules, teams, the company's agents with their own
capacity, and the customer tiers in use. Scoped to one tenant (STYLE rule 3)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, Q, QuerySet

from apps.accounts.models import Contact, Membership, Role, Tenant, User
from apps.core.errors import NotFound
from apps.handoff.availability import agent_loads
from apps.handoff.models import HandoffRule, Presence, Team


@dataclass(frozen=True)
class AgentRow:
    user_id: int
    name: str
    status: str
    holding: int
    capacity: int  # the capacity in force
    own_capacity: int | None  # set for this agent; None: the company's default


def handoff_rules(*, tenant: Tenant) -> QuerySet[HandoffRule]:
    return HandoffRule.objects.for_tenant(tenant).select_related("team").order_by("kind", "value")


def teams(*, tenant: Tenant) -> QuerySet[Team]:
    members = Prefetch("members", queryset=User.objects.order_by("first_name", "username"))
    return Team.objects.for_tenant(tenant).prefetch_related(members).order_by("name")


def agent_rows(*, tenant: Tenant) -> list[AgentRow]:
    own = dict(
        Presence.objects.for_tenant(tenant).filter(capacity__isnull=False).values_list("user_id", "capacity")
    )
    return [
        AgentRow(
            user_id=load.user_id,
            name=load.name,
            status=load.status,
            holding=load.holding,
            capacity=load.capacity,
            own_capacity=own.get(load.user_id),
        )
        for load in agent_loads(tenant=tenant)
    ]


def access_tenant_agent(*, tenant: Tenant, user_id: int | str) -> User:
    """An active agent (or admin) of the company; anyone else is NotFound."""
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        raise NotFound("There is no such agent.") from None
    membership = (
        Membership.objects.for_tenant(tenant)
        .filter(Q(role=Role.AGENT) | Q(role=Role.ADMIN), user_id=uid, user__is_active=True)
        .select_related("user")
        .first()
    )
    if membership is None:
        raise NotFound("There is no such agent.")
    return membership.user


def contact_tiers(*, tenant: Tenant, limit: int = 50) -> list[str]:
    """The tiers the company's customers have, for the rule form's suggestions."""
    return list(
        Contact.objects.for_tenant(tenant)
        .exclude(tier="")
        .order_by("tier")
        .values_list("tier", flat=True)
        .distinct()[:limit]
    )
