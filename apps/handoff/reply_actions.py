"""Agents' replies to customers and private notes as audited actions (apps/audit/actions.py; the ownership
actions and their checks are in apps.handoff.actions).

A reply is the owning agent's only; a note any agent's of the company. Rows carry the message's or note's
id, its length and (for a reply) its seq, never what was written.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps.accounts.actions import ChangeAction
from apps.conversations.channels import delivery_queue
from apps.conversations.events import event_append
from apps.conversations.models import Message
from apps.core import event_types
from apps.core.errors import BadRequest, Conflict
from apps.core.realtime import StaffStream, staff_publish
from apps.guardrails.pii import pii_redact
from apps.handoff.actions import TASKS, ConversationAction, Status, holder_text
from apps.handoff.models import Handoff, Note, Ticket
from apps.handoff.selectors import note_render

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 4000
MAX_NOTE_CHARS = 4000


@dataclass(frozen=True)
class AgentReply:
    message: Message
    seq: int
    created: bool


def _text(value: str, *, limit: int, empty: str, too_long: str) -> str:
    body = value.strip()
    if not body:
        raise BadRequest(empty)
    if len(body) > limit:
        raise BadRequest(too_long.format(limit=limit, length=len(body)))
    return body


class AgentReplySend(ConversationAction[AgentReply], ChangeAction[AgentReply]):
    """The owning agent's message to the customer: stored once per client_msg_id, pushed to the widget after
    commit, and emailed when the customer asked to be answered by email. A resend of a stored reply (the
    same client_msg_id) changes nothing and writes no audit row."""

    action = "conversation.reply"

    @cached_property
    def body(self) -> str:
        return _text(
            self.params["text"],
            limit=MAX_REPLY_CHARS,
            empty="The reply is empty.",
            too_long="Replies are limited to {limit} characters; this one has {length}.",
        )

    def check(self) -> None:
        client_msg_id: str = self.params["client_msg_id"]
        self.body  # noqa: B018  (validated before anything is read)
        if not client_msg_id or len(client_msg_id) > 56:
            raise BadRequest("client_msg_id must be 1 to 56 characters.")
        super().check()

    def perform(self) -> AgentReply:
        key = f"agent:{self.params['client_msg_id']}"
        redacted = pii_redact(self.body)  # the assistant's memory after a hand back sees only this
        conversation = self._lock()
        agent = self.actor
        existing = Message.objects.filter(conversation=conversation, client_msg_id=key).first()
        if existing is not None:
            if existing.author_id != agent.id:
                raise Conflict("That message id was used by someone else.")
            seq = conversation.events.filter(message=existing).values_list("seq", flat=True).first() or 0
            return AgentReply(message=existing, seq=seq, created=False)
        if conversation.status != Status.HUMAN or conversation.agent_id != agent.id:
            raise Conflict(
                holder_text(conversation) if conversation.agent_id != agent.id else "Claim it first."
            )
        conversation.last_message_at = timezone.now()
        message = Message.objects.create(
            tenant=self.tenant,
            conversation=conversation,
            role=Message.Role.AGENT,
            author=agent,
            client_msg_id=key,
            turn=conversation.turn,
            text=self.body,
            text_redacted=str(redacted),
            via=conversation.channel,
        )
        event = event_append(conversation, "agent.message", message=message)
        # A channel that does not stream (email, messaging) sends it after commit (channels.md, "Outbound").
        delivery = delivery_queue(message=message, conversation=conversation)
        Handoff.objects.filter(
            conversation=conversation, status=Handoff.Status.CLAIMED, first_reply_at__isnull=True
        ).update(first_reply_at=timezone.now())
        ticket = Ticket.objects.filter(conversation=conversation).exclude(status=Ticket.Status.CLOSED).first()
        if ticket is not None and delivery is None:
            message_id = message.id
            transaction.on_commit(lambda: _email_enqueue(message_id))
        return AgentReply(message=message, seq=event.seq, created=True)

    def changed(self, result: AgentReply) -> bool:
        return result.created

    def audit_data(self, result: AgentReply) -> dict[str, Any]:
        return {"message_id": result.message.id, "seq": result.seq, "length": len(result.message.text)}


def _email_enqueue(message_id: uuid.UUID) -> None:
    try:
        current_app.send_task(TASKS + "ticket_reply_send", args=[str(message_id)])
    except Exception as exc:
        logger.error("email of reply %s not queued: %s", message_id, exc.__class__.__name__)


class NoteAdd(ConversationAction[Note]):
    """A private note for colleagues; the customer never sees it."""

    action = "conversation.note"

    @cached_property
    def body(self) -> str:
        return _text(
            self.params["text"],
            limit=MAX_NOTE_CHARS,
            empty="The note is empty.",
            too_long="Notes are limited to {limit} characters.",
        )

    def check(self) -> None:
        self.body  # noqa: B018  (validated before anything is read)
        super().check()

    def perform(self) -> Note:
        tenant = self.tenant
        note = Note.objects.create(
            tenant=tenant, conversation=self.conversation, author=self.actor, text=self.body
        )
        note_view = event_types.Note.model_validate(note_render(note))
        added = event_types.NoteAdded(conversation_id=str(self.conversation.id), note=note_view)
        payload = added.payload()
        transaction.on_commit(lambda: staff_publish(tenant.id, payload, stream=StaffStream.AGENT))
        return note

    def audit_data(self, result: Note) -> dict[str, Any]:
        return {"note_id": result.id, "length": len(result.text)}
