"""Agents see what is remembered with consent in the case file ("Remembered with consent": the consent's
time and the facts); without consent, or after it is withdrawn, the case file has no such section."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.conversations import services as conversations
from apps.conversations.ownership import HandoffTrigger, conversation_handoff
from apps.handoff.casefile import case_file_build
from apps.handoff.models import Handoff
from apps.memory import services
from apps.memory.consent import CONSENT_VERSION
from apps.memory.models import MemoryConsent
from apps.memory.subjects import subject_of_session
from tests.fakes.openai_server import FakeOpenAI
from tests.memory.conftest import customer_session

pytestmark = pytest.mark.django_db


def hand_over(tenant: Any, session: Any, text: str) -> Handoff:
    receipt = conversations.message_receive(
        tenant=tenant, claims=session.claims, client_msg_id=uuid.uuid4().hex, text=text
    )
    services.memory_remember(receipt.message)  # its after-commit listener (this transaction never commits)
    change = conversation_handoff(
        conversation_id=session.claims.conversation_id, trigger=HandoffTrigger(reason="customer_request")
    )
    assert change is not None
    return Handoff.objects.get(conversation_id=session.claims.conversation_id)


def test_the_case_file_shows_what_is_remembered_with_the_consent_time(kb_tenant, fake_llm: FakeOpenAI):
    session = customer_session(kb_tenant, "cust-7")
    subject = subject_of_session(session.claims)
    services.memory_consent_answer(subject=subject, remember=True, version=CONSENT_VERSION)
    handoff = hand_over(kb_tenant, session, "I speak French. My phone is a Pixel 8. I want a person.")
    fake_llm.behaviour = "error_500"

    built = case_file_build(handoff_id=handoff.id)

    consent = MemoryConsent.objects.get()
    remembered = built.case_file["remembered"]
    assert remembered["consent_given_at"] == consent.given_at.isoformat()
    assert remembered["consent_version"] == CONSENT_VERSION
    assert [(f["kind"], f["text"]) for f in remembered["facts"]] == [
        ("preference", "I speak French"),
        ("fact", "My phone is a Pixel 8"),
    ]


def test_without_consent_or_after_withdrawing_the_case_file_has_no_memory(kb_tenant, fake_llm: FakeOpenAI):
    session = customer_session(kb_tenant, "cust-8")
    handoff = hand_over(kb_tenant, session, "I speak French. I want a person.")
    fake_llm.behaviour = "error_500"
    assert "remembered" not in case_file_build(handoff_id=handoff.id).case_file

    subject = subject_of_session(session.claims)
    services.memory_consent_answer(subject=subject, remember=True, version=CONSENT_VERSION)
    services.memory_consent_answer(subject=subject, remember=False, version=CONSENT_VERSION)
    assert "remembered" not in case_file_build(handoff_id=handoff.id).case_file
