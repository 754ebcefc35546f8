"""Sensitive topics are company settings: the built-in registry, `sensitive_topic(text, enabled=...)`, and the
turn trigger following each company's choice (a company that sells software licences talks about lawsuits
all day; a phone company hands them to a person)."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.accounts import hooks, services
from apps.accounts.models import DEFAULT_HANDOFF_TOPICS, Tenant
from apps.conversations.models import Conversation, HandoffReason
from apps.conversations.ownership import HandoffTrigger
from apps.conversations.triggers import HANDOVER_TEXT, turn_trigger
from apps.guardrails.pii import RedactedText
from apps.guardrails.sentiment import SENSITIVE_TOPIC_KEYS, SENSITIVE_TOPICS, sensitive_topic
from apps.handoff.models import Handoff
from tests.conversations.conftest import (  # noqa: F401  (fixtures shared with the conversation tests)
    _fresh_realtime_state,
    anyio_backend,
    asession_for,
    fake_llm,
    kb_tenant,
    widget_connect,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.handoff.conftest import chat_start

LAWSUIT = "Our customer is threatening a lawsuit over the licence terms: what does the contract say?"
FRAUD = "There are unauthorized charges on my bill, I think someone is committing fraud."


def test_the_registry_names_every_built_in_topic_in_the_order_they_are_checked() -> None:
    assert [t.key for t in SENSITIVE_TOPICS] == ["bereavement", "fraud", "vulnerability", "legal"]
    assert frozenset(DEFAULT_HANDOFF_TOPICS) == SENSITIVE_TOPIC_KEYS
    assert all(t.label and t.description.endswith(".") for t in SENSITIVE_TOPICS)
    # What the company settings page offers (registered by the guardrails app at start-up).
    assert [(t.key, t.label, t.description) for t in hooks.handoff_topics()] == [
        (t.key, t.label, t.description) for t in SENSITIVE_TOPICS
    ]


@pytest.mark.parametrize(
    ("text", "enabled", "topic"),
    [
        (LAWSUIT, None, "legal"),
        (LAWSUIT, DEFAULT_HANDOFF_TOPICS, "legal"),
        (LAWSUIT, ["bereavement", "fraud", "vulnerability"], None),
        (LAWSUIT, [], None),
        (FRAUD, ["bereavement", "fraud", "vulnerability"], "fraud"),
        (FRAUD, ["legal"], None),
        # Two topics in one turn: the first enabled one in the registry's order names it.
        ("My husband passed away and I will sue you", None, "bereavement"),
        ("My husband passed away and I will sue you", ["legal"], "legal"),
        ("My husband passed away and I will sue you", ("legal", "bereavement"), "bereavement"),
        # A key no built-in topic has (a topic since retired) is ignored, not an error.
        (LAWSUIT, ["legal", "retired-topic"], "legal"),
        ("Is roaming free in Spain?", None, None),
    ],
)
def test_only_enabled_topics_are_detected(text: str, enabled: Any, topic: str | None) -> None:
    assert sensitive_topic(RedactedText.stored(text), enabled=enabled) == topic


@pytest.mark.django_db
def test_turn_trigger_follows_the_company_choice(make_tenant: Any) -> None:
    software = make_tenant(name="Licence Co")
    services.tenant_answers_configure(
        tenant=software, handoff_topics=["bereavement", "fraud", "vulnerability"]
    )
    phones = make_tenant(name="Phone Co")  # the defaults: every built-in topic
    assert phones.handoff_topics == list(DEFAULT_HANDOFF_TOPICS)

    def trigger(tenant: Tenant, text: str) -> HandoffTrigger | None:
        chat = chat_start(tenant, "Hello")
        return turn_trigger(conversation_id=chat.id, question=RedactedText.stored(text))

    assert trigger(software, LAWSUIT) is None
    assert trigger(phones, LAWSUIT) == HandoffTrigger(reason="sensitive", detail="legal", priority=1)
    # What the company left enabled still hands off, and so does everything that is not a topic.
    assert trigger(software, FRAUD) == HandoffTrigger(reason="sensitive", detail="fraud", priority=1)
    assert trigger(software, "I want to speak to a real person").reason == "customer_request"  # type: ignore[union-attr]
    angry = trigger(software, "This is the THIRD time I'm asking about the lawsuit!!! Useless and furious.")
    assert angry is not None
    assert angry.reason == "angry"
    # With every topic off, none hands off.
    services.tenant_answers_configure(tenant=phones, handoff_topics=[])
    assert trigger(phones, FRAUD) is None


FINAL = ("assistant.completed", "assistant.failed", "assistant.interrupted")


async def _ask(tenant: Tenant, text: str) -> list[dict[str, Any]]:
    session = await asession_for(tenant)
    widget, _ = await widget_connect(tenant, token=session.token)
    try:
        await widget.send({"type": "message", "text": text})
        await widget.until(lambda f: f["type"] in FINAL, timeout=40)
        while not await widget.ws.receive_nothing(timeout=1.0):
            await widget.recv()
        return widget.received
    finally:
        await widget.close()


def _outcome(tenant: Tenant) -> tuple[list[str], list[tuple[str, str]]]:
    statuses = list(Conversation.objects.filter(tenant=tenant).values_list("status", flat=True))
    handoffs = list(Handoff.objects.filter(tenant=tenant).values_list("reason", "detail"))
    return statuses, handoffs


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_company_that_turned_legal_off_gets_an_answer_to_a_lawsuit_question(
    kb_tenant: Tenant,  # noqa: F811
    fake_llm: FakeOpenAI,  # noqa: F811
    make_tenant: Any,
) -> None:
    fake_llm.reply_text = "Your contract's terms are in the policy [1]."
    await database_sync_to_async(services.tenant_answers_configure)(
        tenant=kb_tenant, handoff_topics=["bereavement", "fraud", "vulnerability"]
    )
    frames = await _ask(kb_tenant, LAWSUIT)
    completed = [f["message"]["text"] for f in frames if f["type"] == "assistant.completed"]
    assert len(completed) == 1
    assert completed[0] != HANDOVER_TEXT[HandoffReason.SENSITIVE]
    assert not any(f["type"] == "handoff.requested" for f in frames)
    assert await database_sync_to_async(_outcome)(kb_tenant) == (["assistant"], [])

    # The same question at a company with the defaults goes to a person, before any model sees it.
    requests_before = len(fake_llm.chat_requests)
    phones = await database_sync_to_async(make_tenant)(origins=["https://shop.example"])
    frames = await _ask(phones, LAWSUIT)
    completed = [f["message"]["text"] for f in frames if f["type"] == "assistant.completed"]
    assert completed == [HANDOVER_TEXT[HandoffReason.SENSITIVE]]
    assert len(fake_llm.chat_requests) == requests_before
    assert await database_sync_to_async(_outcome)(phones) == (["waiting"], [("sensitive", "legal")])
