"""Row locks of a conversation: the only module that locks Conversation and Message rows, and the one
place the desk's lock order is written down (docs/architecture/locking.md).

THE ORDER. A transaction takes row locks only in this order, skipping any it does not need, and never
goes back to an earlier kind once it holds a later one:

    1. Conversation   this module          one conversation per transaction
    2. Presence       apps.handoff.locks   the claiming agent's row (capacity check)
    3. Message        this module          rows of the locked conversation, oldest first
    4. Handoff        apps.handoff.locks   the locked conversation's open handoff
    5. ToolRun        apps.tools.locks     a run of the locked conversation
    6. Delivery       this module          a message's delivery on its channel (alone: the delivery
                                           worker, a provider's status callback)
    7. Tenant         apps.handoff.locks   last: the company's ticket-number lock

It is the order the code already took them in: a claim or take-over locks the conversation, then the
agent's presence, then interrupts the replies being written (messages), then the ownership listener updates
the handoff and, for a customer told "we will answer by email", numbers a ticket under the tenant's row.
A customer's confirmation of a tool run locks the conversation, then the run. The worker that executes a
run locks only the run; it tells the conversation after commit (apps.tools.hooks).

Why one conversation row first: it is the lock that numbers events (`seq`), so every write that appends to
a conversation's timeline holds it already; whatever is locked after it belongs to that conversation and is
contended only by transactions that hold it too, or by ones that lock a single row of a later kind alone
(the escalation of a handoff, a worker claiming a run).

Each lock is `FOR UPDATE OF` its own table only (`of=("self",)`): a join added for reading must not lock
the joined row as well. A `select_related("tenant")` would otherwise lock the company's row, out of order,
and hold up the commit of every transaction of the company that inserted a row: foreign keys are checked
at commit (Django makes them DEFERRABLE INITIALLY DEFERRED), with a FOR KEY SHARE lock on the row they
reference, which FOR UPDATE excludes. Several rows of one kind are locked in a fixed order, so two
transactions can never hold parts of the same set.

The modules are split by layer (import-linter): tools sits below conversations and handoff above it, so
each app locks its own rows; the order is the same for all of them.

Knowledge (Document, then DocumentVersion, then the tenant's knowledge epoch) is a separate domain with its
own locks in apps.knowledge: none of its transactions holds a conversation-scoped lock, nor the other way
round, so the two orders cannot form a cycle. Their only common row, the Tenant, is last in both. The demo
business system (apps.telco) locks its own Account rows; the tool adapters call it from a worker that holds
no lock of the desk. Voice clips and settings (apps.voice) and a company's messaging channel settings
(apps.messaging) are locked alone, each in a transaction that takes no other lock.
"""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.conversations.models import Conversation, Delivery, Message
from apps.core.errors import NotFound

# Lock only the row of the queryset's own table, never a joined one (see the module docstring).
_SELF = ("self",)


def _conversations() -> QuerySet[Conversation]:
    return Conversation.objects.select_for_update(of=_SELF)


def conversation_lock(*, conversation_id: uuid.UUID, tenant_id: uuid.UUID | None = None) -> Conversation:
    """The conversation, locked (order 1) for a transition or a write to its timeline; NotFound if there
    is none (in the tenant, when given). The caller holds a transaction."""
    conversation = conversation_lock_find(conversation_id=conversation_id, tenant_id=tenant_id)
    if conversation is None:
        raise NotFound("There is no such conversation.")
    return conversation


def conversation_lock_find(
    *, conversation_id: uuid.UUID, tenant_id: uuid.UUID | None = None
) -> Conversation | None:
    """The conversation, locked (order 1), or None if there is none (in the tenant, when given)."""
    rows = _conversations().filter(id=conversation_id)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    return rows.first()


def conversation_lock_existing(*, conversation_id: uuid.UUID) -> Conversation:
    """The conversation, locked (order 1), for a caller that knows it exists (its own reply's):
    Conversation.DoesNotExist otherwise."""
    return _conversations().get(id=conversation_id)


def channel_conversation_lock(*, tenant_id: uuid.UUID, channel: str, key: str) -> Conversation | None:
    """A channel's conversation found by its key (the sender's number, an email thread), locked (order 1);
    None if there is none yet."""
    return _conversations().filter(tenant_id=tenant_id, channel=channel, channel_key=key).first()


def guest_conversation_lock(
    *, tenant_id: uuid.UUID, conversation_id: uuid.UUID, visitor_id: uuid.UUID
) -> Conversation | None:
    """A guest's conversation still open to their token, locked (order 1); None if there is none (signed
    in meanwhile, ended already, or another visitor's)."""
    return (
        _conversations()
        .filter(
            tenant_id=tenant_id,
            id=conversation_id,
            visitor_id=visitor_id,
            contact__isnull=True,
            visitor_ended_at__isnull=True,
        )
        .first()
    )


def conversation_and_message_lock(
    *, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[Conversation, Message]:
    """The conversation (order 1), then one of its messages (order 3), locked; DoesNotExist if either is
    gone."""
    conversation = conversation_lock_existing(conversation_id=conversation_id)
    message = Message.objects.select_for_update(of=_SELF).get(id=message_id)
    return conversation, message


def streaming_messages_lock(*, conversation: Conversation) -> list[Message]:
    """The replies still being written in a conversation the caller holds locked (order 3), oldest
    first."""
    return list(
        Message.objects.select_for_update(of=_SELF)
        .filter(conversation=conversation, status=Message.Status.STREAMING)
        .order_by("created_at", "id")
    )


def delivery_lock(*, delivery_id: uuid.UUID) -> Delivery | None:
    """A delivery, locked (order 6) by the worker that sends it, with what sending it reads; None if gone."""
    return (
        Delivery.objects.select_for_update(of=_SELF)
        .select_related("message", "message__conversation", "message__author", "tenant")
        .filter(id=delivery_id)
        .first()
    )


def delivery_lock_by_provider(
    *, tenant_id: uuid.UUID, channel: str, provider_message_id: str
) -> Delivery | None:
    """The delivery a provider's status callback names, locked (order 6); None if there is none."""
    return (
        Delivery.objects.select_for_update(of=_SELF)
        .filter(tenant_id=tenant_id, channel=channel, provider_message_id=provider_message_id)
        .first()
    )
