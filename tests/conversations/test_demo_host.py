"""The demo company's website: the one-line embed, and on a development install a demo sign-in that vouches
for the demo's own customers as a company's server would."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.accounts.models import Tenant
from apps.conversations.identity import IdentityClaim, identity_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def nimbus(make_tenant) -> Tenant:
    return make_tenant(slug="nimbus", name="Nimbus Telecom")


def _identity(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-(external-id|issued-at|signature|name)="([^"]*)"', html))


def test_the_demo_site_embeds_the_widget_anonymously_by_default(nimbus, settings) -> None:
    settings.DEBUG = True
    html = Client().get("/demo/").content.decode()
    assert f'data-widget-key="{nimbus.widget_key}"' in html
    assert _identity(html) == {}
    assert 'href="?customer=cust-1001"' in html


def test_a_demo_customer_is_signed_in_with_a_signature_the_desk_accepts(nimbus, settings) -> None:
    settings.DEBUG = True
    html = Client().get("/demo/", {"customer": "cust-1002"}).content.decode()
    identity = _identity(html)
    assert (identity["external-id"], identity["name"]) == ("cust-1002", "Tom Becker")
    claim = IdentityClaim(
        external_id=identity["external-id"],
        issued_at=int(identity["issued-at"]),
        signature=identity["signature"],
        name=identity["name"],
    )
    # Signed with the name, so the desk stores it.
    check = identity_check(tenant=nimbus, claim=claim)
    assert (check.status, check.profile_signed) == ("verified", True)


@pytest.mark.parametrize(("debug", "customer"), [(True, "cust-9999"), (False, "cust-1001")])
def test_nobody_else_and_nobody_in_production_is_signed_in(nimbus, settings, debug, customer) -> None:
    settings.DEBUG = debug
    html = Client().get("/demo/", {"customer": customer}).content.decode()
    assert _identity(html) == {}
    assert ("?customer=" in html) is debug
