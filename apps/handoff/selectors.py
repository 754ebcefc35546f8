"""Reads for agents: the queue, one handoff with its case file, a conversation's staff timeline (with
private notes), canned responses and tickets. Every read is scoped to one tenant (STYLE rule 3)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import Role, Tenant, User
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.selectors import agent_display_name, message_render
from apps.conversations.services import email_masked
from apps.core.errors import NotFound
from apps.core.event_types import Note as NoteView
from apps.core.event_types import timeline_item_payload
from apps.handoff.models import CannedResponse, Handoff, Note, Ticket


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None


def staff_name(user: User | None) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.username


def handoff_summary(handoff: Handoff, *, conversation: Conversation | None = None) -> dict[str, Any]:
    """One queue row as the console shows it (no customer words: those are in the case file)."""
    conversation = conversation or handoff.conversation
    contact = conversation.contact if conversation.contact_id else None
    waited_from = handoff.created_at
    return {
        "id": str(handoff.id),
        "conversation_id": str(conversation.id),
        "status": handoff.status,
        "conversation_status": conversation.status,
        "reason": handoff.reason,
        "reason_label": handoff.get_reason_display(),
        "detail": handoff.detail,
        "priority": handoff.priority,
        "escalation_level": handoff.escalation_level,
        "team": handoff.team.name if handoff.team_id and handoff.team else None,
        "team_id": str(handoff.team_id) if handoff.team_id else None,
        "agent_id": handoff.agent_id,
        "agent": staff_name(handoff.agent) if handoff.agent_id else None,
        "customer": (contact.name or contact.external_id) if contact else "Anonymous visitor",
        "verified": contact is not None,
        "created_at": waited_from.isoformat(),
        "claimed_at": handoff.claimed_at.isoformat() if handoff.claimed_at else None,
        "waiting_seconds": _waiting_seconds(handoff),
        "offline": handoff.availability.get("state") == "offline",
        "ticket": handoff.availability.get("ticket"),
        "case_file_status": handoff.case_file_status,
        "last_seq": conversation.last_seq,
    }


def _waiting_seconds(handoff: Handoff) -> int:
    """How long it has waited in the queue this time (or, once claimed, how long it waited to be)."""
    if handoff.status == Handoff.Status.WAITING:
        since = handoff.queued_at or handoff.created_at
        return int((timezone.now() - since).total_seconds())
    end = handoff.claimed_at or timezone.now()
    return int((end - handoff.created_at).total_seconds())


def queue_position(handoff: Handoff) -> int:
    """1 for the handoff agents will take next (highest priority, then longest waiting)."""
    ahead = (
        Handoff.objects.filter(tenant_id=handoff.tenant_id, status=Handoff.Status.WAITING)
        .filter(
            Q(priority__gt=handoff.priority) | Q(priority=handoff.priority, created_at__lt=handoff.created_at)
        )
        .count()
    )
    return ahead + 1


def handoff_queue(*, tenant: Tenant, agent: User) -> dict[str, list[dict[str, Any]]]:
    """The console's inbox: who is waiting (highest priority, then longest waiting, first), what this agent
    holds, and what colleagues hold."""
    rows = list(
        Handoff.objects.for_tenant(tenant)
        .filter(status__in=Handoff.OPEN)
        .select_related("conversation", "conversation__contact", "team", "agent")
        .order_by("-priority", "created_at")
    )
    waiting = [handoff_summary(h) for h in rows if h.status == Handoff.Status.WAITING]
    mine = [handoff_summary(h) for h in rows if h.status == Handoff.Status.CLAIMED and h.agent_id == agent.id]
    others = [
        handoff_summary(h) for h in rows if h.status == Handoff.Status.CLAIMED and h.agent_id != agent.id
    ]
    return {"waiting": waiting, "mine": mine, "others": others}


def access_handoff(*, tenant: Tenant, handoff_id: uuid.UUID | str) -> Handoff:
    handoff = (
        Handoff.objects.for_tenant(tenant)
        .select_related("conversation", "conversation__contact", "team", "agent")
        .filter(id=_uuid(handoff_id))
        .first()
    )
    if handoff is None:
        raise NotFound("There is no such handoff.")
    return handoff


def access_staff_conversation(*, tenant: Tenant, conversation_id: uuid.UUID | str) -> Conversation:
    conversation = (
        Conversation.objects.for_tenant(tenant)
        .select_related("contact", "agent")
        .filter(id=_uuid(conversation_id))
        .first()
    )
    if conversation is None:
        raise NotFound("There is no such conversation.")
    return conversation


def latest_handoff(*, conversation: Conversation) -> Handoff | None:
    return (
        Handoff.objects.filter(conversation=conversation)
        .select_related("team", "agent")
        .order_by("-created_at")
        .first()
    )


def staff_timeline(*, conversation: Conversation, roles: set[str], after: int = 0) -> list[dict[str, Any]]:
    """The conversation as agents see it: every event (customer words redacted unless the agent may see
    PII) and the private notes, in time order. Notes carry `note` instead of a `seq`."""
    original = Role.PII_VIEWER in roles or Role.ADMIN in roles
    events = (
        ConversationEvent.objects.filter(conversation=conversation, seq__gt=after)
        .select_related("message", "message__author")
        .order_by("seq")
    )
    items: list[dict[str, Any]] = []
    for event in events:
        payload: dict[str, Any] = {"type": event.type, "seq": event.seq, "at": event.created_at.isoformat()}
        if event.message is not None and event.type not in ("assistant.started", "assistant.superseded"):
            payload["message"] = staff_message_render(event.message, original=original)
        elif event.message_id:
            payload["message_id"] = str(event.message_id)
        payload.update(event.data)
        items.append(payload)
    if after == 0:
        for note in Note.objects.filter(conversation=conversation).select_related("author"):
            items.append(note_render(note))
        items.sort(key=lambda item: item["at"])
    return [timeline_item_payload(item, strict=settings.EVENTS_STRICT) for item in items]


def staff_message_render(message: Message, *, original: bool) -> dict[str, Any]:
    """`original` decides for customers' words only: the assistant wrote from redacted text, and agents'
    replies are their own, so staff see those as written (as the customer did, and the live stream)."""
    body = message_render(message, original=original or message.role != Message.Role.CUSTOMER)
    if message.role == Message.Role.AGENT:
        body["author_full"] = staff_name(message.author)
    if message.role == Message.Role.CUSTOMER and not original:
        body["redacted"] = True
    return body


def note_render(note: Note) -> dict[str, Any]:
    return NoteView(
        id=str(note.id), at=note.created_at.isoformat(), author=staff_name(note.author), text=note.text
    ).payload()


def canned_responses(*, tenant: Tenant) -> QuerySet[CannedResponse]:
    return CannedResponse.objects.for_tenant(tenant).order_by("shortcut")


def access_agent(*, tenant: Tenant, user_id: int) -> User:
    """An active agent (or admin) of the company; anyone else, a member in another role included, is not
    found."""
    user = (
        User.objects.filter(
            id=user_id,
            is_active=True,
            memberships__tenant=tenant,
            memberships__role__in=[Role.AGENT, Role.ADMIN],
        )
        .distinct()
        .first()
    )
    if user is None:
        raise NotFound("There is no such agent.")
    return user


def access_canned_response(*, tenant: Tenant, canned_id: uuid.UUID | str) -> CannedResponse:
    row = CannedResponse.objects.for_tenant(tenant).filter(id=_uuid(canned_id)).first()
    if row is None:
        raise NotFound("There is no such canned response.")
    return row


def tickets(*, tenant: Tenant, status: str | None = None) -> QuerySet[Ticket]:
    rows = Ticket.objects.for_tenant(tenant).select_related("conversation", "conversation__contact")
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at")


def email_for_staff(address: str, *, original: bool) -> str:
    """A customer's email address as a reader sees it: whole for admins and pii_viewers, masked
    (m***@example.com, as the customer was shown it) for everyone else, like the customer's own words."""
    if original or not address:
        return address
    return email_masked(address)


def ticket_render(ticket: Ticket, *, original: bool = False) -> dict[str, Any]:
    contact = ticket.conversation.contact
    return {
        "number": ticket.number,
        "conversation_id": str(ticket.conversation_id),
        "email": email_for_staff(ticket.email, original=original),
        "status": ticket.status,
        "customer": (contact.name or contact.external_id) if contact else "Anonymous visitor",
        "created_at": ticket.created_at.isoformat(),
        "answered_at": ticket.answered_at.isoformat() if ticket.answered_at else None,
    }


def customer_facing_agent(user: User | None) -> str:
    return agent_display_name(user)


def conversation_last_seq(*, conversation_id: uuid.UUID) -> int:
    return Conversation.objects.filter(id=conversation_id).values_list("last_seq", flat=True).first() or 0
