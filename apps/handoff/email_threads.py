"""Email the assistant answers: mail to a company's support address starts a conversation on the email
channel, replies in the same thread continue it, and each answer (the assistant's or a person's) goes back
as one threaded email (docs/architecture/channels.md, "Email").

The inbound webhook (apps.handoff.email_path) authenticates the provider, drops auto-replies and cuts the
quoted history; here the thread is found or started inside the company the recipient address names, and
the customer's new words go through the channel entry point like every other channel's.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import make_msgid
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from apps.accounts.models import Contact, Tenant
from apps.conversations.channels.inbound import channel_message_receive
from apps.conversations.channels.outbound import delivery_text
from apps.conversations.channels.registry import EMAIL, ChannelSender
from apps.conversations.models import Conversation, Message
from apps.conversations.selectors import agent_display_name
from apps.core.errors import BadRequest, Conflict, Forbidden, NotFound
from apps.handoff.models import EmailThread, EmailThreadMessage
from apps.llm.routing import canary_assign

logger = logging.getLogger(__name__)

_RFC_ID = re.compile(r"<([^<>\s]{1,498})>")
# A reply names at most this many earlier emails in References; older ones are not needed to thread it.
REFERENCES_MAX = 10
SUBJECT_MAX = 300


@dataclass(frozen=True)
class ThreadEmail:
    """One inbound email, as the webhook understood it."""

    address: str  # the sender's address, lower-case
    email_id: str  # its Message-ID, without angle brackets
    body: str  # the new words, quotes and signature cut off
    subject: str = ""
    # In-Reply-To first, then References, newest first: the earlier emails this one answers.
    thread_ids: tuple[str, ...] = ()
    # The provider vouched for the sender: SPF or DKIM passed for the From domain.
    authenticated: bool = False


def rfc_message_id(raw: str) -> str:
    """A Message-ID as stored: without angle brackets and surrounding space."""
    found = _RFC_ID.search(raw or "")
    return found.group(1) if found else (raw or "").strip().strip("<>").strip()[:498]


def rfc_thread_ids(in_reply_to: str, references: str) -> tuple[str, ...]:
    """The earlier emails a reply names: In-Reply-To, then References from the newest."""
    named = _RFC_ID.findall(in_reply_to or "") + list(reversed(_RFC_ID.findall(references or "")))
    seen: dict[str, None] = {}
    for value in named:
        seen.setdefault(value, None)
    return tuple(seen)[: REFERENCES_MAX * 5]


def support_tenant(*, recipients: Iterable[str]) -> Tenant | None:
    """The active company whose support address is one of `recipients` (lower-case addresses)."""
    wanted = [r for r in recipients if r]
    if not wanted:
        return None
    # Lower(support_email) is what the unique constraint indexes.
    return (
        Tenant.objects.filter(is_active=True)
        .annotate(support_lower=Lower("support_email"))
        .filter(support_lower__in=wanted)
        .first()
    )


def email_thread_receive(*, tenant: Tenant, email: ThreadEmail) -> Message:
    """The customer's email joins its thread's conversation (found by In-Reply-To/References inside this
    company only), or starts one on the email channel; stored once per Message-ID. The assistant answers
    it like a widget message when it owns the conversation (the channel entry point queues the answer)."""
    if not email.body:
        raise BadRequest("The email holds no new text.")
    seen = (
        EmailThreadMessage.objects.for_tenant(tenant)
        .filter(rfc_message_id=email.email_id)
        .select_related("thread__conversation")
        .first()
    )
    if seen is not None:
        # Delivered before (the provider retries): the same answer, nothing new. Checked first, so a
        # redelivered first email does not start a second thread.
        _sender_check(thread=seen.thread, email=email)
        stored = (
            Message.objects.filter(id=seen.message_id, tenant=tenant).first()
            if seen.inbound and seen.message_id is not None
            else None
        )
        if stored is None:
            raise Conflict("Another email already has that Message-ID.")
        return stored
    thread = _thread_of(tenant=tenant, thread_ids=email.thread_ids)
    if thread is not None:
        _sender_check(thread=thread, email=email)
    try:
        with transaction.atomic():
            if thread is None:
                thread = _thread_start(tenant=tenant, email=email)
            conversation = thread.conversation
            receipt = channel_message_receive(
                tenant=tenant,
                channel=EMAIL,
                conversation=conversation,
                sender=ChannelSender(address=email.address, contact_id=conversation.contact_id),
                external_id=email.email_id,
                text=email.body,
            )
            EmailThreadMessage.objects.get_or_create(
                tenant=tenant,
                rfc_message_id=email.email_id,
                defaults={"thread": thread, "inbound": True, "message_id": receipt.message.id},
            )
    except IntegrityError:
        # The same first email delivered twice at once: the other delivery started the thread.
        existing = _stored(tenant=tenant, email=email)
        if existing is None:
            raise
        return existing
    return receipt.message


def _thread_of(*, tenant: Tenant, thread_ids: tuple[str, ...]) -> EmailThread | None:
    if not thread_ids:
        return None
    known = {
        row.rfc_message_id: row
        for row in EmailThreadMessage.objects.for_tenant(tenant)
        .filter(rfc_message_id__in=thread_ids)
        .select_related("thread__conversation")
    }
    for value in thread_ids:  # the email it answers directly wins over older ones
        if value in known:
            return known[value].thread
    return None


def _sender_check(*, thread: EmailThread, email: ThreadEmail) -> None:
    if thread.address != email.address:
        logger.warning("an email for thread of %s from another address was refused", thread.conversation_id)
        raise Forbidden("Replies are accepted only from the address that started the conversation.")
    if thread.conversation.contact_id is not None and not email.authenticated:
        # A verified customer's conversation may hold their account's data: a forged From must not read it.
        logger.warning(
            "an unauthenticated email for verified thread of %s was refused", thread.conversation_id
        )
        raise Forbidden("This conversation is a verified customer's: their email must pass SPF or DKIM.")


def _thread_start(*, tenant: Tenant, email: ThreadEmail) -> EmailThread:
    contact = email_contact_verified(tenant=tenant, address=email.address, authenticated=email.authenticated)
    endpoint_id, canary_id, arm = canary_assign(tenant_id=tenant.id)
    conversation = Conversation.objects.create(
        tenant=tenant,
        model_endpoint_id=endpoint_id,
        canary_id=canary_id,
        canary_arm=arm,
        channel=EMAIL,
        channel_address=email.address,
        contact=contact,
        contact_email=email.address,
    )
    return EmailThread.objects.create(
        tenant=tenant, conversation=conversation, address=email.address, subject=email.subject[:SUBJECT_MAX]
    )


def _stored(*, tenant: Tenant, email: ThreadEmail) -> Message | None:
    row = (
        EmailThreadMessage.objects.for_tenant(tenant)
        .filter(rfc_message_id=email.email_id, inbound=True)
        .first()
    )
    if row is None or row.message_id is None:
        return None
    return Message.objects.filter(id=row.message_id, tenant=tenant).first()


def email_contact_verified(*, tenant: Tenant, address: str, authenticated: bool) -> Contact | None:
    """The company's customer this email comes from, or None (an unverified sender).

    Linked only when both hold: the inbound provider vouched for the sender (SPF or DKIM passed; a
    payload without the verdict is unverified), and exactly one of the company's contacts has this
    address. A contact's address is set only by the company (its signed identity claim or its staff),
    never by what a widget visitor typed, so a typed address never joins two people's timelines."""
    if not authenticated or not address:
        return None
    matches = list(Contact.objects.for_tenant(tenant).filter(email__iexact=address)[:2])
    return matches[0] if len(matches) == 1 else None


# ---- answers going out ------------------------------------------------------------------------------------


def email_thread_reply_send(*, message_id: uuid.UUID | str) -> str:
    """Emails one answer (the assistant's or an agent's) to the thread's customer, at most once, threaded
    under the email it answers (In-Reply-To, References). Returns the email's Message-ID; an answer sent
    before returns the same id and sends nothing. NotFound when the message has no email thread."""
    message = (
        Message.objects.filter(id=message_id, role__in=[Message.Role.ASSISTANT, Message.Role.AGENT])
        .select_related("tenant", "author")
        .first()
    )
    thread = EmailThread.objects.filter(conversation_id=message.conversation_id).first() if message else None
    if message is None or thread is None:
        raise NotFound("That message has no email thread to answer.")
    tenant = message.tenant
    try:
        with transaction.atomic():
            record = EmailThreadMessage.objects.create(
                tenant=tenant,
                thread=thread,
                rfc_message_id=make_msgid(domain=settings.HANDOFF_REPLY_DOMAIN).strip("<>"),
                inbound=False,
                message_id=message.id,
            )
    except IntegrityError:
        record = EmailThreadMessage.objects.get(message_id=message.id, inbound=False)
        if record.sent_at is not None:
            return record.rfc_message_id  # a redelivered task sends nothing twice
    earlier = list(
        thread.emails.exclude(id=record.id)
        .filter(created_at__lte=record.created_at)
        .order_by("created_at")
        .values_list("rfc_message_id", "inbound")
    )
    answered = [rfc for rfc, inbound in earlier if inbound]
    references = [rfc for rfc, _ in earlier]
    references = references[:1] + references[1:][-(REFERENCES_MAX - 1) :]
    headers = {"Message-ID": f"<{record.rfc_message_id}>"}
    if answered:
        headers["In-Reply-To"] = f"<{answered[-1]}>"
    if references:
        headers["References"] = " ".join(f"<{rfc}>" for rfc in references)
    if message.role == Message.Role.ASSISTANT:
        # RFC 3834: an automatic answer, so the customer's own auto-responder does not answer it back.
        headers["Auto-Submitted"] = "auto-replied"
        signed = f"{tenant.name}'s automated assistant (ask for a person in your reply to reach our team)"
    else:
        signed = f"{agent_display_name(message.author)}, {tenant.name}"
    subject = thread.subject or "Your question"
    email = EmailMessage(
        subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
        body=f"{delivery_text(message)}\n\n— {signed}",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[thread.address],
        reply_to=[tenant.support_email] if tenant.support_email else None,
        headers=headers,
    )
    email.send(fail_silently=False)
    EmailThreadMessage.objects.filter(id=record.id).update(sent_at=timezone.now())
    logger.info("answer %s emailed in thread of %s", message.id, thread.conversation_id)
    return record.rfc_message_id
