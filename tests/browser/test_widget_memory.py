"""Consented memory in the customer widget, in a real Chromium talking to the real desk (Daphne): the
question is asked once in a card that leaves typing free, a preference said after "Yes, remember" shows in
"What we remember" in the customer's next session (another browser, after the first chat was resolved),
and deleting it there deletes it on the desk. Screenshots: /tmp/memory-*.png.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from apps.accounts.models import Tenant
from apps.audit.models import AuditEvent
from apps.conversations.identity import identity_signature
from apps.conversations.models import Conversation
from apps.conversations.ownership import conversation_transition
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from apps.memory.consent import CONSENT_WORDING
from apps.memory.models import MemoryConsent, MemoryFact
from tests.browser.test_widget import REFUNDS, ask, open_widget, settle, shadow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PREFERENCE = "I prefer to be contacted by email."
REMEMBERED = "I prefer to be contacted by email"


@pytest.fixture
def company(make_tenant, host_site) -> Tenant:
    """Acme Mobile, whose website is `host_site`, with its refund policy published."""
    tenant = make_tenant(slug="acme", name="Acme Mobile", origins=[host_site.origin])
    version = knowledge.document_upload(
        tenant=tenant,
        actor=None,
        upload=knowledge.Upload(filename="refunds.md", data=REFUNDS),
        title="Refund policy",
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    knowledge.version_publish(version=ready, actor=None)
    return tenant


def account_page(asgi_server: str, host_site, tenant: Tenant, external_id: str) -> str:
    """The company's signed-in page: the widget with the customer's identity, signed now."""
    issued_at = int(time.time())
    signature = identity_signature(
        secret=tenant.identity_secret, external_id=external_id, issued_at=issued_at
    )
    return host_site.serve(
        "<!doctype html><html lang=en><title>Account</title><h1>Your account</h1>"
        f'<script src="{asgi_server}/widget.js" data-widget-key="{tenant.widget_key}" '
        f'data-external-id="{external_id}" data-issued-at="{issued_at}" data-signature="{signature}" '
        "async></script>"
    )


def test_consent_then_a_preference_is_shown_in_the_next_session_and_deleted_there(
    page: Page, browser, asgi_server, host_site, company
):
    page.set_viewport_size({"width": 1000, "height": 760})
    page.goto(account_page(asgi_server, host_site, company, "cust-31"))
    open_widget(page)

    # The question, word for word, in a card above the message box; typing is not blocked meanwhile.
    card = shadow(page, ".memory-ask")
    expect(card).to_be_visible(timeout=30_000)
    expect(card).to_contain_text(CONSENT_WORDING)
    expect(page.get_by_label("Your message")).to_be_editable()
    page.screenshot(path="/tmp/memory-consent-card.png")
    card.get_by_role("button", name="Yes, remember").click()
    expect(card).to_be_hidden()
    expect(shadow(page, "[role=status]").filter(has_text="We'll remember")).to_have_count(1)

    ask(page, PREFERENCE)
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    settle(page)
    consent = MemoryConsent.objects.get(tenant=company)
    assert consent.contact is not None
    assert (consent.granted, consent.wording, consent.contact.external_id) == (
        True,
        CONSENT_WORDING,
        "cust-31",
    )
    assert list(MemoryFact.objects.filter(tenant=company).values_list("text", flat=True)) == [REMEMBERED]

    # The chat is resolved; the customer comes back another day on another browser: a new session.
    first = Conversation.objects.get(tenant=company)
    conversation_transition(
        conversation_id=first.id,
        tenant_id=company.id,
        to=Conversation.Status.RESOLVED,
        event="conversation.resolved",
    )
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    later = context.new_page()
    try:
        later.goto(account_page(asgi_server, host_site, company, "cust-31"))
        open_widget(later)
        remember = later.get_by_role("button", name="What we remember")
        expect(remember).to_be_visible()
        # Answered once: not asked again.
        later.wait_for_timeout(500)
        expect(shadow(later, ".memory-ask")).to_be_hidden()
        remember.click()
        dialog = later.get_by_role("dialog", name="What we remember")
        expect(dialog).to_be_visible()
        fact = dialog.locator(".memory-fact")
        expect(fact).to_have_count(1, timeout=15_000)
        expect(fact.locator(".memory-text")).to_have_text(REMEMBERED)
        expect(fact.locator(".memory-date")).to_contain_text("Told us ")
        expect(dialog.get_by_role("button", name="Stop remembering")).to_be_visible()
        later.screenshot(path="/tmp/memory-panel.png")

        fact.get_by_role("button", name=f"Delete: {REMEMBERED}").click()
        expect(dialog.locator(".memory-fact")).to_have_count(0, timeout=15_000)
        expect(dialog.locator(".memory-empty")).to_be_visible()
        later.screenshot(path="/tmp/memory-panel-deleted.png")
        assert MemoryFact.objects.filter(tenant=company).count() == 0
        forget = AuditEvent.objects.get(tenant=company, action="memory.forget")
        assert (forget.actor_kind, forget.data) == (
            "customer",
            {"subject": "contact", "facts_deleted": 1, "scope": "one"},
        )

        # Escape closes the dialog, not the chat.
        later.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(later.get_by_role("dialog", name="Chat with Acme Mobile")).to_be_visible()
    finally:
        context.close()


def test_no_thanks_is_remembered_and_the_card_is_not_shown_again(page: Page, asgi_server, host_site, company):
    page.goto(account_page(asgi_server, host_site, company, "cust-32"))
    open_widget(page)
    card = shadow(page, ".memory-ask")
    expect(card).to_be_visible(timeout=30_000)
    card.get_by_role("button", name="No thanks").click()
    expect(card).to_be_hidden()
    ask(page, PREFERENCE)
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    settle(page)
    assert MemoryFact.objects.filter(tenant=company).count() == 0
    assert MemoryConsent.objects.get(tenant=company).granted is False

    page.goto(account_page(asgi_server, host_site, company, "cust-32"))
    expect(page.get_by_role("dialog", name="Chat with Acme Mobile")).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1000)
    expect(shadow(page, ".memory-ask")).to_be_hidden()
    page.get_by_role("button", name="What we remember").click()
    dialog = page.get_by_role("dialog", name="What we remember")
    expect(dialog).to_contain_text("We don't remember anything from your chats")
    expect(dialog.get_by_role("button", name="Remember what I tell you")).to_be_visible()
    page.screenshot(path="/tmp/memory-panel-off.png")
