"""One customer across channels: every message of a verified contact's conversations (widget, email,
messaging...) in one time line, each naming its channel (docs/architecture/channels.md, "Email").

A conversation joins a contact only through verified identity: the widget's signed identity claim, or an
email the provider authenticated from the address the company set on the contact
(apps.handoff.email_threads.email_contact_verified). An address a visitor merely typed never does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from apps.accounts.models import Contact, Tenant
from apps.conversations.channels.registry import channel_label
from apps.conversations.models import Message
from apps.core.errors import NotFound
from apps.handoff.selectors import staff_name

# The newest messages shown; older ones are in each conversation's own timeline.
TIMELINE_MAX = 500


@dataclass(frozen=True)
class ContactTimelineEntry:
    at: str
    message_id: str
    conversation_id: str
    channel: str
    channel_label: str
    role: str
    author: str
    text: str
    redacted: bool


def access_contact(*, tenant: Tenant, contact_id: uuid.UUID | str) -> Contact:
    """The company's own contact; another company's (or none) is not found."""
    try:
        key = uuid.UUID(str(contact_id))
    except ValueError:
        raise NotFound("There is no such customer.") from None
    contact = Contact.objects.for_tenant(tenant).filter(id=key).first()
    if contact is None:
        raise NotFound("There is no such customer.")
    return contact


def contact_timeline(
    *, tenant: Tenant, contact: Contact, original: bool = False, limit: int = TIMELINE_MAX
) -> list[ContactTimelineEntry]:
    """The contact's messages in every channel, oldest first (the newest `limit`). Customers' words are
    redacted unless `original` (the reader may see PII); replies in progress or superseded are left out."""
    if contact.tenant_id != tenant.id:
        raise NotFound("There is no such customer.")
    rows = list(
        Message.objects.filter(tenant=tenant, conversation__tenant=tenant, conversation__contact=contact)
        .exclude(status__in=[Message.Status.STREAMING, Message.Status.SUPERSEDED])
        .select_related("author")
        .order_by("-created_at", "-id")[:limit]
    )
    rows.reverse()
    return [_entry(message, original=original) for message in rows]


def _entry(message: Message, *, original: bool) -> ContactTimelineEntry:
    hidden = message.role == Message.Role.CUSTOMER and not original
    if message.role == Message.Role.AGENT:
        author = staff_name(message.author)
    elif message.role == Message.Role.ASSISTANT:
        author = "Assistant"
    else:
        author = "Customer"
    return ContactTimelineEntry(
        at=message.created_at.isoformat(),
        message_id=str(message.id),
        conversation_id=str(message.conversation_id),
        channel=message.via,
        channel_label=channel_label(message.via),
        role=message.role,
        author=author,
        text=message.text_redacted if hidden else message.text,
        redacted=hidden,
    )
