"""The demo phone (/demo/phone/, apps/demo/views.py): only on a development install; texts typed there go
through the signed inbound path, and the desk's answers arrive through the fake provider API it serves."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.conversations.models import Conversation, Message
from apps.demo.services import DEMO_SLUG
from apps.messaging import demo_phone
from apps.messaging.models import MessagingChannel

pytestmark = pytest.mark.django_db

PHONE = "+447700900123"


@pytest.fixture
def demo(make_tenant, settings):
    settings.DEBUG = True
    tenant = make_tenant(slug=DEMO_SLUG, name="Nimbus Telecom")
    demo_phone.demo_channel_load(tenant=tenant, site_url="http://127.0.0.1:8000")
    return tenant


def _post(client: Client, path: str, body: dict, **headers: str):
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def test_the_demo_phone_is_off_outside_debug(demo, settings):
    settings.DEBUG = False
    client = Client()
    assert client.get("/demo/phone/").status_code == 404
    refused = _post(client, "/demo/phone/send", {"phone": PHONE, "text": "Hi"})
    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert _post(client, "/demo/phone/provider/v1/messages", {}).status_code == 404
    assert Message.objects.filter(tenant=demo).count() == 0


def test_loading_the_demo_twice_keeps_its_secrets(demo):
    first = MessagingChannel.objects.get(tenant=demo)
    demo_phone.demo_channel_load(tenant=demo, site_url="http://127.0.0.1:8000")
    again = MessagingChannel.objects.get(tenant=demo)
    assert (again.inbound_secret, again.auth_token) == (first.inbound_secret, first.auth_token)
    assert (again.base_url, again.allowed_hosts) == (
        "http://127.0.0.1:8000/demo/phone/provider/v1",
        ["127.0.0.1:8000"],
    )


def test_a_text_from_the_demo_phone_reaches_the_desk_and_answers_come_back(demo):
    client = Client()
    page = client.get("/demo/phone/")
    assert page.status_code == 200
    assert b"demo-phone.js" in page.content
    assert b"Nimbus Telecom" in page.content
    sent = _post(
        client,
        "/demo/phone/send",
        {"phone": PHONE, "text": "Is roaming free?"},
        X_CSRFToken=client.cookies["csrftoken"].value,
    )
    assert sent.status_code == 200, sent.content
    conversation = Conversation.objects.get(tenant=demo)
    assert (conversation.channel, conversation.channel_address) == ("messaging", PHONE)
    assert list(conversation.messages.values_list("role", "text")) == [("customer", "Is roaming free?")]

    # The desk's delivery worker posts an answer to the provider API the demo serves.
    channel = MessagingChannel.objects.get(tenant=demo)
    from apps.core.sealing import unseal

    body = {"to": PHONE, "from": channel.sender_id, "text": "Yes, in the EU.", "client_ref": "d-1"}
    forged = _post(client, "/demo/phone/provider/v1/messages", body, Authorization="Bearer nope")
    assert forged.status_code == 401
    accepted = _post(
        client, "/demo/phone/provider/v1/messages", body, Authorization=f"Bearer {unseal(channel.auth_token)}"
    )
    assert accepted.status_code == 201
    shown = client.get("/demo/phone/messages", {"phone": PHONE}).json()["messages"]
    assert [(m["dir"], m["text"]) for m in shown] == [("in", "Is roaming free?"), ("out", "Yes, in the EU.")]
    empty = _post(
        client,
        "/demo/phone/send",
        {"phone": PHONE, "text": "  "},
        X_CSRFToken=client.cookies["csrftoken"].value,
    )
    assert (empty.status_code, empty.json()["message"]) == (400, "Type a message first.")
