"""Reads for the admins' reports: how often conversations go to people and why, how long customers wait
for a person, and how customers rate the help they got (docs/architecture/handoff.md, "Reports").

Every series is per day in the company's own time zone (HandoffSettings.timezone) over the last N days,
today included, with every day present (zeros, or None where there is nothing to measure). The database
does the grouping and the percentiles (PostgreSQL's percentile_cont), so a busy tenant costs a handful of
small queries whatever its volume.

Definitions (shown on the page too):
- handoff rate of a day: handoffs opened that day / conversations started that day. A conversation can go
  to people more than once (a new episode, an email reply), so a day's rate can exceed 100 %.
- time to claim: from a handoff's queueing to an agent's claim, for handoffs queued while people could
  answer live. Agent take-overs (never queued) and after-hours handoffs (answered by email, told so) are
  left out: they measure neither the queue nor staffing.
- CSAT: the average score (1 to 5) of the ratings given that day, and the share of 4s and 5s.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Aggregate, Avg, Count, DurationField, F, FloatField, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.accounts.models import Tenant
from apps.conversations.models import Conversation, ConversationRating, HandoffReason
from apps.handoff.availability import settings_for, zone
from apps.handoff.models import Handoff

PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30
SCORES = (1, 2, 3, 4, 5)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate `percentile_cont(f) WITHIN GROUP (ORDER BY expr)`. The fraction
    is a float this module chooses, never input, so it is formatted into the SQL as a literal."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction goes from 0 to 1")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


@dataclass(frozen=True)
class ReasonTotal:
    reason: str
    label: str
    count: int
    share: float  # of all handoffs in the period, 0..1


@dataclass(frozen=True)
class DayStats:
    day: datetime.date
    conversations: int
    handoffs: int
    by_reason: dict[str, int]  # every reason of HandoffReason, zero included
    rate: float | None  # handoffs / conversations; None on a day without conversations
    claimed: int  # handoffs counted in time to claim
    claim_p50_seconds: float | None
    claim_p90_seconds: float | None
    csat_count: int
    csat_average: float | None


@dataclass(frozen=True)
class Totals:
    conversations: int
    handoffs: int
    rate: float | None
    claimed: int
    unclaimed: int  # live handoffs of the period nobody claimed (still waiting, cancelled, handed back)
    after_hours: int  # handoffs queued when nobody could answer live
    claim_p50_seconds: float | None
    claim_p90_seconds: float | None
    csat_count: int
    csat_average: float | None
    csat_satisfied: float | None  # share of 4s and 5s, 0..1
    csat_distribution: dict[int, int] = field(default_factory=dict)  # score 1..5 -> ratings


@dataclass(frozen=True)
class HandoffReport:
    days: int
    timezone: str
    start: datetime.date
    end: datetime.date  # today in the company's time zone
    series: list[DayStats]
    reasons: list[ReasonTotal]  # reasons with at least one handoff, most frequent first
    totals: Totals

    def as_dict(self) -> dict[str, Any]:
        """The JSON of the reports API (dates as ISO strings, score keys as strings)."""
        return {
            "days": self.days,
            "timezone": self.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "series": [
                {
                    "day": d.day.isoformat(),
                    "conversations": d.conversations,
                    "handoffs": d.handoffs,
                    "by_reason": d.by_reason,
                    "rate": d.rate,
                    "claimed": d.claimed,
                    "claim_p50_seconds": d.claim_p50_seconds,
                    "claim_p90_seconds": d.claim_p90_seconds,
                    "csat_count": d.csat_count,
                    "csat_average": d.csat_average,
                }
                for d in self.series
            ],
            "reasons": [
                {"reason": r.reason, "label": r.label, "count": r.count, "share": r.share}
                for r in self.reasons
            ],
            "totals": {
                "conversations": self.totals.conversations,
                "handoffs": self.totals.handoffs,
                "rate": self.totals.rate,
                "claimed": self.totals.claimed,
                "unclaimed": self.totals.unclaimed,
                "after_hours": self.totals.after_hours,
                "claim_p50_seconds": self.totals.claim_p50_seconds,
                "claim_p90_seconds": self.totals.claim_p90_seconds,
                "csat_count": self.totals.csat_count,
                "csat_average": self.totals.csat_average,
                "csat_satisfied": self.totals.csat_satisfied,
                "csat_distribution": {str(k): v for k, v in self.totals.csat_distribution.items()},
            },
        }


def report_days(raw: str | None) -> int:
    """The period asked for (?days=7|30|90); anything else is the default."""
    try:
        days = int(raw or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return days if days in PERIODS else DEFAULT_DAYS


def handoff_report(
    *, tenant: Tenant, days: int = DEFAULT_DAYS, now: datetime.datetime | None = None
) -> HandoffReport:
    """The company's handoff, time-to-claim and CSAT series over the last `days` days (today included)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    row = settings_for(tenant)
    tz = zone(row)
    end = (now or timezone.now()).astimezone(tz).date()
    start = end - datetime.timedelta(days=days - 1)
    since = datetime.datetime.combine(start, datetime.time.min, tzinfo=tz)
    day_list = [start + datetime.timedelta(days=i) for i in range(days)]

    conversations = _per_day(Conversation.objects.for_tenant(tenant).filter(created_at__gte=since), tz)
    handoffs = Handoff.objects.for_tenant(tenant).filter(created_at__gte=since)
    by_reason: dict[datetime.date, dict[str, int]] = {}
    for entry in (
        handoffs.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day", "reason")
        .annotate(n=Count("id"))
        .order_by()
    ):
        by_reason.setdefault(entry["day"], {})[entry["reason"]] = entry["n"]

    waits = _live_claims(handoffs)
    claim_days: dict[datetime.date, Mapping[str, Any]] = {
        entry["day"]: entry
        for entry in waits.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"), **_percentiles())
        .order_by()
    }
    ratings = ConversationRating.objects.filter(tenant=tenant, created_at__gte=since)
    csat_days: dict[datetime.date, Mapping[str, Any]] = {
        entry["day"]: entry
        for entry in ratings.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"), average=Avg("score"))
        .order_by()
    }

    series = []
    for day in day_list:
        reasons = by_reason.get(day, {})
        count = sum(reasons.values())
        started = conversations.get(day, 0)
        claims = claim_days.get(day, {})
        csat = csat_days.get(day, {})
        series.append(
            DayStats(
                day=day,
                conversations=started,
                handoffs=count,
                by_reason={reason: reasons.get(reason, 0) for reason in HandoffReason.values},
                rate=count / started if started else None,
                claimed=claims.get("n", 0),
                claim_p50_seconds=_seconds(claims.get("p50")),
                claim_p90_seconds=_seconds(claims.get("p90")),
                csat_count=csat.get("n", 0),
                csat_average=_rounded(csat.get("average")),
            )
        )
    return HandoffReport(
        days=days,
        timezone=row.timezone,
        start=start,
        end=end,
        series=series,
        reasons=_reason_totals(series),
        totals=_totals(series, handoffs, waits, ratings),
    )


def _per_day(rows: QuerySet[Any], tz: zoneinfo.ZoneInfo) -> dict[datetime.date, int]:
    return dict(
        rows.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("day", "n")
    )


def _live_claims(handoffs: QuerySet[Handoff]) -> QuerySet[Handoff]:
    return (
        handoffs.filter(claimed_at__isnull=False)
        .exclude(reason=HandoffReason.AGENT_TAKEOVER)
        .exclude(availability__contains={"state": "offline"})
    )


def _percentiles() -> dict[str, PercentileCont]:
    wait = F("claimed_at") - F("created_at")
    return {
        "p50": PercentileCont(wait, fraction=0.5, output_field=DurationField()),
        "p90": PercentileCont(wait, fraction=0.9, output_field=DurationField()),
    }


def _seconds(value: datetime.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 1)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _reason_totals(series: list[DayStats]) -> list[ReasonTotal]:
    counts = {reason: sum(d.by_reason[reason] for d in series) for reason in HandoffReason.values}
    total = sum(counts.values())
    labels = dict(HandoffReason.choices)
    return [
        ReasonTotal(reason=reason, label=str(labels[reason]), count=n, share=n / total)
        for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if n
    ]


def _totals(
    series: list[DayStats],
    handoffs: QuerySet[Handoff],
    waits: QuerySet[Handoff],
    ratings: QuerySet[ConversationRating],
) -> Totals:
    conversations = sum(d.conversations for d in series)
    handoff_count = sum(d.handoffs for d in series)
    claims: dict[str, Any] = waits.aggregate(n=Count("id"), **_percentiles())
    offline = Q(availability__contains={"state": "offline"})
    outcomes: dict[str, Any] = handoffs.aggregate(
        after_hours=Count("id", filter=offline),
        unclaimed=Count(
            "id",
            filter=Q(claimed_at__isnull=True) & ~offline & ~Q(reason=HandoffReason.AGENT_TAKEOVER),
        ),
    )
    csat: dict[str, Any] = ratings.aggregate(
        n=Count("id"),
        average=Avg("score", output_field=FloatField()),
        satisfied=Count("id", filter=Q(score__gte=4)),
    )
    distribution = dict(ratings.values("score").annotate(n=Count("id")).order_by().values_list("score", "n"))
    return Totals(
        conversations=conversations,
        handoffs=handoff_count,
        rate=handoff_count / conversations if conversations else None,
        claimed=claims["n"],
        unclaimed=outcomes["unclaimed"],
        after_hours=outcomes["after_hours"],
        claim_p50_seconds=_seconds(claims["p50"]),
        claim_p90_seconds=_seconds(claims["p90"]),
        csat_count=csat["n"],
        csat_average=_rounded(csat["average"]),
        csat_satisfied=csat["satisfied"] / csat["n"] if csat["n"] else None,
        csat_distribution={score: distribution.get(score, 0) for score in SCORES},
    )
