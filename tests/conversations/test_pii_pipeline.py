"""PII in customer messages never reaches the LLM request, the logs, the stored prompt or the staff view
of someone without permission (CONTRACTS I5)."""

from __future__ import annotations

import logging

import pytest

from apps.accounts.models import Role
from apps.conversations.models import AssistantTrace, Message
from tests.conversations.conftest import (
    SUPPORTED_REFUND,
    aanswers_configure,
    asession_for,
    compose_requests,
    faithful_for,
    model_composes,
    widget_connect,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]

SECRETS = {
    "PERSON": "Margaret Thornbury",
    "EMAIL_ADDRESS": "margaret.thornbury@example.org",
    "PHONE_NUMBER": "+44 20 7946 0958",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN_CODE": "DE89 3704 0044 0532 0130 00",
}
MESSAGES = [
    f"Hi, I'm {SECRETS['PERSON']} and I want to know if roaming in the EU is free.",
    f"You can email me at {SECRETS['EMAIL_ADDRESS']} or call {SECRETS['PHONE_NUMBER']} about roaming.",
    f"Can I return a phone within 14 days for a refund? Refund it to my card {SECRETS['CREDIT_CARD']} or "
    f"to IBAN {SECRETS['IBAN_CODE']} please.",
]


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isalnum())


def _leaks(text: str) -> list[str]:
    flat = _digits(text)
    found = []
    for kind, value in SECRETS.items():
        if value.lower() in text.lower() or (kind != "PERSON" and _digits(value) in flat):
            found.append(kind)
    for part in SECRETS["PERSON"].split():
        if part.lower() in text.lower():
            found.append(f"PERSON:{part}")
    return found


async def test_no_pii_reaches_the_llm_the_logs_or_the_stored_prompt(kb_tenant, fake_llm, caplog):
    from channels.db import database_sync_to_async

    from apps.accounts.services import tenant_assistant_configure

    caplog.set_level(logging.DEBUG)
    await aanswers_configure(kb_tenant, style="compose")
    # Every message is answered (and so composed by the model), even the one that only leaves contact details.
    await database_sync_to_async(tenant_assistant_configure)(tenant=kb_tenant, abstain_threshold=0.1)
    model_composes(fake_llm, faithful_for)
    session = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=session.token)
    for i, text in enumerate(MESSAGES):
        await widget.send({"type": "message", "text": text, "client_msg_id": f"pii-{i}"})
        await widget.until(lambda f: f["type"] in ("assistant.completed", "assistant.failed"), timeout=30)
    await widget.close()

    bodies = [str(body) for _, _, body in fake_llm.requests if body is not None]
    composed = compose_requests(fake_llm)
    assert len(composed) == 3  # each message went to the model, redacted
    for body in bodies:
        assert _leaks(body) == []
    customers = [m async for m in Message.objects.filter(role="customer").order_by("created_at")]
    for message, request in zip(customers, composed, strict=True):
        assert message.text_redacted in request["messages"][-1]["content"]  # the redacted form reached it
    assert "<EMAIL_ADDRESS>" in "".join(bodies)
    replies = [m async for m in Message.objects.filter(role="assistant").order_by("created_at")]
    assert [m.status for m in replies] == ["complete"] * 3
    # Each was answered with the model's sentence shown after the quote: the model's answer was used.
    assert [m.text.rsplit("\n\n", 1)[-1] for m in replies] == [faithful_for(body) for body in composed]
    assert faithful_for(composed[2]) == SUPPORTED_REFUND
    log_text = "\n".join(r.getMessage() for r in caplog.records)
    assert _leaks(log_text) == []
    async for trace in AssistantTrace.objects.all():
        assert _leaks(str(trace.prompt)) == []
        assert _leaks(str(trace.retrieval)) == []
    assert [m.text for m in customers] == MESSAGES  # the customer's own words are kept for them
    for m in customers:
        assert _leaks(m.text_redacted) == []
    assert set().union(*[set(m.pii_types) for m in customers]) >= set(SECRETS)


def test_staff_see_redacted_text_unless_they_hold_the_pii_viewer_role(kb_tenant, make_user, api_client_as):
    from apps.conversations import services

    session = services.widget_session_open(tenant=kb_tenant, token=None, claim=None)
    services.message_receive(tenant=kb_tenant, claims=session.claims, client_msg_id="x", text=MESSAGES[1])
    url = f"/api/v1/tenants/{kb_tenant.slug}/conversations/{session.claims.conversation_id}/"
    agent = make_user(kb_tenant, roles=[Role.AGENT])
    viewer = make_user(kb_tenant, roles=[Role.AGENT, Role.PII_VIEWER])
    redacted = api_client_as(agent).get(url).json()
    assert redacted["showing_original_text"] is False
    assert _leaks(redacted["messages"][0]["text"]) == []
    assert "<EMAIL_ADDRESS>" in redacted["messages"][0]["text"]
    original = api_client_as(viewer).get(url).json()
    assert original["showing_original_text"] is True
    assert original["messages"][0]["text"] == MESSAGES[1]
    editor = make_user(kb_tenant, roles=[Role.EDITOR])
    assert api_client_as(editor).get(url).status_code == 403
