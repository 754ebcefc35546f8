"""The staff pages in a real Chromium, served by Daphne: sign in, manage the widget's origins, and see
nothing of another company."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.accounts import services
from apps.accounts.models import AllowedOrigin, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def companies():
    a = services.tenant_create(slug="alpha", name="Alpha Mobile", origins=["https://alpha.example"])
    b = services.tenant_create(slug="bravo", name="Bravo Bank", origins=["https://bravo.example"])
    admin = services.user_create(username="ada", email="ada@alpha.example", password=PASSWORD)
    services.membership_grant(tenant=a, user=admin, role=Role.ADMIN)
    return a, b


def sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/staff/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/staff/$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_wrong_password_says_so(asgi_server, page, companies):
    sign_in(page, asgi_server, "ada", "not the password")
    expect(page.get_by_role("alert")).to_have_text("That username and password don't match. Try again.")


def test_admin_manages_origins_and_cannot_see_another_company(asgi_server, page, companies):
    alpha, bravo = companies
    sign_in(page, asgi_server, "ada", PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your companies")
    expect(page.get_by_role("link", name="Alpha Mobile")).to_be_visible()
    expect(page.get_by_text("Bravo Bank")).to_have_count(0)

    page.get_by_role("link", name="Alpha Mobile").click()
    expect(page.get_by_text(alpha.widget_key, exact=True)).to_be_visible()

    # Keyboard only: the origin field and its button are reachable and usable without a mouse.
    page.get_by_label("Origin").focus()
    page.keyboard.type("https://Shop.Example.com:443/")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("https://shop.example.com can now embed the widget.")
    expect(page.get_by_role("button", name="Remove https://shop.example.com")).to_be_visible()

    page.get_by_label("Origin").fill("ftp://files.example")
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("status")).to_contain_text("is not an origin")

    page.get_by_role("button", name="Remove https://alpha.example").click()
    expect(page.get_by_role("status")).to_have_text("https://alpha.example can no longer embed the widget.")
    assert sorted(AllowedOrigin.objects.for_tenant(alpha).values_list("origin", flat=True)) == [
        "https://shop.example.com"
    ]

    response = page.goto(f"{asgi_server}/staff/bravo/settings/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("That doesn't exist, or you can't see it.")
    expect(page.get_by_text(bravo.widget_key)).to_have_count(0)
    assert list(AllowedOrigin.objects.for_tenant(bravo).values_list("origin", flat=True)) == [
        "https://bravo.example"
    ]
    page.screenshot(path="/tmp/staff-404.png")
