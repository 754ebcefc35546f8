"""Can a person answer now? Company hours in the company's time zone, agents online with room, and an
honest expected wait (docs/architecture/handoff.md, "No agent available")."""

from __future__ import annotations

import datetime
import math
import statistics
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from apps.accounts.models import Membership, Role, Tenant
from apps.conversations.models import Conversation, HandoffReason
from apps.handoff.models import Handoff, HandoffSettings, Presence

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}
# Before there is any history, a claim is expected within this long.
TYPICAL_CLAIM_SECONDS = 120


@dataclass(frozen=True)
class AgentLoad:
    user_id: int
    name: str
    status: str  # online | away | offline (offline also when the console went quiet)
    holding: int
    capacity: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.holding) if self.status == Presence.Status.ONLINE else 0


@dataclass(frozen=True)
class Availability:
    live: bool  # a person can answer now
    why: str  # "open" | "closed" (outside hours) | "no_agents" (open, nobody online with room)
    agents_online: int
    free_slots: int
    next_open: datetime.datetime | None
    hours_text: str
    typical_claim_seconds: int

    def expected_wait_seconds(self, position: int) -> int | None:
        """About how long the customer at `position` (1 = next) waits; None when nobody can answer live."""
        if not self.live:
            return None
        rounds = math.ceil(max(0, position - self.free_slots) / max(1, self.agents_online))
        return self.typical_claim_seconds * (1 + rounds)


def settings_for(tenant: Tenant) -> HandoffSettings:
    row, _ = HandoffSettings.objects.get_or_create(tenant=tenant)
    return row


def zone(row: HandoffSettings) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(row.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _time(value: str) -> datetime.time:
    # "24:00" ends a day that is open until midnight (a desk open around the clock has no gap at 23:59).
    return datetime.time.max if value == "24:00" else datetime.time.fromisoformat(value)


def _intervals(row: HandoffSettings, day: str) -> list[tuple[datetime.time, datetime.time]]:
    out = []
    for start, end in (row.hours or {}).get(day, []):
        out.append((_time(start), _time(end)))
    return out


def open_at(row: HandoffSettings, moment: datetime.datetime) -> bool:
    local = moment.astimezone(zone(row))
    day = DAYS[local.weekday()]
    now = local.time().replace(tzinfo=None)
    return any(
        start <= now and (now < end or end == datetime.time.max) for start, end in _intervals(row, day)
    )


def next_opening(row: HandoffSettings, moment: datetime.datetime) -> datetime.datetime | None:
    """The next moment the company opens after `moment` (within a week), in its own time zone."""
    tz = zone(row)
    local = moment.astimezone(tz)
    for offset in range(8):
        date = local.date() + datetime.timedelta(days=offset)
        for start, _end in sorted(_intervals(row, DAYS[date.weekday()])):
            candidate = datetime.datetime.combine(date, start, tzinfo=tz)
            if candidate > local:
                return candidate
    return None


def hours_text(row: HandoffSettings) -> str:
    """ "Mon–Fri 09:00–17:00, Sat 10:00–14:00 (Europe/Berlin)": the company's hours in one line."""  # noqa: RUF002
    groups: list[tuple[list[str], str]] = []
    for day in DAYS:
        spans = ", ".join(f"{a}–{b}" for a, b in (row.hours or {}).get(day, []))  # noqa: RUF001
        if not spans:
            continue
        if groups and groups[-1][1] == spans and DAYS.index(groups[-1][0][-1]) == DAYS.index(day) - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], spans))
    if not groups:
        return "no live hours"
    parts = []
    for days, spans in groups:
        label = DAY_NAMES[days[0]] if len(days) == 1 else f"{DAY_NAMES[days[0]]}–{DAY_NAMES[days[-1]]}"  # noqa: RUF001
        parts.append(f"{label} {spans}")
    return f"{', '.join(parts)} ({row.timezone})"


def agent_loads(*, tenant: Tenant) -> list[AgentLoad]:
    """Every agent of the company with their presence and how many conversations they hold."""
    row = settings_for(tenant)
    stale = timezone.now() - datetime.timedelta(seconds=_stale_seconds())
    presences = {p.user_id: p for p in Presence.objects.for_tenant(tenant)}
    holding = dict(
        Conversation.objects.for_tenant(tenant)
        .filter(status=Conversation.Status.HUMAN)
        .values_list("agent_id")
        .annotate(n=Count("id"))
        .values_list("agent_id", "n")
    )
    members = (
        Membership.objects.for_tenant(tenant)
        .filter(Q(role=Role.AGENT) | Q(role=Role.ADMIN))
        .select_related("user")
        .order_by("user__username")
    )
    loads: dict[int, AgentLoad] = {}
    for membership in members:
        user = membership.user
        if user.id in loads or not user.is_active:
            continue
        presence = presences.get(user.id)
        status: str = Presence.Status.OFFLINE
        if (
            presence is not None
            and presence.sockets > 0
            and presence.last_seen_at
            and presence.last_seen_at >= stale
        ):
            status = presence.status
        capacity = presence.capacity if presence and presence.capacity is not None else row.default_capacity
        loads[user.id] = AgentLoad(
            user_id=user.id,
            name=user.get_full_name() or user.username,
            status=status,
            holding=holding.get(user.id, 0),
            capacity=capacity,
        )
    return list(loads.values())


def _stale_seconds() -> int:
    return int(settings.HANDOFF_PRESENCE_STALE_SECONDS)


def typical_claim_seconds(*, tenant: Tenant) -> int:
    """The median time to claim of the company's last 20 claimed handoffs this week. Conversations an agent
    took straight from the assistant never waited in the queue: counting their zero wait would promise
    customers a wait far shorter than the queue's."""
    since = timezone.now() - datetime.timedelta(days=7)
    rows = list(
        Handoff.objects.for_tenant(tenant)
        .filter(claimed_at__isnull=False, created_at__gte=since)
        .exclude(reason=HandoffReason.AGENT_TAKEOVER)
        .order_by("-claimed_at")
        .values_list("created_at", "claimed_at")[:20]
    )
    if not rows:
        return TYPICAL_CLAIM_SECONDS
    waits = [(claimed - created).total_seconds() for created, claimed in rows if claimed is not None]
    return max(15, int(statistics.median(waits)))


def availability_now(*, tenant: Tenant, now: datetime.datetime | None = None) -> Availability:
    now = now or timezone.now()
    row = settings_for(tenant)
    loads = agent_loads(tenant=tenant)
    online = [load for load in loads if load.status == Presence.Status.ONLINE]
    free = sum(load.free for load in online)
    is_open = open_at(row, now)
    if not is_open:
        why = "closed"
    elif not online:
        why = "no_agents"
    else:
        why = "open"
    return Availability(
        live=why == "open",
        why=why,
        agents_online=len(online),
        free_slots=free,
        next_open=None if is_open else next_opening(row, now),
        hours_text=hours_text(row),
        typical_claim_seconds=typical_claim_seconds(tenant=tenant),
    )
