"""The messaging provider's webhooks (apps/messaging/apis.py): signatures, the replay window, idempotency,
tenant isolation, rate limits and the error contract; and the outbound send to the fake provider."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import transaction

from apps.conversations.channels.outbound import delivery_attempt
from apps.conversations.models import Conversation, Delivery, Message
from apps.handoff import services as handoff
from apps.messaging import services
from apps.messaging.models import MessagingChannel
from tests.messaging.conftest import CUSTOMER, SECRET, channel_for

pytestmark = pytest.mark.django_db

UNAUTHORIZED_CODE = "unauthorized"


def _stored(tenant) -> tuple[int, int]:
    return Conversation.objects.filter(tenant=tenant).count(), Message.objects.filter(tenant=tenant).count()


def test_a_signed_message_opens_the_numbers_conversation_and_is_redacted(webhooks, sms_tenant, caplog):
    caplog.set_level(logging.INFO)
    response = webhooks.inbound("My email is maria.lopez@example.com. Is roaming free?", message_id="m-1")
    assert response.status_code == 200, response.content
    [message] = Message.objects.filter(tenant=sms_tenant)
    assert response.json() == {"message_id": str(message.id), "duplicate": False}
    conversation = message.conversation
    assert (conversation.channel, conversation.channel_key, conversation.channel_address) == (
        "messaging",
        CUSTOMER,
        CUSTOMER,
    )
    assert (message.role, message.via, message.external_id, message.turn) == (
        "customer",
        "messaging",
        "m-1",
        1,
    )
    assert message.text == "My email is maria.lopez@example.com. Is roaming free?"
    assert "maria.lopez@example.com" not in message.text_redacted
    assert "EMAIL_ADDRESS" in message.pii_types
    # The number and the words never reach the logs.
    assert CUSTOMER not in caplog.text
    assert "maria.lopez" not in caplog.text
    # The same number writes again: the same conversation, a new turn.
    again = webhooks.inbound("And in Norway?", message_id="m-2")
    assert again.status_code == 200
    assert Conversation.objects.filter(tenant=sms_tenant).count() == 1
    assert list(conversation.messages.order_by("turn").values_list("turn", "external_id")) == [
        (1, "m-1"),
        (2, "m-2"),
    ]
    # Another number is another conversation.
    assert webhooks.inbound("Hi", sender="+44 7700 900 456", message_id="m-3").status_code == 200
    assert sorted(Conversation.objects.filter(tenant=sms_tenant).values_list("channel_key", flat=True)) == [
        CUSTOMER,
        "+447700900456",
    ]


def test_a_forged_signature_is_refused_and_nothing_is_stored(webhooks, sms_tenant):
    forged = webhooks.inbound("Hello", secret="not-the-secret")
    tampered = webhooks.inbound("Hello", signature="0" * 64)
    garbage = webhooks.inbound("Hello", signature="sha256=nope")
    body, headers = webhooks.provider.signed(webhooks.provider.inbound_body(sender=CUSTOMER, text="Hello"))
    unsigned = webhooks.raw("inbound", body, {})
    # The body changed after signing (the attacker rewrote the text).
    altered = webhooks.raw("inbound", body.replace(b"Hello", b"Pwned"), headers)
    for response in (forged, tampered, garbage, unsigned, altered):
        assert response.status_code == 401
        assert response.json()["code"] == UNAUTHORIZED_CODE
        assert response.json()["retryable"] is False
    assert forged.json()["message"] == "The webhook signature does not match."
    assert _stored(sms_tenant) == (0, 0)


def test_a_replayed_request_outside_the_window_is_refused(webhooks, sms_tenant):
    old = int(time.time()) - 301
    response = webhooks.inbound("Hello", timestamp=old)
    assert response.status_code == 401
    assert (
        response.json()["message"]
        == "The webhook timestamp is outside the replay window; send a fresh request."
    )
    future = webhooks.inbound("Hello", timestamp=int(time.time()) + 400)
    assert future.status_code == 401
    assert _stored(sms_tenant) == (0, 0)
    # Inside the window it is taken.
    assert webhooks.inbound("Hello", timestamp=int(time.time()) - 200).status_code == 200


def test_a_duplicate_message_id_is_stored_once_and_answered_200(webhooks, sms_tenant):
    first = webhooks.inbound("Is roaming free?", message_id="dup-1")
    second = webhooks.inbound("Is roaming free?", message_id="dup-1")
    # A provider retrying with a fresh signature and timestamp is still the same message.
    third = webhooks.inbound("Is roaming free?", message_id="dup-1", timestamp=int(time.time()) - 5)
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert [r.json()["duplicate"] for r in (first, second, third)] == [False, True, True]
    assert first.json()["message_id"] == second.json()["message_id"] == third.json()["message_id"]
    assert _stored(sms_tenant) == (1, 1)
    conversation = Conversation.objects.get(tenant=sms_tenant)
    assert (conversation.turn, conversation.events.count()) == (1, 1)


def test_another_tenants_secret_or_slug_is_refused_and_nothing_leaks(
    webhooks, sms_tenant, make_tenant, provider
):
    other = make_tenant(name="Globex")
    channel_for(other, provider, secret="globex-secret")
    # Globex's secret on Nimbus's URL, and Nimbus's on Globex's: refused both ways.
    on_nimbus = webhooks.inbound("Hello", secret="globex-secret")
    body, headers = provider.signed(provider.inbound_body(sender=CUSTOMER, text="Hello"), secret=SECRET)
    on_globex = webhooks.raw("inbound", body, headers, slug=other.slug)
    # An unknown company and a company without the channel answer exactly as a bad signature does.
    no_such = webhooks.raw("inbound", body, headers, slug="no-such-company")
    bare = make_tenant(name="Initech")
    no_channel = webhooks.raw("inbound", body, headers, slug=bare.slug)
    responses = (on_nimbus, on_globex, no_such, no_channel)
    assert [r.status_code for r in responses] == [401, 401, 401, 401]
    assert len({r.content for r in responses}) == 1
    for tenant in (sms_tenant, other, bare):
        assert _stored(tenant) == (0, 0)
    # Signed right but addressed to another company's number: refused too.
    body, headers = provider.signed(
        {**provider.inbound_body(sender=CUSTOMER, text="Hi"), "to": "+15559990000"}
    )
    wrong_number = webhooks.raw("inbound", body, headers)
    assert wrong_number.status_code == 403
    assert wrong_number.json()["code"] == "forbidden"
    assert _stored(sms_tenant) == (0, 0)


def test_bad_bodies_get_a_sentence_and_lose_nothing(webhooks, sms_tenant, settings):
    body, headers = webhooks.provider.signed({"message_id": "x", "text": "no sender"})
    missing = webhooks.raw("inbound", body, headers)
    assert (missing.status_code, missing.json()["code"]) == (400, "bad_request")
    assert missing.json()["message"] == "The webhook needs message_id, from, to and text."
    not_a_number = webhooks.inbound("Hi", sender="alice")
    assert not_a_number.json()["message"] == "The sender is not a phone number in international format."
    empty = webhooks.inbound("   ")
    assert (empty.status_code, empty.json()["message"]) == (400, "The message is empty.")
    settings.WIDGET_MAX_MESSAGE_CHARS = 10
    too_long = webhooks.inbound("x" * 11)
    assert (too_long.status_code, too_long.json()["code"]) == (413, "message_too_long")
    assert _stored(sms_tenant) == (0, 0)


def test_one_number_flooding_is_rate_limited(webhooks, sms_tenant, settings):
    settings.MESSAGING_RATE_SENDER = 2
    assert [webhooks.inbound(f"Hi {n}").status_code for n in range(2)] == [200, 200]
    flooded = webhooks.inbound("Hi again")
    assert flooded.status_code == 429
    assert flooded.json()["code"] == "rate_limited"
    assert int(flooded["Retry-After"]) >= 1
    # Another number of the same company is not held back.
    assert webhooks.inbound("Hello", sender="+447700900999").status_code == 200
    assert Message.objects.filter(tenant=sms_tenant).count() == 3


def test_a_resolved_conversation_is_reopened_when_the_number_writes_again(webhooks, sms_tenant, make_user):
    from apps.accounts.models import Role

    webhooks.inbound("Hello", message_id="r-1")
    conversation = Conversation.objects.get(tenant=sms_tenant)
    agent = make_user(sms_tenant, roles=[Role.AGENT])
    handoff.conversation_take_over(tenant=sms_tenant, conversation_id=conversation.id, agent=agent)
    handoff.conversation_resolve(tenant=sms_tenant, conversation_id=conversation.id, actor=agent)
    assert webhooks.inbound("Me again", message_id="r-2").status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.episode) == ("assistant", 2)
    assert Conversation.objects.filter(tenant=sms_tenant).count() == 1
    assert conversation.events.filter(type="conversation.reopened").count() == 1


# ---- outbound and status callbacks -------------------------------------------------------------------------


def _agent_reply(tenant, make_user, text: str = "Hi, this is Alice."):
    from apps.accounts.models import Role

    conversation = Conversation.objects.get(tenant=tenant)
    agent = make_user(tenant, roles=[Role.AGENT], first_name="Alice")
    handoff.conversation_take_over(tenant=tenant, conversation_id=conversation.id, agent=agent)
    reply = handoff.agent_reply(
        tenant=tenant, conversation_id=conversation.id, agent=agent, text=text, client_msg_id="a-1"
    )
    return Delivery.objects.get(message=reply.message)


def test_an_agent_reply_is_posted_to_the_provider_and_its_status_callback_marks_it_delivered(
    webhooks, sms_tenant, make_user, make_tenant, provider
):
    webhooks.inbound("Hello")
    delivery = _agent_reply(sms_tenant, make_user)
    step = delivery_attempt(delivery_id=delivery.id)
    assert step.status == "sent"
    [sent] = provider.outbound
    assert {k: sent[k] for k in ("to", "from", "text", "client_ref")} == {
        "to": CUSTOMER,
        "from": provider.number,
        "text": "Hi, this is Alice.",
        "client_ref": str(delivery.id),
    }
    assert sent["headers"]["authorization"] == f"Bearer {provider.token}"
    assert sent["headers"]["idempotency-key"] == str(delivery.id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.provider_message_id, delivery.attempts) == (
        "sent",
        sent["message_id"],
        1,
    )
    # A redelivered task sends nothing twice.
    assert delivery_attempt(delivery_id=delivery.id).status == "sent"
    assert len(provider.outbound) == 1

    # A forged status, and another company's provider reporting on this id: nothing changes.
    assert webhooks.status(sent["message_id"], "delivered", secret="forged").status_code == 401
    other = make_tenant(name="Globex")
    channel_for(other, provider, secret="globex-secret")
    body, headers = provider.signed(
        {"message_id": sent["message_id"], "status": "delivered"}, secret="globex-secret"
    )
    elsewhere = webhooks.raw("status", body, headers, slug=other.slug)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "not_found")
    assert Delivery.objects.get(id=delivery.id).status == "sent"

    delivered = webhooks.status(sent["message_id"], "delivered")
    assert (delivered.status_code, delivered.json()) == (200, {"status": "delivered"})
    # A late failure report does not undo a delivery.
    assert webhooks.status(sent["message_id"], "failed").json() == {"status": "delivered"}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.delivered_at is not None) == ("delivered", True)
    bad = webhooks.status(sent["message_id"], "lost")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")


def test_a_failed_status_callback_keeps_a_reason_code_but_not_the_providers_words(
    webhooks, sms_tenant, make_user
):
    webhooks.inbound("Hello")
    delivery = _agent_reply(sms_tenant, make_user)
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    body, headers = webhooks.provider.signed(
        {"message_id": delivery.provider_message_id, "status": "failed", "error": f"unreachable {CUSTOMER}!"}
    )
    assert webhooks.raw("status", body, headers).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert CUSTOMER not in delivery.last_error
    assert delivery.last_error.startswith("The provider could not deliver it")


def test_a_provider_outage_is_retried_then_the_delivery_fails(
    webhooks, sms_tenant, make_user, provider, settings
):
    settings.CHANNEL_DELIVERY_MAX_ATTEMPTS = 3
    webhooks.inbound("Hello")
    delivery = _agent_reply(sms_tenant, make_user)
    provider.fail_next(3)
    steps = [delivery_attempt(delivery_id=delivery.id) for _ in range(3)]
    assert [s.status for s in steps] == ["queued", "queued", "failed"]
    assert steps[0].retry_in is not None
    assert steps[1].retry_in is not None
    assert steps[2].retry_in is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.last_error == "The provider did not take it (unavailable)."
    assert provider.outbound == []
    assert [status for status, _ in provider.rejected] == [503, 503, 503]


def test_a_provider_recovering_within_the_retries_gets_the_message_once(
    webhooks, sms_tenant, make_user, provider
):
    webhooks.inbound("Hello")
    delivery = _agent_reply(sms_tenant, make_user)
    provider.fail_next(1)
    assert [delivery_attempt(delivery_id=delivery.id).status for _ in range(2)] == ["queued", "sent"]
    assert [m["text"] for m in provider.outbound] == ["Hi, this is Alice."]


def test_outbound_to_a_host_off_the_allow_list_is_refused_without_a_request(
    webhooks, sms_tenant, make_user, provider
):
    webhooks.inbound("Hello")
    # Someone points the stored URL elsewhere behind the service's back: the wrapped client still refuses.
    MessagingChannel.objects.filter(tenant=sms_tenant).update(base_url="http://127.0.0.1:9/v1")
    delivery = _agent_reply(sms_tenant, make_user)
    step = delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert (step.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "The provider refused it (host_not_allowed)."
    assert provider.outbound == []
    assert provider.rejected == []


def test_configuring_a_provider_off_the_allow_list_is_refused(sms_tenant, settings):
    from apps.core.errors import BadRequest

    before = MessagingChannel.objects.get(tenant=sms_tenant)
    with pytest.raises(BadRequest) as refused:
        services.messaging_channel_configure(
            tenant=sms_tenant, enabled=True, base_url="https://sms.evil.example/v1", sender_id="+15550001111"
        )
    assert refused.value.message == "The provider's host is not on the messaging host allow-list."
    after = MessagingChannel.objects.get(tenant=sms_tenant)
    assert (after.base_url, after.updated_at) == (before.base_url, before.updated_at)
    settings.MESSAGING_ALLOWED_HOSTS = ["sms.provider.example"]
    with transaction.atomic():
        saved = services.messaging_channel_configure(
            tenant=sms_tenant,
            enabled=True,
            base_url="https://sms.provider.example/v1",
            sender_id="+1 555 000 1111",
        )
    assert (saved.base_url, saved.sender_id) == ("https://sms.provider.example/v1", "+15550001111")


def test_both_secrets_are_sealed_at_rest(sms_tenant, provider):
    channel = MessagingChannel.objects.get(tenant=sms_tenant)
    assert channel.inbound_secret.startswith("sealed:v1:")
    assert channel.auth_token.startswith("sealed:v1:")
    assert provider.secret not in channel.inbound_secret
    assert provider.token not in channel.auth_token


def test_staff_see_the_channel_and_the_number_masked_unless_they_may_see_pii(
    webhooks, sms_tenant, make_user, api_client_as, tenant_b
):
    from apps.accounts.models import Role

    webhooks.inbound("Hello")
    conversation = Conversation.objects.get(tenant=sms_tenant)
    agent = make_user(sms_tenant, roles=[Role.AGENT])
    admin = make_user(sms_tenant, roles=[Role.ADMIN])
    url = f"/api/v1/tenants/{sms_tenant.slug}/messaging/conversations/?ids={conversation.id},not-a-uuid"
    as_agent = api_client_as(agent).get(url).json()["conversations"]
    assert as_agent == [
        {
            "conversation_id": str(conversation.id),
            "channel": "messaging",
            "label": "SMS",
            "address": "+44 •••• ••23",
        }
    ]
    assert api_client_as(admin).get(url).json()["conversations"][0]["address"] == CUSTOMER
    # Another company's agent learns nothing, not even that the company exists.
    outsider = api_client_as(tenant_b.agent).get(url)
    assert outsider.status_code == 404
    own = api_client_as(tenant_b.agent).get(
        f"/api/v1/tenants/{tenant_b.slug}/messaging/conversations/?ids={conversation.id}"
    )
    assert own.json() == {"conversations": []}


def test_the_webhook_is_not_open_to_a_flood_of_forgeries_from_one_address(webhooks, settings, sms_tenant):
    settings.MESSAGING_RATE_IP = 3
    codes = [webhooks.inbound("Hi", secret="forged").status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    assert webhooks.inbound("Hi").status_code == 429
    assert _stored(sms_tenant) == (0, 0)


def test_signature_helpers_match_the_providers_contract():
    from apps.messaging.signing import phone_masked, phone_normalize, signature_compute
    from tests.fakes.messaging_provider import sign

    assert signature_compute(secret="s", timestamp="1", body=b"{}") == sign("s", "1", b"{}")
    assert phone_normalize("whatsapp:+44 (7700) 900-123") == CUSTOMER
    assert phone_normalize("0044 7700 900123") == CUSTOMER
    assert phone_normalize("07700900123") is None
    assert phone_masked(CUSTOMER) == "+44 •••• ••23"
