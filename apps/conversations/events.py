"""The numbered event log: every event a client must not miss is appended here, in the transaction of the
row it describes, with the next `seq` of its conversation (taken under the conversation's row lock), and
pushed to the conversation's sockets after commit (best effort: clients resume by `seq`)."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from apps.conversations.audit import event_actor
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.selectors import conversation_group, event_render

logger = logging.getLogger(__name__)


def event_append(
    conversation: Conversation,
    type: str,
    *,
    message: Message | None = None,
    data: dict[str, Any] | None = None,
    actor: Any = None,
    actor_kind: str | None = None,
) -> ConversationEvent:
    """Appends an event to a conversation the caller holds locked (select_for_update) in its transaction.

    Who caused it is stored with it (not sent to clients): `actor` a staff member, `actor_kind` one of
    ConversationEvent.ActorKind. Without them it follows the message the event carries (a customer's
    message is the customer's, a reply the assistant's, an agent's reply its author's), else the system.
    """
    kind, actor_id = event_actor(message=message, actor=actor, actor_kind=actor_kind)
    conversation.last_seq += 1
    conversation.save(update_fields=["last_seq", "turn", "status", "last_message_at", "updated_at"])
    event = ConversationEvent.objects.create(
        tenant_id=conversation.tenant_id,
        conversation=conversation,
        seq=conversation.last_seq,
        type=type,
        message=message,
        data=data or {},
        actor_kind=kind,
        actor_id=actor_id,
    )
    if settings.EVENTS_STRICT:
        event_render(event)  # a payload that does not match its model fails where it is written
    transaction.on_commit(
        lambda: conversation_publish(conversation=conversation, payload=event_render(event))
    )
    return event


def conversation_publish(*, conversation: Conversation, payload: dict[str, Any]) -> None:
    """Best-effort push to the conversation's sockets; they recover anything missed by `seq`."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            conversation_group(conversation.tenant_id, conversation.id),
            {"type": "conv.event", "payload": payload},
        )
    except Exception as exc:
        logger.warning("push to conversation %s failed: %s", conversation.id, exc.__class__.__name__)
