"""What an audit row's `data` may hold: secrets replaced, prose through the guardrails' PII redactor (the
one customers' messages go through, registered by the guardrails app at start), identifiers kept."""

from __future__ import annotations

import uuid

import pytest

from apps.audit import trail
from apps.audit.models import AuditEvent
from apps.audit.trail import audit_data_clean, audit_record, chain_verify
from apps.guardrails.pii import PIIUnavailable, pii_redact, pii_scan


@pytest.fixture(scope="module", autouse=True)
def _analyzer_loaded() -> None:
    pii_scan("load the analyzer once for this module")


def test_the_guardrails_app_registered_its_message_redactor():
    assert trail._redactor is pii_redact


def test_secrets_are_replaced_and_prose_is_redacted():
    conversation = uuid.uuid4()
    cleaned = audit_data_clean(
        {
            "api_key": "sk-live-1234567890",
            "identity_secret": "f00dfeed",
            "Authorization-Token": ["abc", "def"],
            "password": "",
            "reason": "My number is (415) 555-0132 and my email is john.smith@example.com",
            "conversation": conversation,
            "fields": ["name", "support_email"],
            "count": 3,
            "ratio": 0.25,
            "approved": True,
            "nested": {"client_secret": "x", "note": "write to john.smith@example.com"},
        }
    )
    assert cleaned == {
        "api_key": "[secret]",
        "identity_secret": "[secret]",
        "Authorization-Token": "[secret]",
        "password": "",  # empty: nothing to hide, and the row says the field was blank
        "reason": "My number is <PHONE_NUMBER> and my email is <EMAIL_ADDRESS>",
        "conversation": str(conversation),
        "fields": ["name", "support_email"],
        "count": 3,
        "ratio": 0.25,
        "approved": True,
        "nested": {"client_secret": "[secret]", "note": "write to <EMAIL_ADDRESS>"},
    }


def test_identifiers_are_kept_but_a_bare_email_or_number_is_not():
    assert audit_data_clean(
        {"action": "handoff.claim", "slug": "tenant-a", "at": "2026-12-07T02:00:00+00:00"}
    ) == {
        "action": "handoff.claim",
        "slug": "tenant-a",
        "at": "2026-12-07T02:00:00+00:00",
    }
    cleaned = audit_data_clean({"to": "john.smith@example.com", "phone": "+44 20 7946 0958"})
    assert cleaned["to"] == "<EMAIL_ADDRESS>"
    assert "7946" not in cleaned["phone"]


def test_long_prose_is_cut_before_it_is_stored():
    cleaned = audit_data_clean({"reason": "word " * 200})
    assert len(cleaned["reason"]) <= trail.TEXT_MAX
    assert cleaned["reason"].endswith("…")


def test_without_a_redactor_prose_is_withheld(monkeypatch):
    monkeypatch.setattr(trail, "_redactor", None)
    assert audit_data_clean({"reason": "call me on (415) 555-0132", "id": "abc-123"}) == {
        "reason": "[text withheld]",
        "id": "abc-123",
    }


def test_a_failing_redactor_withholds_the_text_and_the_action_is_still_recorded(monkeypatch, tenant_a):
    def unavailable(text: str) -> str:
        raise PIIUnavailable()

    monkeypatch.setattr(trail, "_redactor", unavailable)
    row = audit_record(
        tenant_id=tenant_a.tenant.pk, action="note.add", data={"reason": "email john.smith@example.com now"}
    )
    assert AuditEvent.objects.get(pk=row.pk).data == {"reason": "[text withheld]"}
    assert list(chain_verify(tenant_id=tenant_a.tenant.pk)) == []
