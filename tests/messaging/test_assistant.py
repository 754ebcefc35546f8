"""A messaging conversation end to end: a signed SMS in, the assistant's answer computed by a Celery
worker (this process, the `celery` queue) with the scripted model server, and exactly one message out to
the fake provider; a customer asking for a person, an agent claiming and replying through the staff API,
and that reply reaching the phone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.conversations.models import Conversation, Delivery, Message
from apps.handoff.models import Handoff
from tests.conftest import celery_worker_in_process
from tests.conversations.conftest import answers_configure
from tests.handoff.conftest import agent_online, open_all_day
from tests.messaging.conftest import CUSTOMER, Webhooks, channel_for

pytestmark = pytest.mark.django_db(transaction=True)


def _until(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def worker() -> Iterator[None]:
    from helpdesk.celery import app

    # Tasks queued by earlier tests without a worker (their rows rolled back) are not this test's.
    app.control.purge()
    with celery_worker_in_process(queues=("celery",)):
        yield


@pytest.fixture
def phone(kb_tenant, provider) -> Webhooks:
    channel_for(kb_tenant, provider)
    return Webhooks(client=Client(), provider=provider, slug=kb_tenant.slug)


def test_the_assistant_answers_an_sms_once_through_the_provider(kb_tenant, fake_llm, provider, phone, worker):
    answers_configure(kb_tenant, style="quote")
    response = phone.inbound("Is roaming in the European Union free?", message_id="sms-1")
    assert response.status_code == 200
    [sent] = provider.wait_for_outbound(1, timeout=60)
    reply = Message.objects.get(conversation__tenant=kb_tenant, role="assistant")
    assert (reply.status, reply.via, reply.turn) == ("complete", "messaging", 1)
    assert "European Union" in reply.text
    # One message per answer: the final text with its sources named (an SMS has no links), to the
    # customer's number, from the company's.
    assert reply.citations
    assert (sent["to"], sent["from"]) == (CUSTOMER, provider.number)
    assert sent["text"].startswith(reply.text + "\n\nSources:\n[1] ")
    assert reply.citations[0]["title"] in sent["text"]
    delivery = _until(lambda: Delivery.objects.filter(message=reply, status="sent").first())
    assert (delivery.provider_message_id, delivery.attempts, sent["client_ref"]) == (
        sent["message_id"],
        1,
        str(delivery.id),
    )
    # The provider retries its webhook: nothing new is stored or answered.
    assert (
        phone.inbound("Is roaming in the European Union free?", message_id="sms-1").json()["duplicate"]
        is True
    )
    time.sleep(1.5)
    assert len(provider.outbound) == 1
    assert Message.objects.filter(conversation__tenant=kb_tenant).count() == 2
    # The phone got it: the provider says so, and the delivery is marked.
    assert phone.status(sent["message_id"], "delivered").json() == {"status": "delivered"}
    assert Delivery.objects.get(id=delivery.id).status == "delivered"


def test_an_sms_customer_asking_for_a_person_gets_one_and_the_agents_reply_reaches_the_phone(
    kb_tenant, fake_llm, provider, phone, worker, make_user, api_client_as
):
    open_all_day(kb_tenant)
    alice = make_user(kb_tenant, roles=[Role.AGENT], first_name="Alice")
    agent_online(kb_tenant, alice)
    phone.inbound("I want to talk to a person, please.", message_id="sms-h1")
    conversation = _until(lambda: Conversation.objects.filter(tenant=kb_tenant, status="waiting").first())
    # The assistant's handover sentence goes out as one message.
    [handover] = provider.wait_for_outbound(1, timeout=60)
    assert "person" in handover["text"]
    handoff = Handoff.objects.get(conversation=conversation)
    staff = api_client_as(alice)
    base = f"/api/v1/tenants/{kb_tenant.slug}"
    assert staff.post(f"{base}/handoffs/{handoff.id}/claim/").status_code == 200
    reply = staff.post(
        f"{base}/conversations/{conversation.id}/replies/",
        {"text": "Hi, Alice here. How can I help?", "client_msg_id": "r-1"},
        format="json",
    )
    assert reply.status_code == 201, reply.content
    sent = provider.wait_for_outbound(2, timeout=30)
    assert (sent[1]["to"], sent[1]["text"]) == (CUSTOMER, "Hi, Alice here. How can I help?")
    # While Alice has it, the customer's next text goes to her: the assistant stays quiet.
    phone.inbound("My bill is wrong.", message_id="sms-h2")
    time.sleep(1.5)
    assert len(provider.outbound) == 2
    assert Message.objects.filter(conversation=conversation, role="assistant").count() == 1
    timeline = staff.get(f"{base}/conversations/{conversation.id}/timeline/").json()
    texts = [item["message"]["text"] for item in timeline["items"] if "message" in item]
    assert texts[-2:] == ["Hi, Alice here. How can I help?", "My bill is wrong."]
