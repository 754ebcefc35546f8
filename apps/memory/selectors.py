"""Reads of a customer's memory: the consent in force, the facts, what a prompt and a case file get."""

from __future__ import annotations

import uuid
from typing import Any

from apps.conversations.models import Conversation
from apps.core.errors import NotFound
from apps.guardrails.pii import RedactedText
from apps.memory.consent import CONSENT_VERSION, CONSENT_WORDING
from apps.memory.models import MemoryConsent, MemoryFact
from apps.memory.subjects import Subject, subject_of_conversation


def consent_current(*, subject: Subject) -> MemoryConsent | None:
    """The subject's latest answer (the one in force), or None when never asked."""
    return MemoryConsent.objects.filter(**subject.lookup()).order_by("-given_at", "-created_at").first()


def consent_state(consent: MemoryConsent | None) -> str:
    """The answer in force: unasked, granted, declined or withdrawn."""
    if consent is None:
        return "unasked"
    if not consent.granted:
        return "declined"
    return "withdrawn" if consent.withdrawn_at is not None else "granted"


def consent_active(*, subject: Subject) -> bool:
    consent = consent_current(subject=subject)
    return consent is not None and consent.active


def memory_facts(*, subject: Subject) -> list[MemoryFact]:
    """Oldest first."""
    return list(MemoryFact.objects.filter(**subject.lookup()).order_by("created_at", "id"))


def access_memory_fact(*, subject: Subject, fact_id: uuid.UUID | str) -> MemoryFact:
    """One of the subject's own facts; another visitor's, customer's or company's is not found."""
    try:
        key = uuid.UUID(str(fact_id))
    except ValueError:
        raise NotFound() from None
    fact = MemoryFact.objects.filter(id=key, **subject.lookup()).first()
    if fact is None:
        raise NotFound("That memory doesn't exist, or it was deleted already.")
    return fact


def memory_render(*, subject: Subject) -> dict[str, Any]:
    """What the widget's "What we remember" panel and consent card show."""
    consent = consent_current(subject=subject)
    facts = memory_facts(subject=subject) if consent is not None and consent.active else []
    return {
        "consent": {
            "state": consent_state(consent),
            "answered_at": consent.given_at.isoformat() if consent else None,
            "withdrawn_at": consent.withdrawn_at.isoformat() if consent and consent.withdrawn_at else None,
            "version": consent.version if consent else None,
        },
        # The question as it is asked now: the widget shows exactly this and answers with its version.
        "ask": {"version": CONSENT_VERSION, "wording": CONSENT_WORDING},
        "facts": [
            {"id": str(f.id), "kind": f.kind, "text": f.text, "created_at": f.created_at.isoformat()}
            for f in facts
        ],
    }


def memory_for_prompt(tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> list[RedactedText]:
    """What the customer told us in earlier sessions, oldest first (registered with conversations as the
    prompt's memory provider). Facts said in this conversation's current episode are left out: they are
    part of this session, not "before". Facts only exist while consent stands (withdrawing deletes them)."""
    conversation = (
        Conversation.objects.filter(id=conversation_id, tenant_id=tenant_id)
        .only("id", "tenant_id", "contact_id", "visitor_id", "episode_turn")
        .first()
    )
    if conversation is None:
        return []
    subject = subject_of_conversation(conversation)
    rows = (
        MemoryFact.objects.filter(**subject.lookup())
        .exclude(source_conversation_id=conversation.id, source_turn__gte=conversation.episode_turn)
        .order_by("created_at", "id")
        .values_list("text", flat=True)
    )
    # Stored only from Message.text_redacted (apps.memory.extraction): redacted when it was written.
    return [RedactedText.stored(text) for text in rows]


def memory_for_case_file(
    *, tenant_id: uuid.UUID, contact_id: uuid.UUID | None, visitor_id: uuid.UUID | None
) -> dict[str, Any] | None:
    """The case file's "Remembered with consent": the consent's time and the facts; None without consent."""
    if contact_id is None and visitor_id is None:
        return None
    subject = Subject(
        tenant_id=tenant_id, contact_id=contact_id, visitor_id=None if contact_id else visitor_id
    )
    consent = consent_current(subject=subject)
    if consent is None or not consent.active:
        return None
    return {
        "consent_given_at": consent.given_at.isoformat(),
        "consent_version": consent.version,
        "facts": [
            {"kind": f.kind, "text": f.text, "at": f.created_at.isoformat()}
            for f in memory_facts(subject=subject)
        ],
    }
