"""The one way a customer's message comes in, whatever the channel (docs/architecture/channels.md).

`channel_message_receive` resolves the conversation inside the tenant, checks the sender's identity,
redacts, stores the message once (idempotent on its external id) with its numbered event, and starts the
assistant's answer exactly as the widget always has: only for a new message, and only while the assistant
owns the conversation. Streaming channels (the widget, the command line) run the answer in the process
that holds the stream; for the others it is queued, after commit, to a Celery worker
(apps.conversations.tasks.channel_turn_answer) that needs no socket.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from functools import partial

from celery import current_app
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Tenant
from apps.conversations import hooks
from apps.conversations.audit import redaction_audit
from apps.conversations.channels.registry import ChannelSender, ChannelType, channel_get
from apps.conversations.events import event_append
from apps.conversations.locks import conversation_lock_find
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.ownership import transition_locked
from apps.conversations.services import (
    PreparedText,
    Receipt,
    _staff_activity,
    _turn_mark,
    message_prepare,
)
from apps.core.errors import BadRequest, Forbidden, NotFound

logger = logging.getLogger(__name__)

EXTERNAL_ID_MAX = 200
CLIENT_MSG_ID_MAX = 64
TURN_TASK = "apps.conversations.tasks.channel_turn_answer"


def channel_message_receive(
    *,
    tenant: Tenant,
    channel: str,
    sender: ChannelSender,
    external_id: str,
    text: str | None = None,
    prepared: PreparedText | None = None,
    conversation: Conversation | None = None,
    conversation_key: str | None = None,
    answer: bool = True,
) -> Receipt:
    """Stores a customer's message that came in on `channel` and starts the answer to it.

    Give the conversation itself (`conversation`: the caller matched it, e.g. by an email's reply token;
    it must belong to `tenant`) or the channel's key for it (`conversation_key`: resolved by the channel
    type inside `tenant`, created on the first message). Give `text`, or `prepared` from
    `message_prepare` (callers in an event loop redact in a worker thread first).

    Idempotent on `external_id`: per tenant and channel for provider ids, per conversation for the
    widget's client ids (the type's `external_id_scope`). A message stored before returns its first
    receipt with `created=False` and starts nothing. `answer=False` stores without starting the
    assistant (the caller hands the conversation to a person itself).

    Raises BadRequest (unknown channel, empty or too long text, a missing key), NotFound (a conversation
    of another tenant, or gone), Forbidden or the channel's own error (a sender who may not write in that
    conversation), PIIUnavailable (redaction is down: nothing is stored).
    """
    channel_type = channel_get(channel)
    if (conversation is None) == (conversation_key is None):
        raise BadRequest("A message needs either its conversation or the channel's key for it.")
    if conversation is not None and conversation.tenant_id != tenant.id:
        raise NotFound("There is no such conversation.")
    client_msg_id, stored_external_id = _idempotency_keys(channel_type, external_id)
    if prepared is None:
        duplicate = _receipt_existing(
            tenant=tenant,
            channel_type=channel_type,
            sender=sender,
            client_msg_id=client_msg_id,
            external_id=stored_external_id,
            conversation_id=_conversation_id_hint(channel_type, conversation, conversation_key, sender),
        )
        if duplicate is not None:
            return duplicate
        prepared = message_prepare(text=text or "")
    try:
        return _store(
            tenant=tenant,
            channel_type=channel_type,
            sender=sender,
            client_msg_id=client_msg_id,
            external_id=stored_external_id,
            prepared=prepared,
            conversation=conversation,
            conversation_key=conversation_key,
            answer=answer,
        )
    except IntegrityError:
        # The same provider message stored concurrently by another request: answer with its receipt.
        duplicate = _receipt_existing(
            tenant=tenant,
            channel_type=channel_type,
            sender=sender,
            client_msg_id=client_msg_id,
            external_id=stored_external_id,
            conversation_id=None,
        )
        if duplicate is None:
            raise
        return duplicate


def _idempotency_keys(channel_type: ChannelType, external_id: str) -> tuple[str, str]:
    """(client_msg_id, external_id) as stored. A provider's id is kept as given (unique per tenant and
    channel) and hashed into the per-conversation key; a widget's client id is that key itself."""
    raw = (external_id or "").strip()
    if channel_type.external_id_scope == "conversation":
        if not raw or len(raw) > CLIENT_MSG_ID_MAX:
            raise BadRequest(f"client_msg_id must be 1 to {CLIENT_MSG_ID_MAX} characters.")
        return raw, ""
    if not raw or len(raw) > EXTERNAL_ID_MAX:
        raise BadRequest(f"A message's external id must be 1 to {EXTERNAL_ID_MAX} characters.")
    digest = hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:40]
    return f"{channel_type.name}:{digest}", raw


def _conversation_id_hint(
    channel_type: ChannelType,
    conversation: Conversation | None,
    conversation_key: str | None,
    sender: ChannelSender,
) -> uuid.UUID | None:
    if conversation is not None:
        return conversation.id
    if sender.claims is not None:
        return sender.claims.conversation_id
    return None


def _store(
    *,
    tenant: Tenant,
    channel_type: ChannelType,
    sender: ChannelSender,
    client_msg_id: str,
    external_id: str,
    prepared: PreparedText,
    conversation: Conversation | None,
    conversation_key: str | None,
    answer: bool,
) -> Receipt:
    with transaction.atomic():
        if conversation is not None:
            locked = conversation_lock_find(conversation_id=conversation.id, tenant_id=tenant.id)
            if locked is None:
                raise NotFound("There is no such conversation.")
        else:
            assert conversation_key is not None
            locked = channel_type.conversation_open(tenant=tenant, key=conversation_key, sender=sender)
        if not channel_type.identity.verify(locked, sender):
            logger.warning(
                "a %s message for conversation %s was refused: sender", channel_type.name, locked.id
            )
            raise Forbidden("This sender may not write in this conversation.")
        duplicate = _receipt_existing(
            tenant=tenant,
            channel_type=channel_type,
            sender=sender,
            client_msg_id=client_msg_id,
            external_id=external_id,
            conversation_id=locked.id,
        )
        if duplicate is not None:
            return duplicate
        if locked.status == Conversation.Status.RESOLVED:
            # Writing again after a resolution starts a clean assistant episode.
            transition_locked(
                locked,
                to=Conversation.Status.ASSISTANT,
                event="conversation.reopened",
                actor_kind=ConversationEvent.ActorKind.CUSTOMER,
            )
        locked.turn += 1
        locked.last_message_at = timezone.now()
        with transaction.atomic():
            message = Message.objects.create(
                tenant=tenant,
                conversation=locked,
                role=Message.Role.CUSTOMER,
                client_msg_id=client_msg_id,
                external_id=external_id,
                turn=locked.turn,
                text=prepared.body,
                text_redacted=str(prepared.redacted),
                pii_types=sorted({f.entity_type for f in prepared.findings}),
                via=channel_type.name,
            )
        event = event_append(locked, "message.created", message=message)
        for listener in hooks.message_stored_listeners():
            # After commit, and never at the message's expense: a failing listener is logged, not raised.
            transaction.on_commit(partial(listener, message), robust=True)
        turn = locked.turn
        conversation_id, tenant_id = locked.id, tenant.id
        transaction.on_commit(lambda: _turn_mark(locked, turn))
        queued = False
        if locked.status != Conversation.Status.ASSISTANT:
            _staff_activity(locked, event)
        elif answer and not channel_type.streams:
            # No socket holds this answer: a worker runs it (after commit, so it sees the message).
            transaction.on_commit(lambda: _turn_enqueue(tenant_id, conversation_id, turn))
            queued = True
        # What redaction replaced, by type (never the text): last, after the conversation's row lock.
        redaction_audit(message=message, entity_types=(f.entity_type for f in prepared.findings))
    return Receipt(message=message, seq=event.seq, created=True, owner=locked.status, answer_queued=queued)


def _receipt_existing(
    *,
    tenant: Tenant,
    channel_type: ChannelType,
    sender: ChannelSender,
    client_msg_id: str,
    external_id: str,
    conversation_id: uuid.UUID | None,
) -> Receipt | None:
    rows = Message.objects.filter(tenant=tenant, role=Message.Role.CUSTOMER)
    if external_id:
        rows = rows.filter(via=channel_type.name, external_id=external_id)
    elif conversation_id is not None:
        rows = rows.filter(conversation_id=conversation_id, client_msg_id=client_msg_id)
    else:
        return None
    message = rows.select_related("conversation").first()
    if message is None:
        return None
    if not channel_type.identity.verify(message.conversation, sender):
        raise Forbidden("This sender may not write in this conversation.")
    event = ConversationEvent.objects.filter(conversation_id=message.conversation_id, message=message).first()
    # A re-sent message starts nothing: no answer is scheduled for it again.
    return Receipt(message=message, seq=event.seq if event else 0, created=False, owner="")


def _turn_enqueue(tenant_id: object, conversation_id: object, turn: int) -> None:
    try:
        current_app.send_task(TURN_TASK, args=[str(tenant_id), str(conversation_id), turn])
    except Exception as exc:
        # The message is stored and visible to staff; the customer's next message starts a new turn.
        logger.error("answer of conversation %s not queued: %s", conversation_id, exc.__class__.__name__)
