"""The assistant's per-company policy: answer threshold and daily token budget (admins only)."""

from __future__ import annotations

import pytest

from apps.accounts.models import Tenant

pytestmark = pytest.mark.django_db


def test_admins_set_the_threshold_and_budget_through_the_api(tenant_a, api_client_as):
    client = api_client_as(tenant_a.admin)
    url = f"/api/v1/tenants/{tenant_a.slug}/"
    body = client.patch(url, {"abstain_threshold": 0.55, "daily_token_budget": 50000}, format="json").json()
    assert (body["abstain_threshold"], body["daily_token_budget"]) == (0.55, 50000)
    body = client.patch(url, {"abstain_threshold": None}, format="json").json()
    assert body["abstain_threshold"] is None
    assert body["daily_token_budget"] == 50000
    bad = client.patch(url, {"abstain_threshold": 1.5}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")
    assert Tenant.objects.get(id=tenant_a.tenant.id).abstain_threshold is None


def test_agents_cannot_change_the_assistant_policy(tenant_a, api_client_as, client_as):
    denied = api_client_as(tenant_a.agent).patch(
        f"/api/v1/tenants/{tenant_a.slug}/", {"daily_token_budget": 1}, format="json"
    )
    assert denied.status_code == 403
    page = client_as(tenant_a.agent).post(
        f"/staff/{tenant_a.slug}/assistant/", {"abstain_threshold": "0.9", "daily_token_budget": "1"}
    )
    assert page.status_code == 403
    tenant = Tenant.objects.get(id=tenant_a.tenant.id)
    assert (tenant.abstain_threshold, tenant.daily_token_budget) == (None, 0)


def test_the_settings_page_shows_the_embed_snippet_and_saves_the_policy(tenant_a, client_as):
    client = client_as(tenant_a.admin)
    html = client.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert f'data-widget-key="{tenant_a.tenant.widget_key}"' in html
    assert "0.40 (the default)" in html
    client.post(
        f"/staff/{tenant_a.slug}/assistant/", {"abstain_threshold": "0.5", "daily_token_budget": "1000"}
    )
    tenant = Tenant.objects.get(id=tenant_a.tenant.id)
    assert (tenant.abstain_threshold, tenant.daily_token_budget) == (0.5, 1000)
    after = client.post(
        f"/staff/{tenant_a.slug}/assistant/",
        {"abstain_threshold": "lots", "daily_token_budget": "1"},
        follow=True,
    )
    assert "Use a number such as 0.40" in after.content.decode()
    assert Tenant.objects.get(id=tenant_a.tenant.id).daily_token_budget == 1000
