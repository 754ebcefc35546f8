"""The agent console in a real Chromium showing an SMS conversation that came in through the real messaging
webhook of a live desk (Daphne): the channel badge and the masked number in the queue and the header, the
customer's words escaped, and the delivery status of the agent's reply, updated live when the provider
reports it delivered."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import Browser, expect

from apps.accounts.models import Role
from apps.conversations.channels.outbound import delivery_attempt
from apps.conversations.models import Conversation, Delivery
from apps.handoff import services as handoff
from tests.fakes.messaging_provider import FakeMessagingProvider
from tests.messaging.conftest import CUSTOMER, channel_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MASKED = "+44 •••• ••23"
MARKUP = "My <b>bill</b> is wrong <img src=x>"


def test_the_console_shows_an_sms_conversation_its_number_and_its_delivery(
    browser: Browser, asgi_server: str, make_tenant, make_user
):
    with FakeMessagingProvider(token="t-browser", secret="s-browser") as provider:
        tenant = make_tenant(name="Acme Mobile")
        channel_for(tenant, provider)
        alice = make_user(tenant, roles=[Role.AGENT], first_name="Alice")
        # The provider posts a signed SMS to the live desk.
        answer = provider.send_inbound(asgi_server, tenant.slug, sender=CUSTOMER, text=MARKUP)
        assert answer.status == 200, answer
        conversation = Conversation.objects.get(tenant=tenant)
        handoff.conversation_take_over(tenant=tenant, conversation_id=conversation.id, agent=alice)
        reply = handoff.agent_reply(
            tenant=tenant,
            conversation_id=conversation.id,
            agent=alice,
            text="Let me check.",
            client_msg_id="b-1",
        )
        delivery = Delivery.objects.get(message=reply.message)
        assert delivery_attempt(delivery_id=delivery.id).status == "sent"

        context = browser.new_context()
        client = Client()
        client.force_login(alice)
        name = django_settings.SESSION_COOKIE_NAME
        context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": asgi_server}])
        page = context.new_page()
        page.goto(f"{asgi_server}/staff/{tenant.slug}/console/")
        expect(page.locator("[data-conn]")).to_have_text("Live", timeout=30_000)
        item = page.locator('[data-list="mine"] button.inbox-item')
        expect(item).to_have_count(1)
        expect(item.locator(".item-who")).to_have_text(MASKED)
        expect(item.locator('.badge[data-kind="channel"]')).to_have_text("SMS")
        item.click()
        expect(page.locator("[data-conv-title]")).to_have_text(f"Conversation with {MASKED} (SMS)")
        customer = page.locator('.tl-msg[data-role="customer"]')
        # Agents without the PII role read the redacted words; markup stays text either way.
        expect(customer.locator(".tl-text")).to_contain_text("<b>bill</b>")
        assert page.locator(".tl-text b").count() == 0
        status = page.locator('.tl-msg[data-role="agent"] .tl-delivery')
        expect(status).to_have_text("SMS: sent")
        # The provider reports it delivered: the console updates without a reload.
        sent = provider.outbound[0]
        assert (
            provider.send_status(
                asgi_server, tenant.slug, message_id=sent["message_id"], status="delivered"
            ).status
            == 200
        )
        expect(status).to_have_text("SMS: delivered", timeout=15_000)
        expect(status).to_have_attribute("data-status", re.compile("delivered"))
        context.close()
