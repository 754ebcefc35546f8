"""How the handoff app follows conversations (registered in HandoffConfig.ready through
apps.conversations.hooks). `on_transition` is the one writer of a handoff's status: it runs inside the
ownership transition's transaction, so the queue and the conversation never disagree."""

from __future__ import annotations

import logging
import re
import uuid

from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps.audit import metrics
from apps.conversations.audit import handoff_cancel_audit, handoff_request_audit
from apps.conversations.events import event_append
from apps.conversations.models import Conversation, HandoffReason
from apps.conversations.ownership import HandoffTrigger, Transition
from apps.conversations.services import email_masked
from apps.core.event_types import HandoffSummary, QueueChanged, TicketOpened, TicketRef
from apps.core.realtime import StaffStream, staff_publish
from apps.handoff.availability import availability_now
from apps.handoff.escalation import escalation_delay
from apps.handoff.locks import handoff_open_lock, tenant_ticket_number_lock
from apps.handoff.models import Handoff, HandoffRule, Ticket
from apps.handoff.selectors import handoff_summary, queue_position

logger = logging.getLogger(__name__)

TASKS = "apps.handoff.tasks."  # sent by name: listeners never import the app's interface modules

Status = Conversation.Status

_CLOSING = {
    Status.ASSISTANT: Handoff.Status.RETURNED,
    Status.RESOLVED: Handoff.Status.RESOLVED,
}


def on_transition(change: Transition) -> None:
    conversation = change.conversation
    handoff = handoff_open_lock(conversation=conversation)
    now = timezone.now()
    opened = cancelled = False
    if change.after in (Status.WAITING, Status.HUMAN) and handoff is None:
        handoff, opened = _open(change), True
    elif handoff is None:
        return
    if change.after == Status.HUMAN:
        if handoff.status == Handoff.Status.WAITING and handoff.claimed_at is None:
            handoff.claimed_at = now
            waited = (now - handoff.created_at).total_seconds()
            slug = conversation.tenant.slug
            transaction.on_commit(lambda: metrics.handoff_claim_observe(tenant=slug, seconds=waited))
        handoff.status = Handoff.Status.CLAIMED
        handoff.agent = conversation.agent
    elif change.after == Status.WAITING:
        if handoff.status != Handoff.Status.WAITING:
            # Back in the queue (transferred to a team): escalation counts again from now.
            handoff.queued_at = now
            handoff_id = handoff.id
            transaction.on_commit(lambda: _escalation_schedule(handoff_id))
        handoff.status = Handoff.Status.WAITING
        handoff.agent = None
        if "team_id" in change.context:
            handoff.team_id = change.context["team_id"]
    else:
        cancelled = (
            change.before == Status.WAITING and change.after == Status.ASSISTANT and change.actor is None
        )
        handoff.status = Handoff.Status.CANCELLED if cancelled else _CLOSING[Status(change.after)]
        handoff.closed_at = now
    handoff.save()
    if change.after == Status.WAITING and change.before != Status.WAITING:
        _tell_customer(conversation, handoff)
    summary = HandoffSummary.model_validate(handoff_summary(handoff, conversation=conversation))
    payload = QueueChanged(handoff=summary).payload()
    tenant_id = conversation.tenant_id
    transaction.on_commit(lambda: staff_publish(tenant_id, payload, stream=StaffStream.AGENT))
    # Audited last: the chain lock follows the row locks above (the ticket number's among them).
    if opened:
        handoff_request_audit(change, handoff)
    elif cancelled:
        handoff_cancel_audit(change, handoff)


def _open(change: Transition) -> Handoff:
    trigger = change.trigger or HandoffTrigger(
        reason=HandoffReason.AGENT_TAKEOVER
        if change.after == Status.HUMAN
        else HandoffReason.CUSTOMER_REQUEST
    )
    conversation = change.conversation
    priority, team_id = trigger.priority, change.context.get("team_id")
    tier = conversation.contact.tier if conversation.contact_id and conversation.contact else ""
    if tier:
        for rule in HandoffRule.objects.filter(
            tenant_id=conversation.tenant_id, kind=HandoffRule.Kind.TIER, value__iexact=tier, enabled=True
        ):
            priority = max(priority, rule.priority)
            team_id = team_id or rule.team_id
    team_id = team_id or trigger.team_id
    handoff = Handoff.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        reason=trigger.reason,
        detail=trigger.detail[:500],
        priority=min(priority, 3),
        team_id=team_id,
        status=Handoff.Status.WAITING,
        queued_at=timezone.now(),
    )
    handoff_id = handoff.id
    transaction.on_commit(lambda: _after_open(handoff_id, change.after == Status.WAITING))
    slug, reason = conversation.tenant.slug, trigger.reason
    transaction.on_commit(lambda: metrics.handoff_count(tenant=slug, reason=reason))
    logger.info(
        "handoff %s opened for conversation %s: %s (priority %s)",
        handoff.id,
        conversation.id,
        trigger.reason,
        handoff.priority,
    )
    return handoff


def _after_open(handoff_id: uuid.UUID, queued: bool) -> None:
    try:
        current_app.send_task(TASKS + "case_file_build", args=[str(handoff_id)])
    except Exception as exc:  # the case file is rebuilt on demand from the console
        logger.warning("case file of handoff %s not queued: %s", handoff_id, exc.__class__.__name__)
    if queued:
        _escalation_schedule(handoff_id)


def _escalation_schedule(handoff_id: uuid.UUID) -> None:
    try:
        current_app.send_task(
            TASKS + "handoff_escalate", args=[str(handoff_id)], countdown=escalation_delay(handoff_id)
        )
    except Exception as exc:  # the worker's startup sweep escalates overdue handoffs too
        logger.warning("escalation of handoff %s not scheduled: %s", handoff_id, exc.__class__.__name__)


def _tell_customer(conversation: Conversation, handoff: Handoff) -> None:
    """What happens next, honestly: an expected wait, or that we will answer by email."""
    tenant = conversation.tenant
    availability = availability_now(tenant=tenant)
    data: dict[str, object] = {"handoff_id": str(handoff.id)}
    if availability.live:
        position = queue_position(handoff)
        data.update(
            state="queued",
            position=position,
            expected_wait_seconds=availability.expected_wait_seconds(position),
        )
    else:
        email = conversation.contact_email or (conversation.contact.email if conversation.contact else "")
        data.update(
            state="offline",
            why=availability.why,
            hours=availability.hours_text,
            next_open=availability.next_open.isoformat() if availability.next_open else None,
            ask_email=not email,
        )
        if email:
            ticket = ticket_open(conversation=conversation, handoff=handoff, email=email)
            data.update(ticket=ticket.number, email=email_masked(email))
    handoff.availability = {k: v for k, v in data.items() if k != "handoff_id"}
    handoff.save(update_fields=["availability", "updated_at"])
    event_append(conversation, "handoff.status", data=data)


def ticket_open(*, conversation: Conversation, handoff: Handoff | None, email: str) -> Ticket:
    """The conversation's ticket (one per conversation), numbered per company; the caller holds the
    conversation's lock."""
    ticket = Ticket.objects.filter(conversation=conversation).first()
    if ticket is not None:
        if ticket.email != email or ticket.status == Ticket.Status.CLOSED:
            ticket.email = email
            ticket.status = Ticket.Status.OPEN
            ticket.save(update_fields=["email", "status", "updated_at"])
        return ticket
    # Numbers are per company: take the company's row lock so two tickets never share one.
    tenant_ticket_number_lock(tenant_id=conversation.tenant_id)
    last = (
        Ticket.objects.filter(tenant_id=conversation.tenant_id)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )
    ticket = Ticket.objects.create(
        tenant_id=conversation.tenant_id,
        number=(last or 1000) + 1,
        conversation=conversation,
        handoff=handoff,
        email=email,
    )
    opened = TicketOpened(ticket=TicketRef(number=ticket.number, conversation_id=str(conversation.id)))
    payload = opened.payload()
    tenant_id = conversation.tenant_id
    transaction.on_commit(lambda: staff_publish(tenant_id, payload, stream=StaffStream.AGENT))
    return ticket


def on_email_left(conversation: Conversation, email: str) -> None:
    """The customer left an email: open (or update) the conversation's ticket and say its number."""
    handoff = Handoff.objects.filter(conversation=conversation, status__in=Handoff.OPEN).first()
    ticket = ticket_open(conversation=conversation, handoff=handoff, email=email)
    event_append(conversation, "handoff.ticket", data={"ticket": ticket.number, "email": email_masked(email)})


def rule_check(tenant_id: uuid.UUID, tier: str, text: str) -> HandoffTrigger | None:
    """Company rules that send a turn to a person: a topic the turn mentions, or the customer's tier
    when its rule hands every conversation to people."""
    folded = text.casefold()
    for rule in HandoffRule.objects.filter(tenant_id=tenant_id, enabled=True):
        if rule.kind == HandoffRule.Kind.TOPIC:
            words = [w.strip().casefold() for w in rule.value.split(",") if w.strip()]
            hit = next((w for w in words if _mentions(folded, w)), None)
            if hit is not None:
                return _rule_trigger(rule, f"topic: {hit}")
        elif tier and rule.value.strip().casefold() == tier.casefold():
            return _rule_trigger(rule, f"tier: {tier}")
    return None


def _rule_trigger(rule: HandoffRule, detail: str) -> HandoffTrigger:
    return HandoffTrigger(
        reason=HandoffReason.TENANT_RULE, detail=detail, priority=rule.priority, team_id=rule.team_id
    )


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None
