"""A company's email settings: its support address (unique across companies) and whether the assistant
answers mail to it (off by default; never on without an address). Admins set them on the settings page or
through the API; a refused change changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import Tenant

pytestmark = pytest.mark.django_db


def _row(tenant: Tenant) -> tuple[str, bool]:
    fresh = Tenant.objects.get(id=tenant.id)
    return fresh.support_email, fresh.email_assistant_enabled


def test_the_assistant_does_not_answer_email_until_an_admin_switches_it_on(
    tenant_a: Any, tenant_b: Any, client_as: Any
) -> None:
    assert _row(tenant_a.tenant) == ("", False)
    admin = client_as(tenant_a.admin)
    url = f"/staff/{tenant_a.slug}/email/"

    page = admin.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert 'id="email_assistant_enabled" name="email_assistant_enabled"' in page
    assert "No: a person answers every email." in page

    admin.post(url, {"email_assistant_enabled": "on", "support_email": ""})
    assert _row(tenant_a.tenant) == ("", False)  # not without an address

    admin.post(url, {"email_assistant_enabled": "on", "support_email": " Help@A.example "})
    assert _row(tenant_a.tenant) == ("help@a.example", True)
    page = admin.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert "Yes: mail to the support address starts a conversation the assistant answers by email." in page

    # Another company cannot take the address; an agent cannot change anything.
    other = client_as(tenant_b.admin).post(
        f"/staff/{tenant_b.slug}/email/", {"support_email": "HELP@a.example", "email_assistant_enabled": "on"}
    )
    assert other.status_code == 302
    assert _row(tenant_b.tenant) == ("", False)
    agent = client_as(tenant_a.agent).post(url, {"support_email": ""})
    assert agent.status_code == 403
    assert _row(tenant_a.tenant) == ("help@a.example", True)

    admin.post(url, {"support_email": "help@a.example"})  # the box unticked
    assert _row(tenant_a.tenant) == ("help@a.example", False)


def test_the_api_sets_and_refuses_like_the_page(tenant_a: Any, tenant_b: Any, api_client_as: Any) -> None:
    api = api_client_as(tenant_a.admin)
    url = f"/api/v1/tenants/{tenant_a.slug}/"

    bad = api.patch(url, {"support_email": "not an address"}, format="json")
    off = api.patch(url, {"email_assistant_enabled": True}, format="json")
    ok = api.patch(url, {"support_email": "help@a.example", "email_assistant_enabled": True}, format="json")
    taken = api_client_as(tenant_b.admin).patch(
        f"/api/v1/tenants/{tenant_b.slug}/", {"support_email": "help@a.example"}, format="json"
    )

    assert bad.status_code == 400
    assert (off.status_code, off.json()["message"]) == (
        400,
        "Set the support address before letting the assistant answer email.",
    )
    assert ok.status_code == 200
    assert (ok.json()["support_email"], ok.json()["email_assistant_enabled"]) == ("help@a.example", True)
    assert (taken.status_code, taken.json()["message"]) == (
        409,
        "Another company already receives email at that address.",
    )
    assert _row(tenant_b.tenant) == ("", False)
