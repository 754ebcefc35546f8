"""The audit trail page in a real Chromium: an admin opens it from the settings page, filters it with the
keyboard, checks the chain, and sees the rows; the page runs under the desk's CSP (no inline code)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.accounts import services
from apps.accounts.models import Role
from apps.audit.models import AuditEvent
from apps.audit.trail import audit_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def company():
    tenant = services.tenant_create(slug="alpha", name="Alpha Mobile", origins=["https://alpha.example"])
    admin = services.user_create(username="ada", email="ada@alpha.example", password=PASSWORD)
    agent = services.user_create(username="bob", email="bob@alpha.example", password=None)
    services.membership_grant(tenant=tenant, user=admin, role=Role.ADMIN)
    services.membership_grant(tenant=tenant, user=agent, role=Role.AGENT)
    audit_record(
        tenant_id=tenant.pk, action="handoff.claim", actor=agent, target_type="Handoff", target_id="h-1"
    )
    audit_record(tenant_id=tenant.pk, action="settings.update", actor=admin, data={"fields": ["name"]})
    audit_record(
        tenant_id=tenant.pk, action="guardrail.abstain", actor_kind="assistant", data={"score": 0.21}
    )
    audit_record(
        tenant_id=tenant.pk, action="handoff.claim", actor=admin, target_type="Handoff", target_id="h-2"
    )
    return tenant


def test_admin_filters_the_trail_and_verifies_the_chain(asgi_server, page, company):
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(f"{asgi_server}/staff/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Alpha Mobile").click()
    page.get_by_role("link", name="Audit trail").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    # Four rows here, after those of the company's creation (its role grants).
    total = AuditEvent.objects.filter(tenant=company).count()
    claim = AuditEvent.objects.get(tenant=company, action="handoff.claim", actor_label="bob")
    table = page.get_by_role("table", name=re.compile("^Audit rows"))
    expect(table.get_by_role("row")).to_have_count(total + 1)  # and the header

    # Keyboard only: choose an action, then submit the form with Enter from a text field.
    page.get_by_label("Action").select_option("handoff.claim")
    page.get_by_label("Staff username").focus()
    page.keyboard.type("bob")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"action=handoff\.claim&actor_kind=&actor=bob"))
    rows = page.get_by_role("table", name=re.compile("matching the filters")).get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("bob")
    expect(rows.nth(1)).to_contain_text("Handoff h-1")
    expect(rows.nth(1)).to_contain_text(f"#{claim.seq}")
    expect(page.get_by_role("link", name="CSV")).to_have_attribute("href", re.compile(r"format=csv"))

    page.get_by_role("button", name="Verify chain").click()
    expect(page.get_by_role("status")).to_contain_text(f"Chain intact. {total} rows checked")
    page.screenshot(path="/tmp/audit-verified.png", full_page=True)
    page.goto(f"{asgi_server}/staff/alpha/audit/?actor_kind=assistant")
    expect(page.get_by_role("table", name=re.compile("matching")).get_by_role("row")).to_have_count(2)
    expect(page.get_by_text("score: 0.21")).to_be_visible()
    page.screenshot(path="/tmp/audit-page.png", full_page=True)
    assert violations == []
