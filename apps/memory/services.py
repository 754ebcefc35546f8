"""Writes to a customer's memory: their answer to the question, what is remembered from their messages,
and forgetting it (docs/architecture/memory.md).

Every change the customer makes is audited in the same transaction (actor kind "customer", ids and
counts only, never the words): "memory.consent" (an answer to the question), "memory.withdraw" (stop
remembering: the facts go with it) and "memory.forget" (one fact or all of them deleted).
"""

from __future__ import annotations

import logging
import uuid

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.trail import audit_record
from apps.conversations.models import Conversation, Message
from apps.core.errors import Conflict
from apps.guardrails.pii import RedactedText
from apps.memory import selectors
from apps.memory.consent import WORDINGS
from apps.memory.extraction import Extracted, facts_extract
from apps.memory.models import MemoryConsent, MemoryFact
from apps.memory.subjects import Subject, subject_of_conversation

logger = logging.getLogger(__name__)

# Per subject; the oldest go first. A handful of preferences is what helps; more is a profile.
MEMORY_FACTS_MAX = 20
CUSTOMER = AuditEvent.ActorKind.CUSTOMER


class ConsentWordingChanged(Conflict):
    default_message = "The question has changed since it was shown. Please read it again and answer."


def memory_consent_answer(*, subject: Subject, remember: bool, version: int) -> MemoryConsent | None:
    """The customer's answer, stored with the wording they saw. "Yes" when already remembering and "No"
    when not are no-ops (None returned for a no-op refusal); "No" while remembering withdraws the consent
    and deletes every fact."""
    wording = WORDINGS.get(version)
    if wording is None or version != max(WORDINGS):
        raise ConsentWordingChanged()
    with transaction.atomic():
        current = selectors.consent_current(subject=subject)
        if remember:
            if current is not None and current.active:
                return current
            consent = MemoryConsent.objects.create(
                **subject.fields(), granted=True, wording=wording, version=version, given_at=timezone.now()
            )
            _audit(subject, "memory.consent", consent, {"answer": "yes", "version": version})
            return consent
        if current is not None and current.active:
            return _withdraw(subject, current)
        if current is not None:
            return None  # declined or withdrawn already: asked once, answered
        consent = MemoryConsent.objects.create(
            **subject.fields(), granted=False, wording=wording, version=version, given_at=timezone.now()
        )
        _audit(subject, "memory.consent", consent, {"answer": "no", "version": version})
        return consent


def _withdraw(subject: Subject, consent: MemoryConsent) -> MemoryConsent:
    consent.withdrawn_at = timezone.now()
    consent.save(update_fields=["withdrawn_at", "updated_at"])
    deleted, _ = MemoryFact.objects.filter(**subject.lookup()).delete()
    _audit(subject, "memory.withdraw", consent, {"facts_deleted": deleted})
    return consent


def memory_fact_delete(*, subject: Subject, fact: MemoryFact) -> None:
    """The customer deletes one remembered fact (found with `selectors.access_memory_fact`)."""
    with transaction.atomic():
        deleted, _ = MemoryFact.objects.filter(id=fact.id, **subject.lookup()).delete()
        if deleted:
            _audit(subject, "memory.forget", fact, {"facts_deleted": deleted, "scope": "one"})


def memory_forget_all(*, subject: Subject) -> int:
    """Forget everything: every fact goes; the consent stays, so new ones are remembered again."""
    with transaction.atomic():
        deleted, _ = MemoryFact.objects.filter(**subject.lookup()).delete()
        if deleted:
            _audit(subject, "memory.forget", None, {"facts_deleted": deleted, "scope": "all"})
    return deleted


def memory_remember(message: Message) -> list[MemoryFact]:
    """What a customer's newly stored message says about them, remembered if they agreed (registered with
    conversations as a message-stored listener: runs after the message commits). Pure pattern matching
    first: the consent is read only when there is something to remember."""
    if message.role != Message.Role.CUSTOMER:
        return []
    found = facts_extract(RedactedText.stored(message.text_redacted))
    if not found:
        return []
    subject = subject_of_conversation(message.conversation)
    if not selectors.consent_active(subject=subject):
        return []
    stored: list[MemoryFact] = []
    with transaction.atomic():
        for item in found:
            fact = _fact_store(subject, item, message)
            if fact is not None:
                stored.append(fact)
        _cap(subject)
    return stored


def _fact_store(subject: Subject, item: Extracted, message: Message) -> MemoryFact | None:
    """Stores one statement: the same thing said again is kept once (the first time), a newer statement
    on the same slot replaces the older."""
    existing = MemoryFact.objects.filter(**subject.lookup(), key=item.key).first()
    if existing is not None:
        if existing.text.casefold() == item.text.casefold() or not item.slot:
            return None
        existing.delete()
    try:
        with transaction.atomic():
            return MemoryFact.objects.create(
                **subject.fields(),
                kind=item.kind,
                slot=item.slot,
                key=item.key,
                text=str(item.text),
                source_message_id=message.id,
                source_conversation_id=message.conversation_id,
                source_turn=message.turn,
            )
    except IntegrityError:
        return None  # the same statement stored concurrently from another message


def _cap(subject: Subject) -> None:
    overflow = list(
        MemoryFact.objects.filter(**subject.lookup())
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)[MEMORY_FACTS_MAX:]
    )
    if overflow:
        MemoryFact.objects.filter(id__in=overflow).delete()


def memory_erase(
    tenant_id: uuid.UUID, conversation_ids: list[uuid.UUID], contact_id: uuid.UUID | None
) -> int:
    """Erasure (registered in apps.core.erasure_registry): every fact and consent of the customer (by
    contact) and of the visitor ids of their conversations, and any fact quoted from those
    conversations, in the caller's transaction. Idempotent; returns the rows deleted. The audit rows of
    their answers stay: they hold ids and counts, never words."""
    # A verified conversation's visitor id is the browser session the customer used: a guest memory under
    # it is theirs too (what they agreed to before the company vouched for them).
    visitors = Conversation.objects.filter(tenant_id=tenant_id, id__in=conversation_ids).values_list(
        "visitor_id", flat=True
    )
    owned = Q(contact__isnull=True, visitor_id__in=visitors)
    if contact_id is not None:
        owned |= Q(contact_id=contact_id)
    facts, _ = (
        MemoryFact.objects.filter(tenant_id=tenant_id)
        .filter(owned | Q(source_conversation_id__in=conversation_ids))
        .delete()
    )
    consents, _ = MemoryConsent.objects.filter(tenant_id=tenant_id).filter(owned).delete()
    return facts + consents


def _audit(
    subject: Subject, action: str, target: MemoryConsent | MemoryFact | None, data: dict[str, object]
) -> None:
    audit_record(
        tenant_id=subject.tenant_id,
        action=action,
        actor_kind=CUSTOMER,
        target=target,
        target_type="" if target is not None else "MemorySubject",
        target_id="" if target is not None else str(subject.contact_id or subject.visitor_id),
        data={"subject": subject.kind, **data},
    )
