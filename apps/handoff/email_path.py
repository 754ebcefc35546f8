"""The email path: agents' replies to customers who left an address, and those customers' email replies
(docs/architecture/handoff.md, "Nobody available, or out of hours")."""

from __future__ import annotations

import logging
import re
import uuid

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.conversations.models import Conversation, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger, conversation_lock, transition_locked
from apps.conversations.selectors import agent_display_name
from apps.conversations.services import email_receive
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.handoff.models import (
    SentEmail,
    Ticket,
)

logger = logging.getLogger(__name__)

Status = Conversation.Status


def ticket_reply_email(*, message_id: uuid.UUID | str) -> bool:
    """Emails an agent's reply to the customer of the conversation's ticket, at most once."""
    message = (
        Message.objects.filter(id=_uuid(message_id), role=Message.Role.AGENT)
        .select_related("conversation", "author", "tenant")
        .first()
    )
    if message is None:
        return False
    ticket = Ticket.objects.filter(conversation_id=message.conversation_id).first()
    if ticket is None:
        return False
    try:
        with transaction.atomic():
            record = SentEmail.objects.create(
                tenant_id=message.tenant_id, message_id=message.id, ticket=ticket
            )
    except IntegrityError:
        record = SentEmail.objects.get(message_id=message.id)
        if record.sent_at is not None:
            return False  # sent already: a redelivered task sends nothing twice
    tenant = message.tenant
    reply_to = f"reply+{ticket.reply_token}@{settings.HANDOFF_REPLY_DOMAIN}"
    email = EmailMessage(
        subject=f"[{tenant.name} #{ticket.number}] A reply to your question",
        body=(
            f"{message.text}\n\n— {agent_display_name(message.author)}, {tenant.name}\n\n"
            "Reply to this email to answer; your reply goes straight to the conversation."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[ticket.email],
        reply_to=[reply_to],
        headers={"X-Helpdesk-Ticket": str(ticket.number)},
    )
    email.send(fail_silently=False)
    SentEmail.objects.filter(id=record.id).update(sent_at=timezone.now())
    Ticket.objects.filter(id=ticket.id, status=Ticket.Status.OPEN).update(
        status=Ticket.Status.ANSWERED, answered_at=timezone.now()
    )
    logger.info("reply %s emailed for ticket #%s", message.id, ticket.number)
    return True


_REPLY_TO = re.compile(r"reply\+([A-Za-z0-9_\-]{10,40})@", re.IGNORECASE)
_QUOTE_START = re.compile(r"^(?:>|On .{0,200}wrote:\s*$|-{2,}\s*Original Message)", re.IGNORECASE)


def email_reply_text(text: str) -> str:
    """The customer's new words in an email reply: quoted history and signature separators cut off."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _QUOTE_START.match(line.strip()):
            _attribution_drop(kept)
            break
        if line.strip() == "--":
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _attribution_drop(kept: list[str]) -> None:
    """Mail programs wrap a long "On <date>, <name> <address> wrote:" over two lines, which the line
    check above does not see as one: drop it from the end of what was kept."""
    while kept and not kept[-1].strip():
        kept.pop()
    if kept and kept[-1].strip().lower().endswith("wrote:"):
        last = kept.pop()
        if not last.strip().lower().startswith("on ") and kept and kept[-1].strip().lower().startswith("on "):
            kept.pop()


def inbound_email_receive(*, recipient: str, sender: str, text: str, email_id: str) -> Message:
    """A customer's email reply joins their conversation (once per email id) and goes to a person."""
    match = _REPLY_TO.search(recipient or "")
    ticket = (
        Ticket.objects.filter(reply_token=match.group(1)).select_related("conversation").first()
        if match
        else None
    )
    if ticket is None:
        raise NotFound("No conversation has that reply address.")
    address = (sender or "").strip().lower()
    if "<" in address:
        address = address.split("<", 1)[1].split(">", 1)[0].strip()
    if address != ticket.email.lower():
        logger.warning("email reply for ticket #%s from another address was refused", ticket.number)
        raise Forbidden("Replies are accepted only from the address the customer left.")
    body = email_reply_text(text)
    if not body:
        raise BadRequest("The email holds no new text.")
    receipt = email_receive(conversation_id=ticket.conversation_id, text=body, email_id=email_id)
    if receipt.created:
        with transaction.atomic():
            conversation = conversation_lock(conversation_id=ticket.conversation_id)
            if conversation.status in (Status.ASSISTANT, Status.RESOLVED):
                # The assistant does not answer email: a person does.
                transition_locked(
                    conversation,
                    to=Status.WAITING,
                    event="handoff.requested",
                    trigger=HandoffTrigger(reason=HandoffReason.EMAIL_REPLY),
                )
            Ticket.objects.filter(id=ticket.id).update(status=Ticket.Status.OPEN)
    return receipt.message


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None
