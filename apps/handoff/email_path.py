"""The email path: agents' replies to customers who left an address, those customers' email replies
(docs/architecture/handoff.md, "Nobody available, or out of hours"), and the inbound webhook's dispatch to
the assistant's email threads (apps.handoff.email_threads; docs/architecture/channels.md, "Email")."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from email.utils import getaddresses

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone
from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage as ParsedEmail

from apps.accounts.models import Tenant
from apps.conversations.models import Conversation, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger, conversation_lock, transition_locked
from apps.conversations.selectors import agent_display_name
from apps.conversations.services import email_receive
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.handoff.email_threads import (
    ThreadEmail,
    email_thread_receive,
    email_thread_reply_send,
    rfc_message_id,
    rfc_thread_ids,
    support_tenant,
)
from apps.handoff.models import EmailThread, SentEmail, Ticket

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
    if EmailThread.objects.filter(conversation_id=message.conversation_id).exists():
        return False  # the email channel's delivery sends it, threaded under the customer's email
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

# The languages whose reply headers ("On ... wrote:", "Am ... schrieb ...:", "Le ... a écrit :", Outlook's
# "From:/Sent:" block in each language), signatures and disclaimers mail-parser-reply recognises. A
# customer writes in any of them whatever the company's own language.
_REPLY_LANGUAGES = tuple(
    code
    for code in ("en", "de", "fr", "es", "it", "nl", "da", "sv", "pl", "cs", "ja", "ko", "zh")
    if code in MAIL_LANGUAGES
)
# The customer's new words come first; what follows this many characters is quoted history, and its
# regular expressions need not run over a forwarded 200 kB thread.
_PARSE_CHARS = 20_000


def email_reply_text(text: str) -> str:
    """The customer's new words in an email: quoted history (a reply header in any supported language,
    an Outlook header block, "-----Original Message-----", ">" quoting), signatures and mail disclaimers
    cut off. Empty when the email holds nothing new."""
    parsed = ParsedEmail(
        text=text[:_PARSE_CHARS], languages=list(_REPLY_LANGUAGES), keep_hyphen_lists=True
    ).read()
    if not parsed.replies or parsed.replies[0].headers:
        return ""  # it starts with a quoted email: nothing was written above it
    kept: list[str] = []
    for line in parsed.replies[0].body.split("\n"):
        # Quoting by ">" looks the same in every language; the parser leaves it to us.
        if line.startswith(">"):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def inbound_email_receive(
    *,
    recipient: str,
    sender: str,
    text: str,
    email_id: str,
    subject: str = "",
    in_reply_to: str = "",
    references: str = "",
    headers: Mapping[str, str] | None = None,
    spf: str = "",
    dkim: str = "",
) -> Message | None:
    """A customer's email, as the inbound provider's webhook delivers it (docs/architecture/channels.md,
    "Email"). A reply to a ticket's reply+<token>@ address joins that conversation and goes to a person; mail
    to a company's support address, when the company lets the assistant answer email, starts or continues
    a conversation on the email channel. None: an automatic email (an out-of-office, a bounce, a list, our
    own mail), ignored so two robots never answer each other."""
    address = email_address(sender)
    automatic = email_automatic(address=address, headers=headers or {})
    if automatic:
        logger.info("inbound email %s ignored: %s", _log_id(email_id), automatic)
        return None
    match = _REPLY_TO.search(recipient or "")
    if match:
        return _ticket_reply_receive(token=match.group(1), address=address, text=text, email_id=email_id)
    tenant = support_tenant(recipients=email_addresses(recipient))
    if tenant is None or not tenant.email_assistant_enabled:
        raise NotFound("No conversation has that reply address.")
    email = ThreadEmail(
        address=address,
        email_id=rfc_message_id(email_id),
        body=email_reply_text(text),
        subject=" ".join((subject or "").split()),
        thread_ids=rfc_thread_ids(in_reply_to, references),
        authenticated="pass" in ((spf or "").strip().lower(), (dkim or "").strip().lower()),
    )
    if not email.email_id:
        raise BadRequest("The email has no Message-ID.")
    return email_thread_receive(tenant=tenant, email=email)


def email_message_send(*, message_id: uuid.UUID | str) -> str:
    """Emails one answer in a conversation the customer reaches by email (the email channel's delivery):
    threaded in an assistant email thread, or to a ticket's address. Returns the email's Message-ID ("" for
    a ticket reply, which the ticket's reply address threads instead). Sent at most once per message."""
    if EmailThread.objects.filter(conversation__messages__id=_uuid(message_id)).exists():
        return email_thread_reply_send(message_id=message_id)
    if not ticket_reply_email(message_id=message_id):
        logger.info("message %s was emailed before, or has no ticket", message_id)
    return ""


def _ticket_reply_receive(*, token: str, address: str, text: str, email_id: str) -> Message:
    """A customer's email reply joins their conversation (once per email id) and goes to a person."""
    ticket = Ticket.objects.filter(reply_token=token).select_related("conversation").first()
    if ticket is None:
        raise NotFound("No conversation has that reply address.")
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
                # The assistant does not answer ticket replies: a person does.
                transition_locked(
                    conversation,
                    to=Status.WAITING,
                    event="handoff.requested",
                    trigger=HandoffTrigger(reason=HandoffReason.EMAIL_REPLY),
                )
            Ticket.objects.filter(id=ticket.id).update(status=Ticket.Status.OPEN)
    return receipt.message


def email_address(raw: str) -> str:
    """The bare address in "Name <address>", lower-case ("" when there is none)."""
    found = email_addresses(raw)
    return found[0] if found else ""


def email_addresses(raw: str) -> list[str]:
    return [addr.strip().lower() for _, addr in getaddresses([raw or ""]) if "@" in addr]


# Header values that mark an email no person wrote (RFC 3834 Auto-Submitted, the older Precedence, and the
# X- headers of mail programs that set neither).
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_ROBOT_SENDERS = ("mailer-daemon@", "postmaster@", "noreply@", "no-reply@", "donotreply@", "do-not-reply@")


def email_automatic(*, address: str, headers: Mapping[str, str]) -> str:
    """Why this email is not a person's (one short reason), or "" when it is."""
    lowered = {str(k).strip().lower(): str(v).strip().lower() for k, v in headers.items()}
    if lowered.get("auto-submitted", "no") not in ("", "no"):
        return "auto-submitted"
    if lowered.get("precedence", "") in _BULK_PRECEDENCE:
        return "precedence " + lowered["precedence"]
    if lowered.get("x-autoreply") or lowered.get("x-autorespond") or lowered.get("x-autogenerated"):
        return "an auto-reply header"
    if not address:
        return "no sender address"
    if address.startswith(_ROBOT_SENDERS):
        return "a robot's address"
    own = {email_address(settings.DEFAULT_FROM_EMAIL)}
    if address in own or address.endswith("@" + settings.HANDOFF_REPLY_DOMAIN.lower()):
        return "our own mail"
    if Tenant.objects.filter(support_email__iexact=address).exists():
        return "our own mail"
    return ""


def _log_id(email_id: str) -> str:
    """A Message-ID for the log, without the sender's domain (it may name the customer's employer)."""
    return (email_id or "").strip().strip("<>").split("@", 1)[0][:40]


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None
