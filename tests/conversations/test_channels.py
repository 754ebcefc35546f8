"""The channel registry, the one inbound entry point and the outbound deliveries
(docs/architecture/channels.md), with a fake non-streaming channel registered by the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction

from apps.accounts.models import Tenant
from apps.conversations import services
from apps.conversations.channels import (
    ChannelIdentity,
    ChannelSender,
    ChannelType,
    DeliveryResult,
    address_only,
    channel_find,
    channel_get,
    channel_register,
    channel_unregister,
    channels_all,
    delivery_attempt,
    delivery_queue,
    delivery_status_record,
)
from apps.conversations.channels.answering import channel_turn_answer
from apps.conversations.channels.inbound import channel_message_receive
from apps.conversations.models import Conversation, ConversationEvent, Delivery, Message
from apps.core.errors import BadRequest, Forbidden, NotFound
from tests.conversations.conftest import answers_configure, session_for

FAKE = "fakesms"


@dataclass
class FakeSms(ChannelType):
    """A phone-style channel that records what it was asked to send and answers as scripted."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (delivery id, address, text)
    script: list[DeliveryResult | Exception] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    name = FAKE
    label = "Fake SMS"
    streams = False
    identity = ChannelIdentity(description="The phone number the conversation answers.", verify=address_only)
    external_id_scope = "tenant"

    def deliver(self, *, delivery: Delivery) -> DeliveryResult:
        with self.lock:
            outcome = self.script.pop(0) if self.script else DeliveryResult(status="sent")
            if isinstance(outcome, Exception):
                raise outcome
            if outcome.status != "failed":
                message = delivery.message
                self.sent.append((str(delivery.id), message.conversation.channel_address, message.text))
            return outcome


@pytest.fixture
def sms() -> Iterator[FakeSms]:
    channel = FakeSms()
    channel_register(channel)
    yield channel
    channel_unregister(FAKE)


def _receive(
    tenant: Tenant, *, number: str = "+3161234", external_id: str = "sms-1", text: str = "Hello", **kw: Any
):
    return channel_message_receive(
        tenant=tenant,
        channel=FAKE,
        sender=ChannelSender(address=number),
        conversation_key=number,
        external_id=external_id,
        text=text,
        **kw,
    )


# ---- the registry -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_registry_holds_the_built_in_channels_and_refuses_unknown_names():
    names = [c.name for c in channels_all()]
    assert names == sorted(names)
    assert {"widget", "cli", "email"} <= set(names)
    assert (channel_get("widget").streams, channel_get("cli").streams, channel_get("email").streams) == (
        True,
        True,
        False,
    )
    assert channel_get("widget").identity.description
    with pytest.raises(BadRequest) as refused:
        channel_get("pigeon")
    assert refused.value.message == "There is no channel called 'pigeon'."
    assert channel_find("pigeon") is None
    with pytest.raises(ValueError, match="A channel name is"):
        channel_register(type("Bad", (ChannelType,), {"name": "Not A Name"})())
    with pytest.raises(BadRequest):
        services.conversation_start(tenant=Tenant(), channel="pigeon")


def test_registering_a_name_again_replaces_the_type(sms):
    other = FakeSms()
    channel_register(other)
    assert channel_get(FAKE) is other
    channel_unregister(FAKE)
    assert channel_find(FAKE) is None


# ---- inbound ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inbound_is_stored_once_per_external_id_and_redacted(make_tenant, sms):
    tenant = make_tenant()
    first = _receive(tenant, text="My email is jane.doe@example.com, is roaming free?", answer=False)
    assert (first.created, first.owner) == (True, "assistant")
    again = _receive(tenant, text="something else", answer=False)
    assert (again.created, again.message.id, again.seq, again.owner) == (
        False,
        first.message.id,
        first.seq,
        "",
    )
    # The same provider id claimed by another number is refused: its receipt would show another's message.
    with pytest.raises(Forbidden):
        _receive(tenant, number="+3169999", text="x", answer=False)
    [message] = Message.objects.filter(tenant=tenant)
    assert (message.via, message.external_id, message.role) == (FAKE, "sms-1", "customer")
    assert "jane.doe@example.com" not in message.text_redacted
    assert ConversationEvent.objects.filter(message=message, type="message.created").count() == 1
    conversation = Conversation.objects.get(tenant=tenant)
    assert (
        conversation.channel,
        conversation.channel_key,
        conversation.channel_address,
        conversation.turn,
    ) == (
        FAKE,
        "+3161234",
        "+3161234",
        1,
    )
    second = _receive(tenant, external_id="sms-2", text="And outside the EU?", answer=False)
    assert (second.created, second.message.conversation_id, second.message.turn) == (True, conversation.id, 2)


@pytest.mark.django_db
def test_a_conversation_key_or_conversation_of_another_tenant_never_resolves(make_tenant, sms):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    in_a = _receive(tenant_a, text="Secret of A", answer=False)
    # Same number and same provider id at another company: its own conversation and its own message.
    in_b = _receive(tenant_b, text="Hello from B", answer=False)
    assert in_b.created
    assert in_b.message.conversation_id != in_a.message.conversation_id
    assert in_b.message.conversation.tenant_id == tenant_b.id
    conversation_a = in_a.message.conversation
    before = Message.objects.filter(conversation=conversation_a).count()
    with pytest.raises(NotFound):
        channel_message_receive(
            tenant=tenant_b,
            channel=FAKE,
            sender=ChannelSender(address="+3161234"),
            conversation=conversation_a,
            external_id="sms-9",
            text="let me in",
        )
    assert Message.objects.filter(conversation=conversation_a).count() == before
    assert Message.objects.filter(tenant=tenant_b).count() == 1


@pytest.mark.django_db
def test_a_sender_who_does_not_own_the_conversation_is_refused_and_nothing_is_stored(make_tenant, sms):
    tenant = make_tenant()
    first = _receive(tenant, answer=False)
    with pytest.raises(Forbidden) as refused:
        channel_message_receive(
            tenant=tenant,
            channel=FAKE,
            sender=ChannelSender(address="+449999"),
            conversation=first.message.conversation,
            external_id="sms-other",
            text="I am someone else",
        )
    assert refused.value.message == "This sender may not write in this conversation."
    assert Message.objects.filter(tenant=tenant).count() == 1
    with pytest.raises(BadRequest):
        _receive(tenant, external_id="", answer=False)
    with pytest.raises(BadRequest):
        channel_message_receive(
            tenant=tenant, channel=FAKE, sender=ChannelSender(address="+1"), external_id="e", text="no key"
        )


@pytest.mark.django_db
def test_the_widget_and_the_command_line_go_through_the_same_entry_point(make_tenant):
    tenant = make_tenant()
    session = session_for(tenant)
    receipt = services.message_receive(tenant=tenant, claims=session.claims, client_msg_id="c1", text="Hi")
    again = services.message_receive(tenant=tenant, claims=session.claims, client_msg_id="c1", text="Hi")
    assert (receipt.created, again.created, receipt.answer_queued) == (True, False, False)
    assert (receipt.message.via, receipt.message.client_msg_id, receipt.message.external_id) == (
        "widget",
        "c1",
        "",
    )
    conversation = services.cli_conversation_open(tenant=tenant, customer=None, conversation_id=None)
    cli = services.cli_message_receive(conversation=conversation, client_msg_id="k1", text="Hello")
    assert (cli.created, cli.message.via, cli.answer_queued) == (True, "cli", False)


# ---- outbound ---------------------------------------------------------------------------------------------


def _answer(conversation: Conversation, text: str) -> Message:
    """An assistant reply completed in the conversation, as the pipeline stores it."""
    message = services.reply_start(conversation_id=conversation.id, turn=conversation.turn)
    assert message is not None
    return services.reply_finish(
        message=message, outcome=services.ReplyOutcome(status="complete", text=text, text_redacted=text)
    )


@pytest.mark.django_db
def test_a_failing_delivery_is_retried_with_backoff_then_marked_failed(make_tenant, sms, settings):
    settings.CHANNEL_DELIVERY_MAX_ATTEMPTS = 3
    settings.CHANNEL_DELIVERY_BACKOFF_SECONDS = 2
    tenant = make_tenant()
    receipt = _receive(tenant, answer=False)
    conversation = Conversation.objects.get(id=receipt.message.conversation_id)
    reply = _answer(conversation, "Roaming in the EU is free.")
    [delivery] = Delivery.objects.filter(message=reply)
    assert (delivery.channel, delivery.status, delivery.attempts) == (FAKE, "queued", 0)
    sms.script = [OSError("connection refused"), DeliveryResult(status="failed", error="Provider busy.")]
    first = delivery_attempt(delivery_id=delivery.id)
    second = delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert (first.status, first.retry_in, second.status, second.retry_in) == ("queued", 2.0, "queued", 4.0)
    assert (delivery.attempts, delivery.last_error) == (2, "Provider busy.")
    assert delivery.next_attempt_at is not None
    sms.script = [DeliveryResult(status="failed", error="Provider busy again.")]
    third = delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert (third.status, third.retry_in) == ("failed", None)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "Provider busy again.")
    # A late duplicate of the task sends nothing.
    assert delivery_attempt(delivery_id=delivery.id).status == "failed"
    assert (sms.sent, Delivery.objects.get(id=delivery.id).attempts) == ([], 3)


@pytest.mark.django_db
def test_a_refusal_that_retrying_cannot_fix_fails_at_once(make_tenant, sms):
    tenant = make_tenant()
    receipt = _receive(tenant, answer=False)
    reply = _answer(Conversation.objects.get(id=receipt.message.conversation_id), "Yes.")
    sms.script = [DeliveryResult(status="failed", error="Unknown number.", retryable=False)]
    step = delivery_attempt(delivery_id=reply.deliveries.get().id)
    assert (step.status, step.retry_in) == ("failed", None)
    assert reply.deliveries.get().last_error == "Unknown number."


@pytest.mark.django_db
def test_a_delivery_is_sent_once_and_provider_callbacks_mark_it_delivered(
    make_tenant, sms, api_client_as, make_user
):
    from apps.accounts.models import Role

    tenant, other = make_tenant(), make_tenant()
    receipt = _receive(tenant, answer=False)
    conversation = Conversation.objects.get(id=receipt.message.conversation_id)
    reply = _answer(conversation, "Roaming in the EU is free.")
    with transaction.atomic():
        queued = delivery_queue(message=reply, conversation=conversation)
        assert queued is not None
        assert queued.id == reply.deliveries.get().id
    sms.script = [DeliveryResult(status="sent", provider_message_id="prov-1")]
    delivery_id = reply.deliveries.get().id
    assert delivery_attempt(delivery_id=delivery_id).status == "sent"
    assert delivery_attempt(delivery_id=delivery_id).status == "sent"  # a redelivered task
    assert sms.sent == [(str(delivery_id), "+3161234", "Roaming in the EU is free.")]
    assert (
        delivery_status_record(
            tenant_id=other.id, channel=FAKE, provider_message_id="prov-1", status="delivered"
        )
        is None
    )
    assert Delivery.objects.get(id=delivery_id).status == "sent"
    marked = delivery_status_record(
        tenant_id=tenant.id, channel=FAKE, provider_message_id="prov-1", status="delivered"
    )
    assert marked is not None
    assert (marked.status, marked.delivered_at is not None) == ("delivered", True)
    with pytest.raises(BadRequest):
        delivery_status_record(tenant_id=tenant.id, channel=FAKE, provider_message_id="prov-1", status="lost")

    agent = make_user(tenant, roles=[Role.AGENT])
    response = api_client_as(agent).get(
        f"/api/v1/tenants/{tenant.slug}/conversations/{conversation.id}/deliveries/"
    )
    assert response.status_code == 200
    [row] = response.json()["deliveries"]
    assert (response.json()["channel"], row["message_id"], row["status"], row["attempts"]) == (
        FAKE,
        str(reply.id),
        "delivered",
        1,
    )
    detail = api_client_as(agent).get(f"/api/v1/tenants/{tenant.slug}/conversations/{conversation.id}/")
    assert [d["status"] for d in detail.json()["deliveries"][str(reply.id)]] == ["delivered"]
    outsider = make_user(other, roles=[Role.AGENT])
    denied = api_client_as(outsider).get(
        f"/api/v1/tenants/{tenant.slug}/conversations/{conversation.id}/deliveries/"
    )
    assert denied.status_code in (403, 404)


@pytest.mark.django_db
def test_widget_replies_get_no_delivery_rows(make_tenant):
    tenant = make_tenant()
    session = session_for(tenant)
    services.message_receive(tenant=tenant, claims=session.claims, client_msg_id="c1", text="Hi")
    reply = _answer(Conversation.objects.get(tenant=tenant), "Hello!")
    assert (reply.via, reply.deliveries.count()) == ("widget", 0)


@pytest.mark.django_db
def test_an_agent_reply_goes_out_through_the_conversation_channel(make_tenant, make_user, sms):
    from apps.accounts.models import Role
    from apps.handoff import services as handoff

    tenant = make_tenant()
    agent = make_user(tenant, roles=[Role.AGENT], first_name="Alice")
    receipt = _receive(tenant, answer=False)
    conversation = receipt.message.conversation
    handoff.conversation_take_over(tenant=tenant, conversation_id=conversation.id, agent=agent)
    # The customer writes while a person has it: stored, no answer queued, no delivery.
    while_human = _receive(tenant, external_id="sms-2", text="Are you there?")
    assert (while_human.owner, while_human.answer_queued) == ("human", False)
    reply = handoff.agent_reply(
        tenant=tenant, conversation_id=conversation.id, agent=agent, text="Yes, I'm here.", client_msg_id="a1"
    )
    [delivery] = Delivery.objects.filter(message=reply.message)
    assert (reply.message.via, delivery.channel) == (FAKE, FAKE)
    assert delivery_attempt(delivery_id=delivery.id).status == "sent"
    assert [text for _, _, text in sms.sent] == ["Yes, I'm here."]


# ---- an answer without a socket, end to end ---------------------------------------------------------------


def _until(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.django_db(transaction=True)
def test_a_non_streaming_channel_is_answered_by_a_worker_and_delivered_once(kb_tenant, fake_llm, sms):
    from tests.conftest import celery_worker_in_process

    answers_configure(kb_tenant, style="quote")
    with celery_worker_in_process(queues=("celery",)):
        receipt = _receive(kb_tenant, text="Is roaming in the European Union free?")
        assert (receipt.created, receipt.answer_queued) == (True, True)
        delivery = _until(
            lambda: (
                Delivery.objects.filter(message__conversation_id=receipt.message.conversation_id)
                .exclude(status="queued")
                .first()
            )
        )
    reply = Message.objects.get(conversation_id=receipt.message.conversation_id, role="assistant")
    assert (reply.status, reply.via, reply.turn) == ("complete", FAKE, 1)
    assert "European Union" in reply.text
    assert (delivery.status, delivery.message_id, delivery.attempts) == ("sent", reply.id, 1)
    # One message per answer, the final text: no partial text was sent.
    assert sms.sent == [(str(delivery.id), "+3161234", reply.text)]
    # A duplicated answer task finds the turn answered.
    outcome = channel_turn_answer(tenant_id=kb_tenant.id, conversation_id=reply.conversation_id, turn=1)
    assert outcome == "skipped"
    assert Message.objects.filter(conversation_id=reply.conversation_id, role="assistant").count() == 1
    assert len(sms.sent) == 1


def test_a_plain_text_channel_names_the_sources_an_answer_cites():
    """An SMS or an email has no source links to open: the answer's [n] markers are followed by the
    sources' names, each once, and only those cited; agents' words go out as written."""
    from apps.conversations.channels import delivery_text

    section = "Roaming Policy > Zone 1 > Data"
    answer = Message(
        role=Message.Role.ASSISTANT,
        text="Roaming is free in Zone 1. [1] The limit is 60 EUR. [1]",
        citations=[
            {"n": 1, "title": "Roaming Policy", "section": section},
            {"n": 1, "title": "Roaming Policy", "section": section},
            {"n": 2, "title": "Fair Use Policy", "section": ""},  # not cited in the text
        ],
    )
    assert delivery_text(answer) == (
        "Roaming is free in Zone 1. [1] The limit is 60 EUR. [1]\n\nSources:\n[1] Roaming Policy > Data"
    )
    agent = Message(role=Message.Role.AGENT, text="Hi, Alice here. [1]", citations=[{"n": 1, "title": "X"}])
    assert delivery_text(agent) == "Hi, Alice here. [1]"
    assert delivery_text(Message(role=Message.Role.ASSISTANT, text="No sources.")) == "No sources."
