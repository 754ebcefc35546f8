"""Reads of canaries: the live indicators of both arms, whether a guardrail regressed past its bound, and
the context of the canary section of the models page."""

from __future__ import annotations

import datetime
import statistics
import uuid
from collections import defaultdict
from typing import Any

from django.db.models import Avg, Count, QuerySet
from django.utils import timezone

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.conversations.models import Conversation, ConversationRating, Message
from apps.core.errors import NotFound
from apps.handoff.models import Handoff
from apps.llm.endpoint_selectors import endpoints_for
from apps.llm.models import Canary, ModelEndpoint
from apps.llm.routing import tenant_current_endpoint
from apps.releases.canary_chart import indicator_chart
from apps.releases.models import GoldenRun

NO_VALUE = "\u2013"  # an en dash: no data yet
ARMS = ("current", "candidate")
# The indicators that stop a canary, each a rate in percent of the arm's conversations.
GUARDRAILS = ("abstention", "unsupported", "error")
GUARDRAIL_LABELS = {
    "abstention": "Abstentions",
    "unsupported": "Unsupported sentences removed",
    "error": "Errors",
}
FINISHED = (Message.Status.COMPLETE, Message.Status.INTERRUPTED, Message.Status.FAILED)
BASELINE_DAYS = 7
HISTORY = 20


def _arm_conversations(canary: Canary, arm: str) -> QuerySet[Conversation]:
    return Conversation.objects.filter(tenant_id=canary.tenant_id, canary=canary, canary_arm=arm)


def _baseline_conversations(canary: Canary) -> QuerySet[Conversation]:
    """The current model's conversations of the week before the canary started: what the candidate is
    compared with when no new conversation stayed on the current model (a share of 100 %)."""
    until = canary.started_at or timezone.now()
    return Conversation.objects.filter(
        tenant_id=canary.tenant_id,
        canary__isnull=True,
        created_at__gte=until - datetime.timedelta(days=BASELINE_DAYS),
        created_at__lt=until,
    )


def arm_indicators(conversations: QuerySet[Conversation]) -> dict[str, Any]:
    """The arm's numbers from the database. Rates are percentages of its conversations with at least one
    finished reply: with an abstention, with a model sentence removed as unsupported, with an error, with
    a handoff."""
    rows = Message.objects.filter(
        conversation__in=conversations, role=Message.Role.ASSISTANT, status__in=FINISHED
    ).values_list(
        "conversation_id", "abstained", "error_code", "timings__ttft_ms", "trace__retrieval__answer"
    )
    per: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: {"abstained": 0, "errors": 0, "dropped": 0})
    ttfts: list[float] = []
    replies = 0
    for conversation_id, abstained, error_code, ttft, answer in rows:
        replies += 1
        counts = per[conversation_id]
        counts["abstained"] += int(bool(abstained))
        counts["errors"] += int(bool(error_code))
        dropped = answer.get("dropped") if isinstance(answer, dict) else None
        counts["dropped"] += len(dropped) if isinstance(dropped, list) else 0
        if isinstance(ttft, int | float):
            ttfts.append(float(ttft))
    answered = len(per)
    handed = (
        Handoff.objects.filter(conversation__in=conversations, conversation_id__in=list(per))
        .values("conversation_id")
        .distinct()
        .count()
        if answered
        else 0
    )
    csat = ConversationRating.objects.filter(conversation__in=conversations).aggregate(
        average=Avg("score"), count=Count("id")
    )
    dropped_total = sum(c["dropped"] for c in per.values())

    def rate(count: int) -> float | None:
        return round(100 * count / answered, 1) if answered else None

    return {
        "conversations": answered,
        "assigned": conversations.count(),
        "replies": replies,
        "abstention_rate": rate(sum(1 for c in per.values() if c["abstained"])),
        "unsupported_rate": rate(sum(1 for c in per.values() if c["dropped"])),
        "unsupported_per_conversation": round(dropped_total / answered, 2) if answered else None,
        "error_rate": rate(sum(1 for c in per.values() if c["errors"])),
        "first_content_p50_ms": round(statistics.median(ttfts), 1) if ttfts else None,
        "handoff_rate": rate(handed),
        "csat_average": round(float(csat["average"]), 2) if csat["average"] is not None else None,
        "csat_count": csat["count"],
    }


def canary_indicators(canary: Canary) -> dict[str, Any]:
    """Both arms side by side: {"current": {...}, "candidate": {...}, "baseline": "arm" | "before",
    "at": ISO time}. The current arm is the week before the canary when no conversation joined it."""
    current = arm_indicators(_arm_conversations(canary, "current"))
    baseline = "arm"
    if not current["conversations"]:
        current = arm_indicators(_baseline_conversations(canary))
        baseline = "before"
    return {
        "current": current,
        "candidate": arm_indicators(_arm_conversations(canary, "candidate")),
        "baseline": baseline,
        "at": timezone.now().isoformat(),
    }


def canary_breach(canary: Canary, indicators: dict[str, Any]) -> str:
    """One sentence naming the first guardrail indicator of the candidate above the current's by more than
    its bound, once the candidate arm has its minimum of conversations; empty otherwise."""
    candidate, current = indicators.get("candidate") or {}, indicators.get("current") or {}
    if (candidate.get("conversations") or 0) < canary.min_conversations:
        return ""
    for key in GUARDRAILS:
        bound = float((canary.bounds or {}).get(key, 0))
        theirs, ours = candidate.get(f"{key}_rate"), current.get(f"{key}_rate") or 0.0
        if theirs is not None and theirs - ours > bound:
            return (
                f"{GUARDRAIL_LABELS[key]} rose to {theirs:g} % of the candidate's "
                f"{candidate['conversations']} conversations against {ours:g} % on the current model, "
                f"more than the {bound:g}-point bound."
            )
    return ""


# ---- the models page's section ----------------------------------------------------------------------------


def access_canary(*, tenant: Tenant, canary_id: uuid.UUID | str) -> Canary:
    """A canary of `tenant` (another company's, or none: NotFound)."""
    try:
        key = uuid.UUID(str(canary_id))
    except ValueError:
        raise NotFound() from None
    canary = Canary.objects.filter(tenant=tenant, pk=key).select_related("candidate", "current").first()
    if canary is None:
        raise NotFound()
    return canary


def canary_active(tenant: Tenant) -> Canary | None:
    return (
        Canary.objects.filter(tenant=tenant, status__in=Canary.ACTIVE)
        .select_related("candidate", "current")
        .first()
    )


def canary_endpoints(tenant: Tenant) -> list[ModelEndpoint]:
    """The endpoints a company may put in a canary: its own and the operator's."""
    return list(endpoints_for(tenant))


def _rows(indicators: dict[str, Any]) -> list[dict[str, Any]]:
    """The indicators as table rows: label, current, candidate, whether it is a guardrail."""
    current, candidate = indicators.get("current") or {}, indicators.get("candidate") or {}

    def show(value: Any, unit: str = "") -> str:
        return NO_VALUE if value is None else f"{value:g}{unit}"

    spec = [
        ("Conversations", "conversations", "", ""),
        ("Replies", "replies", "", ""),
        ("Abstentions", "abstention_rate", " %", "abstention"),
        ("Unsupported sentences removed", "unsupported_rate", " %", "unsupported"),
        ("Unsupported sentences per conversation", "unsupported_per_conversation", "", ""),
        ("Errors", "error_rate", " %", "error"),
        ("First content (median)", "first_content_p50_ms", " ms", ""),
        ("Handoffs", "handoff_rate", " %", ""),
        ("CSAT average", "csat_average", " / 5", ""),
    ]
    return [
        {
            "label": label,
            "current": show(current.get(key), unit),
            "candidate": show(candidate.get(key), unit),
            "guardrail": guard,
            "key": key,
            "unit": unit,
        }
        for label, key, unit, guard in spec
    ]


def canary_golden_runs(canary: Canary) -> list[dict[str, Any]]:
    """The two golden runs of a canary's check, with their progress."""
    golden = canary.golden or {}
    runs = {str(r.id): r for r in GoldenRun.objects.filter(tenant=canary.tenant_id, id__in=_run_ids(golden))}
    labels = (("current_run", "Current model"), ("candidate_run", "Candidate"))
    return [
        {"id": run.id, "label": label, "done": run.done, "total": run.total, "status": run.status}
        for key, label in labels
        if (run := runs.get(str(golden.get(key)))) is not None
    ]


def _run_ids(golden: dict[str, Any]) -> list[uuid.UUID]:
    ids = []
    for key in ("current_run", "candidate_run"):
        try:
            ids.append(uuid.UUID(str(golden.get(key))))
        except ValueError:
            continue
    return ids


def canary_view(canary: Canary, *, live: bool) -> dict[str, Any]:
    indicators = canary_indicators(canary) if live else (canary.indicators or {})
    return {
        "runs": canary_golden_runs(canary) if canary.status == Canary.Status.CHECKING else [],
        "canary": canary,
        "indicators": indicators,
        "rows": _rows(indicators) if indicators else [],
        "chart": indicator_chart(
            f"canary-chart-{canary.pk}", indicator_bars(indicators) if indicators else []
        ),
        "baseline_before": indicators.get("baseline") == "before",
    }


def indicator_bars(indicators: dict[str, Any]) -> list[dict[str, Any]]:
    """The guardrail rates and the handoff rate of both arms as bar widths (percent of 100)."""
    current, candidate = indicators.get("current") or {}, indicators.get("candidate") or {}
    keys = [*GUARDRAILS, "handoff"]
    labels = {**GUARDRAIL_LABELS, "handoff": "Handoffs"}
    return [
        {
            "label": labels[key],
            "current": current.get(f"{key}_rate"),
            "candidate": candidate.get(f"{key}_rate"),
        }
        for key in keys
    ]


def canary_section(tenant: Tenant, user: User) -> dict[str, Any]:
    """The context of templates/releases/_canary_section.html (admins only, like the models page)."""
    access_tenant(actor=user, slug=tenant.slug, roles=[Role.ADMIN])
    current = tenant_current_endpoint(tenant.id)
    active = canary_active(tenant)
    history = list(
        Canary.objects.filter(tenant=tenant)
        .exclude(status__in=Canary.ACTIVE)
        .select_related("candidate", "current")[:HISTORY]
    )
    latest = history[0] if history else None
    stopped = latest if latest is not None and latest.status == Canary.Status.STOPPED else None
    return {
        "canary_active": canary_view(active, live=active.status == Canary.Status.RUNNING) if active else None,
        "canary_stopped": stopped,
        "canary_history": history,
        "canary_candidates": [e for e in canary_endpoints(tenant) if current is None or e.pk != current.pk],
        "canary_defaults": {
            "share": 10,
            "min_conversations": 20,
            "abstention": 10,
            "unsupported": 5,
            "error": 5,
        },
    }
