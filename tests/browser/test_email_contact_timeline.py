"""The console shows one verified customer across channels: from an email conversation, an agent opens the
customer's messages from the widget and by email in one list, each naming its channel (keyboard only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.conversations import services as conv
from apps.conversations.identity import IdentityClaim, identity_signature
from apps.handoff import email_path

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def console(browser: Browser, asgi_server: str) -> Iterator[Any]:
    contexts = []

    def open_as(user: Any, slug: str, query: str) -> Page:
        context = browser.new_context()
        contexts.append(context)
        client = Client()
        client.force_login(user)
        name = django_settings.SESSION_COOKIE_NAME
        context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": asgi_server}])
        page = context.new_page()
        page.goto(f"{asgi_server}/staff/{slug}/console/{query}")
        return page

    yield open_as
    for context in contexts:
        context.close()


def test_an_agent_reads_a_verified_customers_widget_and_email_messages_in_one_list(
    make_tenant: Any, make_user: Any, console: Any
) -> None:
    tenant = make_tenant(slug="nimbus-mail", name="Nimbus Telecom")
    accounts.tenant_email_configure(
        tenant=tenant, support_email="help@nimbus.example", email_assistant_enabled=True
    )
    alice = make_user(tenant, roles=[Role.AGENT], username="alice-mail", first_name="Alice")
    maria = accounts.contact_upsert(
        tenant=tenant, external_id="cust-7", name="Maria", email="maria@example.com"
    )
    issued = int(time.time())
    claim = IdentityClaim(
        external_id="cust-7",
        issued_at=issued,
        signature=identity_signature(secret=tenant.identity_secret, external_id="cust-7", issued_at=issued),
    )
    session = conv.widget_session_open(tenant=tenant, token=None, claim=claim)
    conv.message_receive(tenant=tenant, claims=session.claims, client_msg_id="w1", text="Is my bill late?")
    emailed = email_path.inbound_email_receive(
        recipient="help@nimbus.example",
        sender="Maria <maria@example.com>",
        text="Any news about my bill?",
        email_id="<m-1@mail.example.com>",
        dkim="pass",
    )
    assert emailed is not None
    assert emailed.conversation.contact_id == maria.id

    page = console(alice, tenant.slug, f"?conversation={emailed.conversation_id}")
    button = page.get_by_role("button", name="Show their messages from the widget, email and messaging")
    expect(button).to_be_visible(timeout=30_000)
    button.focus()
    page.keyboard.press("Enter")

    items = page.get_by_role("list", name="This customer in every channel").get_by_role("listitem")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Website widget")
    expect(items.nth(0)).to_contain_text("(another conversation)")
    expect(items.nth(1)).to_contain_text("Email")
    expect(items.nth(1)).not_to_contain_text("(another conversation)")
    expect(items.nth(0)).to_contain_text("Customer (another conversation): Is my bill late?")
    expect(items.nth(1)).to_contain_text("Customer: Any news about my bill?")
