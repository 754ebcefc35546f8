"""Escalation of handoffs nobody claims in the company's time: priority up, the consoles told, admins
emailed; within opening hours only, and at most MAX_ESCALATIONS times."""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.mail import tenant_admins_email
from apps.accounts.models import Tenant
from apps.conversations.audit import ActorKind, handoff_audit
from apps.core.errors import NotFound
from apps.core.event_types import HandoffEscalated, HandoffSummary
from apps.core.realtime import StaffStream, staff_publish
from apps.handoff.availability import next_opening, open_at, settings_for
from apps.handoff.locks import handoff_lock
from apps.handoff.models import (
    Handoff,
)
from apps.handoff.selectors import handoff_summary

logger = logging.getLogger(__name__)


# Escalations of one unclaimed handoff (each raises its priority and emails the admins) before it stops.
MAX_ESCALATIONS = 3


def escalation_delay(handoff_id: uuid.UUID | str) -> int:
    """Seconds until the handoff is due for its next escalation (0: due now): the company's period after
    it was queued, or after its last escalation. Outside the company's hours nobody is expected to claim
    (the customer was offered email), so the period starts again when it opens: admins are not emailed
    all night, nor all at once in the morning."""
    handoff = Handoff.objects.filter(id=_uuid(handoff_id)).select_related("tenant").first()
    if handoff is None:
        return 0
    row = settings_for(handoff.tenant)
    period = datetime.timedelta(seconds=row.escalate_after_seconds)
    now = timezone.now()
    since = max(t for t in (handoff.created_at, handoff.queued_at, handoff.escalated_at) if t is not None)
    due = since + period
    if not open_at(row, now):
        opens = next_opening(row, now)
        if opens is None:
            return 86400  # no live hours at all: look again tomorrow (the settings may change)
        due = max(due, opens + period)
    return max(0, int((due - now).total_seconds()) + 1)


def handoff_escalate(*, handoff_id: uuid.UUID | str) -> Handoff | None:
    """Escalates a handoff nobody has claimed in the company's time: priority up, agents and admins told.
    Returns the handoff if it is still waiting (for the next check), else None."""
    with transaction.atomic():
        handoff = handoff_lock(handoff_id=_uuid(handoff_id))
        if handoff is None or handoff.status != Handoff.Status.WAITING:
            return None
        if handoff.escalation_level >= MAX_ESCALATIONS:
            return None  # escalated as far as it goes: agents see it on top, admins have been told
        if escalation_delay(handoff.id) > 1:
            return handoff  # not due yet (a redelivered or early task)
        handoff.escalation_level += 1
        handoff.priority = min(3, handoff.priority + 1)
        handoff.escalated_at = timezone.now()
        handoff.save(update_fields=["escalation_level", "priority", "escalated_at", "updated_at"])
        summary = handoff_summary(handoff)
        tenant = handoff.tenant
        escalated = HandoffEscalated(handoff=HandoffSummary.model_validate(summary)).payload()
        transaction.on_commit(lambda: staff_publish(tenant.id, escalated, stream=StaffStream.AGENT))
        transaction.on_commit(lambda: _admins_tell(tenant, summary))
        handoff_audit(
            "handoff.escalate",
            tenant_id=handoff.tenant_id,
            handoff=handoff,
            conversation_id=handoff.conversation_id,
            actor_kind=ActorKind.SYSTEM,
            data={"level": handoff.escalation_level, "priority": handoff.priority},
        )
    logger.warning(
        "handoff %s unclaimed for %ss: escalated to level %s",
        handoff.id,
        summary["waiting_seconds"],
        handoff.escalation_level,
    )
    return handoff


def _admins_tell(tenant: Tenant, summary: dict[str, Any]) -> None:
    minutes = max(1, summary["waiting_seconds"] // 60)
    tenant_admins_email(
        tenant=tenant,
        subject=f"A customer has waited {minutes} min for a person",
        body=(
            f"A handoff ({summary['reason_label']}) has waited {minutes} minutes without an agent.\n"
            f"Open the console: /staff/{tenant.slug}/console/?handoff={summary['id']}\n"
        ),
        what="escalation",
    )


def handoffs_escalate_due() -> int:
    """Escalates every handoff that is due (after a worker restart lost its scheduled checks)."""
    escalated = 0
    for handoff_id in Handoff.objects.filter(status=Handoff.Status.WAITING).values_list("id", flat=True):
        if escalation_delay(handoff_id) <= 1 and handoff_escalate(handoff_id=handoff_id) is not None:
            escalated += 1
    return escalated


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None
