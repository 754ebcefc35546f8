"""Who is to be erased, and where their data is (docs/architecture/erasure.md, "Who is a customer").

A customer is named one of three ways within one company: a verified contact (the company's own id), an
anonymous widget visitor (the visitor id inside their session token), or a channel address (the phone
number of a messaging conversation, or an email address the customer wrote from or left for a reply).
`subject_scope` turns that into the ids every step works on: their conversations, the contact row, the
visitor ids and addresses those conversations carry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.utils.crypto import salted_hmac

from apps.accounts.models import Contact, Tenant
from apps.conversations.models import Conversation
from apps.core.errors import BadRequest, NotFound
from apps.erasure.models import SubjectKind
from apps.handoff.models import EmailThread, Ticket
from apps.voice.models import VoiceClip

HASH_SALT = "apps.erasure.subject"
MAX_VALUE_CHARS = 254


@dataclass(frozen=True)
class Subject:
    kind: str
    value: str


@dataclass
class Scope:
    """The ids the steps erase. Kept in the request (as JSON) until it finishes, so a resumed run erases
    exactly what the first one set out to, and the verification can also look for what appeared since."""

    conversations: list[uuid.UUID] = field(default_factory=list)
    contact: uuid.UUID | None = None
    external_id: str = ""
    visitors: list[uuid.UUID] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "conversations": [str(c) for c in self.conversations],
            "contact": str(self.contact) if self.contact else None,
            "external_id": self.external_id,
            "visitors": [str(v) for v in self.visitors],
            "addresses": list(self.addresses),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        return cls(
            conversations=[uuid.UUID(c) for c in data.get("conversations", [])],
            contact=uuid.UUID(data["contact"]) if data.get("contact") else None,
            external_id=str(data.get("external_id", "")),
            visitors=[uuid.UUID(v) for v in data.get("visitors", [])],
            addresses=[str(a) for a in data.get("addresses", [])],
        )

    def union(self, other: Scope) -> Scope:
        return Scope(
            conversations=_unique([*self.conversations, *other.conversations]),
            contact=self.contact or other.contact,
            external_id=self.external_id or other.external_id,
            visitors=_unique([*self.visitors, *other.visitors]),
            addresses=_unique([*self.addresses, *other.addresses]),
        )


def _unique(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def subject_clean(*, kind: str, value: str) -> Subject:
    """The subject in the one form its hash and its lookups use; `BadRequest` when it cannot be one."""
    value = (value or "").strip()
    if kind not in SubjectKind.values:
        raise BadRequest("Name the customer by contact, visitor or address.")
    if not value or len(value) > MAX_VALUE_CHARS:
        raise BadRequest("The customer's identifier is empty or too long.")
    if kind == SubjectKind.VISITOR:
        try:
            value = str(uuid.UUID(value))
        except ValueError:
            raise BadRequest("A visitor is named by their visitor id (a UUID).") from None
    elif kind == SubjectKind.ADDRESS and "@" in value:
        value = value.lower()
    return Subject(kind=kind, value=value)


def subject_hash(*, tenant_id: uuid.UUID, subject: Subject) -> str:
    """A keyed hash (the site's SECRET_KEY): equal for equal subjects of one company, and not reversible
    by someone who reads the table, even with a list of every phone number."""
    message = f"{tenant_id}:{subject.kind}:{subject.value}"
    return salted_hmac(HASH_SALT, message, algorithm="sha256").hexdigest()


def _contact(tenant: Tenant, subject: Subject) -> Contact | None:
    if subject.kind != SubjectKind.CONTACT:
        return None
    return Contact.objects.for_tenant(tenant).filter(external_id=subject.value).first()


def _conversations_q(tenant: Tenant, subject: Subject, contact: Contact | None) -> Q | None:
    if subject.kind == SubjectKind.CONTACT:
        return Q(contact=contact) if contact is not None else None
    if subject.kind == SubjectKind.VISITOR:
        return Q(visitor_id=uuid.UUID(subject.value))
    value = subject.value
    via_email = list(
        EmailThread.objects.for_tenant(tenant)
        .filter(address__iexact=value)
        .values_list("conversation_id", flat=True)
    ) + list(
        Ticket.objects.for_tenant(tenant)
        .filter(email__iexact=value)
        .values_list("conversation_id", flat=True)
    )
    return (
        Q(channel_address__iexact=value)
        | Q(channel_key__iexact=value)
        | Q(contact_email__iexact=value)
        | Q(id__in=via_email)
    )


def subject_exists(*, tenant: Tenant, subject: Subject) -> bool:
    """Whether the company holds anything of this customer (an unknown one is a 404, and nothing is made)."""
    contact = _contact(tenant, subject)
    if contact is not None:
        return True
    query = _conversations_q(tenant, subject, contact)
    if query is not None and Conversation.objects.for_tenant(tenant).filter(query).exists():
        return True
    if subject.kind == SubjectKind.VISITOR:
        return VoiceClip.objects.for_tenant(tenant).filter(visitor_id=uuid.UUID(subject.value)).exists()
    return False


def subject_scope(*, tenant: Tenant, subject: Subject) -> Scope:
    """Where the customer's data is now: read afresh, so the verification also finds what appeared after
    the request started (a new conversation of the same visitor)."""
    contact = _contact(tenant, subject)
    query = _conversations_q(tenant, subject, contact)
    rows = (
        list(
            Conversation.objects.for_tenant(tenant)
            .filter(query)
            .values_list("id", "visitor_id", "channel_address", "channel_key", "contact_email")
        )
        if query is not None
        else []
    )
    visitors = [row[1] for row in rows]
    addresses = [a for row in rows for a in row[2:] if a]
    if subject.kind == SubjectKind.VISITOR:
        visitors.append(uuid.UUID(subject.value))
    if subject.kind == SubjectKind.ADDRESS:
        addresses.append(subject.value)
    if contact is not None and contact.email:
        addresses.append(contact.email)
    return Scope(
        conversations=_unique([row[0] for row in rows]),
        contact=contact.id if contact is not None else None,
        external_id=subject.value if subject.kind == SubjectKind.CONTACT else "",
        visitors=_unique(visitors),
        addresses=_unique(addresses),
    )


def subject_for_conversation(*, tenant: Tenant, conversation_id: uuid.UUID | str) -> Subject:
    """The customer a conversation belongs to, as the console names them: its verified contact, else the
    channel address it is answered at, else its anonymous visitor."""
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError:
        raise NotFound() from None
    conversation = Conversation.objects.for_tenant(tenant).filter(id=key).select_related("contact").first()
    if conversation is None:
        raise NotFound()
    if conversation.contact is not None:
        return Subject(kind=SubjectKind.CONTACT, value=conversation.contact.external_id)
    if conversation.channel_address:
        return subject_clean(kind=SubjectKind.ADDRESS, value=conversation.channel_address)
    return Subject(kind=SubjectKind.VISITOR, value=str(conversation.visitor_id))
