"""The agent console page (/staff/<slug>/console/): who gets it, and what it hands to console.js."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.accounts.models import Role

pytestmark = pytest.mark.django_db

NOT_FOUND_TEXT = "That doesn&#x27;t exist, or you can&#x27;t see it."
FORBIDDEN_TEXT = "You don&#x27;t have permission to do that."


def _console(slug: str) -> str:
    return f"/staff/{slug}/console/"


def _attr(body: str, name: str) -> str:
    match = re.search(rf'\s{name}="([^"]*)"', body)
    assert match is not None, name
    return match.group(1)


@pytest.mark.parametrize(("role", "admin"), [("agent", "false"), ("admin", "true")])
def test_the_console_renders_for_the_tenants_agents(role, admin, tenant_a, client_as) -> None:
    user = getattr(tenant_a, role)
    response = client_as(user).get(_console("tenant-a"))

    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["handoff/console.html", "base.html"]
    body = response.content.decode()
    assert "<title>Console · Tenant A</title>" in body
    assert _attr(body, "data-slug") == "tenant-a"
    assert _attr(body, "data-user-id") == str(user.id)
    assert _attr(body, "data-admin") == admin
    assert len(_attr(body, "data-csrf")) >= 32
    # The script and its styles, from our own static files; no inline script (a strict CSP holds).
    assert '<script type="module" src="/static/js/console.js"></script>' in body
    assert 'href="/static/css/console.css"' in body
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body) is None
    # Landmarks and the empty states the page starts with.
    for landmark in ('<nav class="console-inbox" aria-labelledby="inbox-h"', 'role="alert"', "<aside"):
        assert landmark in body
    assert "Nobody is waiting. New conversations appear here as soon as they need a person." in body
    for label in ("Your status", "Reply to the customer", "Private note", "Transfer to", "Canned response"):
        assert f">{label}</label>" in body


def test_an_editor_of_the_tenant_is_refused(tenant_a, client_editor_a) -> None:
    response = client_editor_a.get(_console("tenant-a"))

    assert response.status_code == 403
    body = response.content.decode()
    assert FORBIDDEN_TEXT in body
    assert "data-console" not in body


@pytest.mark.parametrize("role", ["admin", "agent", "editor"])
def test_another_tenants_staff_get_404(role, tenant_a, tenant_b, client_as) -> None:
    response = client_as(getattr(tenant_b, role)).get(_console("tenant-a"))

    assert response.status_code == 404
    body = response.content.decode()
    assert NOT_FOUND_TEXT in body
    assert "data-console" not in body
    assert "Tenant A" not in body


def test_an_unknown_tenant_is_404(tenant_a, client_agent_a) -> None:
    response = client_agent_a.get(_console("no-such-tenant"))

    assert response.status_code == 404
    assert "data-console" not in response.content.decode()


def test_someone_of_no_tenant_gets_404(tenant_a, make_user, client_as) -> None:
    stranger = make_user(None, username="stranger")

    response = client_as(stranger).get(_console("tenant-a"))

    assert response.status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(tenant_a) -> None:
    response = Client().get(_console("tenant-a"))

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/staff/tenant-a/console/"


def test_only_get_is_allowed(client_agent_a) -> None:
    response = client_agent_a.post(_console("tenant-a"))

    assert response.status_code == 405


def test_roles_reach_the_template(tenant_a, make_user, client_as) -> None:
    viewer = make_user(tenant_a.tenant, roles=[Role.AGENT, Role.PII_VIEWER], username="vera")

    response = client_as(viewer).get(_console("tenant-a"))

    assert response.status_code == 200
    assert response.context["roles"] == [Role.AGENT, Role.PII_VIEWER]
    assert response.context["is_admin"] is False
    assert response.context["tenant"] == tenant_a.tenant
