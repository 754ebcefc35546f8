"""The typed context of one customer turn, read once.

Every stage of the answer takes this (and what earlier stages returned) instead of reading the
conversation again: the turn's customer messages, the memory before them, the previous question (for
follow-ups), the verified customer, the model that answers it (its route) and the answer style in force.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from apps.accounts.models import Tenant
from apps.conversations import hooks, selectors
from apps.conversations.models import Conversation, Message
from apps.conversations.prompting import HistoryItem
from apps.guardrails.pii import RedactedText
from apps.llm.profiles import style_for
from apps.llm.routing import Route, conversation_route


@dataclass(frozen=True)
class TurnContext:
    tenant: Tenant
    conversation_id: uuid.UUID
    reply: Message  # the assistant's reply row being written
    question: RedactedText  # this turn's customer messages, redacted, one per line
    memory: tuple[HistoryItem, ...]  # earlier turns of the episode, oldest first
    previous_question: RedactedText | None  # the customer's last question before this turn
    customer: str | None  # the verified customer's external id; None for an anonymous visitor
    style: str  # "quote" | "compose"
    style_reason: str
    route: Route  # the model that answers this conversation (apps.llm.routing), decided when it started
    # What the customer told us in earlier sessions, with their consent (apps.memory), oldest first.
    remembered: tuple[RedactedText, ...] = ()


def turn_context_read(*, tenant: Tenant, reply: Message) -> TurnContext:
    """One read of everything the turn needs (one thread hop from the event loop)."""
    turn_messages = selectors.turn_messages(conversation_id=reply.conversation_id, turn=reply.turn)
    first_turn = turn_messages[0].turn if turn_messages else reply.turn
    history = selectors.history_messages(conversation_id=reply.conversation_id, before_turn=first_turn)
    customer = selectors.conversation_customer(conversation_id=reply.conversation_id)
    previous = next((m for m in reversed(history) if m.role == Message.Role.CUSTOMER), None)
    endpoint_id = (
        Conversation.objects.filter(id=reply.conversation_id, tenant=tenant)
        .values_list("model_endpoint_id", flat=True)
        .first()
    )
    route = conversation_route(tenant_id=tenant.id, endpoint_id=endpoint_id)
    style, reason = style_for(tenant, route)
    return TurnContext(
        tenant=tenant,
        conversation_id=reply.conversation_id,
        reply=reply,
        question=RedactedText.stored("\n".join(m.text_redacted for m in turn_messages)),
        memory=tuple(HistoryItem(role=m.role, text=RedactedText.stored(m.text_redacted)) for m in history),
        previous_question=RedactedText.stored(previous.text_redacted) if previous is not None else None,
        customer=customer,
        style=style,
        style_reason=reason,
        route=route,
        # Only a model's prompt uses it: a quoted answer is the policy's own words, whoever asks.
        remembered=tuple(
            fact
            for provider in (hooks.prompt_memory_providers() if style == "compose" else [])
            for fact in provider(tenant.id, reply.conversation_id)
        ),
    )
