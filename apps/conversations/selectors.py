"""Reads of conversations: the event log as clients see it, passages they may open, the assistant's memory."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from apps.accounts.models import Tenant
from apps.conversations.identity import SessionClaims, SessionRevoked, verified_claims_current
from apps.conversations.models import Channel, Conversation, ConversationEvent, Message
from apps.core.errors import Conflict, NotFound
from apps.core.event_types import stored_event_payload
from apps.knowledge.models import Chunk

EVENT_PAGE = 500


def conversation_group(tenant_id: object, conversation_id: object) -> str:
    """The channel-layer group of one conversation's sockets (tenant scope in the name, STYLE rule 3)."""
    return f"conv.{tenant_id}.{conversation_id}"


def agent_display_name(user: Any) -> str:
    """What customers see of an agent: the first name, never the username or the email."""
    if user is None:
        return ""
    first = (getattr(user, "first_name", "") or "").strip().split(" ")[0]
    return first or "An agent"


def message_render(message: Message, *, original: bool = True) -> dict[str, Any]:
    """A message as a client sees it. Customers see their own words (`original`); prompts never do."""
    body: dict[str, Any] = {
        "id": str(message.id),
        "role": message.role,
        "text": message.text if original else message.text_redacted,
        "created_at": message.created_at.isoformat(),
    }
    if message.role == Message.Role.CUSTOMER:
        body["client_msg_id"] = message.client_msg_id
        if message.via and message.via != Channel.WIDGET:
            body["via"] = message.via  # the channel it came by: email, messaging…
    elif message.role == Message.Role.AGENT:
        body.update(status=message.status, author=agent_display_name(message.author))
    else:
        body.update(
            status=message.status,
            citations=message.citations,
            abstained=message.abstained,
            offer_handoff=message.offer_handoff,
        )
    return body


def event_render(event: ConversationEvent, *, original: bool = True) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": event.type, "seq": event.seq, "at": event.created_at.isoformat()}
    message = event.message
    if event.type in ("assistant.started", "assistant.superseded"):
        payload["message_id"] = str(event.message_id)
    elif message is not None:
        payload["message"] = message_render(message, original=original)
    payload.update(event.data)
    return stored_event_payload(payload, strict=settings.EVENTS_STRICT)


def events_after(*, tenant: Tenant, conversation_id: uuid.UUID, after: int) -> list[ConversationEvent]:
    """Stored events with seq > after, oldest first (at most EVENT_PAGE; clients page by seq)."""
    return list(
        ConversationEvent.objects.filter(tenant=tenant, conversation_id=conversation_id, seq__gt=after)
        .select_related("message", "message__author")
        .order_by("seq")[:EVENT_PAGE]
    )


def session_opens(conversation: Conversation, claims: SessionClaims) -> bool:
    """Whether a widget session may read and write this conversation: the same visitor and the same
    contact (an anonymous token never opens a customer's conversation, nor a customer's token another's),
    a widget conversation, and a visitor session that has not been ended."""
    return (
        conversation.tenant_id == claims.tenant_id
        and conversation.visitor_id == claims.visitor_id
        and conversation.contact_id == claims.contact_id
        and conversation.channel == Conversation.Channel.WIDGET
        and conversation.visitor_ended_at is None
    )


def session_conversation(*, tenant: Tenant, claims: SessionClaims) -> Conversation | None:
    """The session's conversation if it exists yet (it is created by the first message). A session that no
    longer stands (a verified one signed out, revoked by a rotated secret or past its expiry) or a
    conversation it no longer opens raises `SessionRevoked` (HTTP 401, websocket 4401)."""
    if not verified_claims_current(claims):
        raise SessionRevoked()
    conversation = Conversation.objects.for_tenant(tenant).filter(id=claims.conversation_id).first()
    if conversation is not None and not session_opens(conversation, claims):
        raise SessionRevoked()
    return conversation


def streaming_reply(*, conversation_id: uuid.UUID) -> Message | None:
    return (
        Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
        .order_by("-created_at")
        .first()
    )


def passage_for_visitor(*, tenant: Tenant, chunk_id: uuid.UUID | str) -> Chunk:
    """A passage of the tenant's published knowledge; anything else (another tenant's, an unpublished
    draft, a bad id) is not found."""
    try:
        key = uuid.UUID(str(chunk_id))
    except ValueError:
        raise NotFound() from None
    chunk = (
        Chunk.objects.for_tenant(tenant)
        .filter(id=key, live=True)
        .select_related("document", "version")
        .defer("embedding", "search_vector")
        .first()
    )
    if chunk is None:
        raise NotFound("That passage is no longer published.")
    return chunk


def turn_messages(*, conversation_id: uuid.UUID, turn: int) -> list[Message]:
    """The customer messages one answer must cover: every one since the last finished answer (or an
    agent's message, or the start of the episode), so quick messages sent while an answer was being
    written merge into one turn, and what the customer said to a person is not asked again."""
    answered = (
        Message.objects.filter(conversation_id=conversation_id, turn__lt=turn)
        .filter(
            Q(
                role=Message.Role.ASSISTANT,
                status__in=[Message.Status.COMPLETE, Message.Status.INTERRUPTED, Message.Status.FAILED],
            )
            | Q(role=Message.Role.AGENT)
        )
        .order_by("-turn")
        .values_list("turn", flat=True)
        .first()
    ) or 0
    episode_turn = _episode_turn(conversation_id)
    return list(
        Message.objects.filter(
            conversation_id=conversation_id,
            role=Message.Role.CUSTOMER,
            turn__gt=max(answered, turn_handed_back(conversation_id=conversation_id)),
            turn__gte=episode_turn,
            turn__lte=turn,
        ).order_by("turn")
    )


def _episode_turn(conversation_id: uuid.UUID) -> int:
    return Conversation.objects.filter(id=conversation_id).values_list("episode_turn", flat=True).first() or 0


# A person gave the conversation back to the assistant, or the customer stopped waiting for one.
BACK_TO_ASSISTANT = ("handoff.returned", "handoff.cancelled")


def turn_handed_back(*, conversation_id: uuid.UUID) -> int:
    """The conversation's turn when it last came back to the assistant from people (0: never): messages
    up to it were said to a person (or while waiting for one), and the assistant does not answer them."""
    back = (
        ConversationEvent.objects.filter(conversation_id=conversation_id, type__in=BACK_TO_ASSISTANT)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if back is None:
        return 0
    return (
        ConversationEvent.objects.filter(
            conversation_id=conversation_id,
            type="message.created",
            seq__lt=back,
            message__role=Message.Role.CUSTOMER,
        )
        .order_by("-seq")
        .values_list("message__turn", flat=True)
        .first()
    ) or 0


def conversation_customer(*, conversation_id: uuid.UUID) -> str | None:
    """The external id of the verified customer of the conversation; None for an anonymous visitor."""
    row = (
        Conversation.objects.filter(id=conversation_id).values_list("contact__external_id", flat=True).first()
    )
    return row or None


def history_messages(*, conversation_id: uuid.UUID, before_turn: int, limit: int = 40) -> list[Message]:
    """Earlier messages of the current episode for the assistant's memory, newest last: customer
    messages, agents' replies, and the answers that were shown as final (superseded and failed ones never
    were). A resolved and reopened conversation starts with an empty memory."""
    rows: QuerySet[Message] = Message.objects.filter(
        conversation_id=conversation_id, turn__lt=before_turn, turn__gte=_episode_turn(conversation_id)
    ).exclude(status__in=[Message.Status.SUPERSEDED, Message.Status.FAILED, Message.Status.STREAMING])
    return list(reversed(rows.order_by("-created_at")[:limit]))


def events_rendered(*, tenant: Tenant, conversation_id: uuid.UUID, after: int) -> list[dict[str, Any]]:
    return [
        event_render(e) for e in events_after(tenant=tenant, conversation_id=conversation_id, after=after)
    ]


def retry_turn(*, tenant: Tenant, claims: SessionClaims, message_id: uuid.UUID) -> int:
    """The turn to answer again if `message_id` is this visitor's latest answer and it did not complete."""
    conversation = session_conversation(tenant=tenant, claims=claims)
    if conversation is None:
        raise NotFound()
    if conversation.status != Conversation.Status.ASSISTANT:
        raise Conflict("A person is looking after this conversation now.")
    latest = (
        Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT)
        .order_by("-created_at")
        .first()
    )
    if latest is None or latest.id != message_id:
        if not Message.objects.filter(conversation=conversation, id=message_id).exists():
            raise NotFound("There is no such answer in this conversation.")
        raise Conflict("Only the latest answer can be tried again.")
    if latest.status not in (Message.Status.INTERRUPTED, Message.Status.FAILED):
        raise Conflict("That answer did not fail, so there is nothing to try again.")
    if latest.turn != conversation.turn:
        raise Conflict("A newer message is being answered already.")
    if turn_handed_back(conversation_id=conversation.id) >= latest.turn:
        # Cut off when a person took over: they have seen the question since.
        raise Conflict("A person has looked after this question since; ask again if you still need to.")
    return latest.turn


def conversations_recent(*, tenant: Tenant, limit: int = 100) -> QuerySet[Conversation]:
    return (
        Conversation.objects.for_tenant(tenant)
        .select_related("contact")
        .order_by("-last_message_at", "-created_at")[:limit]
    )


def access_conversation(*, tenant: Tenant, conversation_id: uuid.UUID | str) -> Conversation:
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError:
        raise NotFound() from None
    conversation = Conversation.objects.for_tenant(tenant).select_related("contact").filter(id=key).first()
    if conversation is None:
        raise NotFound()
    return conversation


def conversation_messages(*, conversation: Conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("created_at"))


def conversation_summary(conversation: Conversation) -> dict[str, Any]:
    contact = conversation.contact
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "channel": conversation.channel,
        "verified": contact is not None,
        "contact": {"external_id": contact.external_id, "name": contact.name} if contact else None,
        "last_seq": conversation.last_seq,
        "created_at": conversation.created_at.isoformat(),
        "last_message_at": conversation.last_message_at.isoformat() if conversation.last_message_at else None,
    }
