"""Tenant isolation and roles on the server-rendered staff pages, sign-in, and the Django admin."""

from __future__ import annotations

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.messages import get_messages
from django.test import Client

from apps.accounts import services
from apps.accounts.models import Contact, Membership, Role, Tenant, User
from apps.demo.services import demo_load, demo_password

pytestmark = pytest.mark.django_db

NOT_FOUND_TEXT = "That doesn&#x27;t exist, or you can&#x27;t see it."
FORBIDDEN_TEXT = "You don&#x27;t have permission to do that."


def _settings_url(slug: str) -> str:
    return f"/staff/{slug}/settings/"


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


# --- anonymous -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/staff/", "/staff/tenant-a/settings/", "/staff/no-such-tenant/settings/"])
def test_anonymous_pages_redirect_to_login(url, tenant_a) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_root_redirects_to_staff_home() -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/staff/"


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("origins/add/", {"origin": "https://evil.example"}),
        ("origins/remove/", {"origin": "https://a.example"}),
        ("secret/rotate/", {}),
    ],
)
def test_anonymous_posts_redirect_to_login_and_change_nothing(
    action, data, tenant_a, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = Client().post(f"/staff/tenant-a/{action}", data)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/staff/tenant-a/{action}"
    assert tenant_snapshot(tenant_a.tenant) == before


# --- another tenant ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "agent", "editor"])
def test_member_of_a_gets_404_on_b_settings(role, tenant_a, tenant_b, client_as) -> None:
    response = client_as(getattr(tenant_a, role)).get(_settings_url("tenant-b"))

    assert response.status_code == 404
    body = response.content.decode()
    assert NOT_FOUND_TEXT in body
    assert "not_found" in body
    for secret in (
        tenant_b.tenant.widget_key,
        tenant_b.tenant.identity_secret,
        "https://b.example",
        "Tenant B",
    ):
        assert secret not in body


def test_unknown_tenant_page_looks_like_a_foreign_one(tenant_a, client_admin_a) -> None:
    foreign = client_admin_a.get(_settings_url("tenant-b"))
    unknown = client_admin_a.get(_settings_url("no-such-tenant"))
    assert (foreign.status_code, unknown.status_code) == (404, 404)
    assert NOT_FOUND_TEXT in unknown.content.decode()


@pytest.mark.parametrize("role", ["admin", "agent", "editor"])
@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("origins/add/", {"origin": "https://evil.example"}),
        ("origins/remove/", {"origin": "https://b.example"}),
        ("secret/rotate/", {}),
    ],
)
def test_member_of_a_gets_404_on_b_posts_and_b_is_unchanged(
    role, action, data, tenant_a, tenant_b, client_as, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_b.tenant)

    response = client_as(getattr(tenant_a, role)).post(f"/staff/tenant-b/{action}", data)

    assert response.status_code == 404
    assert NOT_FOUND_TEXT in response.content.decode()
    assert tenant_snapshot(tenant_b.tenant) == before
    assert before.origins == ["https://b.example", "https://shop.b.example"]


def test_settings_page_refuses_post(tenant_a, client_admin_a, tenant_snapshot) -> None:
    before = tenant_snapshot(tenant_a.tenant)
    response = client_admin_a.post(_settings_url("tenant-a"), {"origin": "https://x.example"})
    assert response.status_code == 405
    assert tenant_snapshot(tenant_a.tenant) == before


# --- non-admins of their own tenant --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "editor"])
def test_non_admin_sees_settings_without_secret_or_admin_forms(role, tenant_a, client_as) -> None:
    response = client_as(getattr(tenant_a, role)).get(_settings_url("tenant-a"))

    assert response.status_code == 200
    assert response.context["tenant"] == tenant_a.tenant
    assert response.context["roles"] == [role]
    assert response.context["is_admin"] is False
    assert response.context["origins"] == ["https://a.example", "https://shop.a.example"]
    assert response.context["memberships"] == []
    body = response.content.decode()
    assert tenant_a.tenant.widget_key in body
    assert tenant_a.tenant.identity_secret not in body
    assert "Identity secret" not in body
    assert "/staff/tenant-a/origins/add/" not in body
    assert "/staff/tenant-a/origins/remove/" not in body
    assert "/staff/tenant-a/secret/rotate/" not in body
    assert "admin_a@staff.example" not in body


@pytest.mark.parametrize("role", ["agent", "editor"])
@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("origins/add/", {"origin": "https://new.example"}),
        ("origins/remove/", {"origin": "https://a.example"}),
        ("secret/rotate/", {}),
    ],
)
def test_non_admin_is_forbidden_admin_posts_and_nothing_changes(
    role, action, data, tenant_a, client_as, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = client_as(getattr(tenant_a, role)).post(f"/staff/tenant-a/{action}", data)

    assert response.status_code == 403
    body = response.content.decode()
    assert FORBIDDEN_TEXT in body
    assert "forbidden" in body
    assert tenant_snapshot(tenant_a.tenant) == before


# --- admins of their own tenant ------------------------------------------------------------------------


def test_admin_sees_secret_forms_and_people(tenant_a, tenant_b, client_admin_a) -> None:
    response = client_admin_a.get(_settings_url("tenant-a"))

    assert response.status_code == 200
    assert response.context["is_admin"] is True
    assert response.context["roles"] == ["admin"]
    assert [(m.user.username, m.role) for m in response.context["memberships"]] == [
        ("admin_a", "admin"),
        ("agent_a", "agent"),
        ("editor_a", "editor"),
    ]
    body = response.content.decode()
    assert tenant_a.tenant.identity_secret in body
    assert "/staff/tenant-a/origins/add/" in body
    assert "/staff/tenant-a/secret/rotate/" in body
    assert "admin_b" not in body
    assert tenant_b.tenant.identity_secret not in body


def test_admin_adds_an_origin_normalised(tenant_a, tenant_b, client_admin_a, tenant_snapshot) -> None:
    b_before = tenant_snapshot(tenant_b.tenant)

    response = client_admin_a.post("/staff/tenant-a/origins/add/", {"origin": "HTTPS://New.Example:443/"})

    assert response.status_code == 302
    assert response["Location"] == "/staff/tenant-a/settings/"
    assert _messages(response) == [("success", "https://new.example can now embed the widget.")]
    assert tenant_snapshot(tenant_a.tenant).origins == [
        "https://a.example",
        "https://new.example",
        "https://shop.a.example",
    ]
    assert tenant_snapshot(tenant_b.tenant) == b_before


def test_admin_add_invalid_origin_shows_error_and_changes_nothing(
    tenant_a, client_admin_a, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = client_admin_a.post(
        "/staff/tenant-a/origins/add/", {"origin": "https://x.example/path"}, follow=True
    )

    assert response.redirect_chain == [("/staff/tenant-a/settings/", 302)]
    assert response.status_code == 200
    assert (
        "&#x27;https://x.example/path&#x27; is not an origin: give only scheme://host[:port], without a path"
        in response.content.decode()
    )
    assert tenant_snapshot(tenant_a.tenant) == before


def test_admin_removes_an_origin(tenant_a, tenant_b, client_admin_a, tenant_snapshot) -> None:
    b_before = tenant_snapshot(tenant_b.tenant)

    response = client_admin_a.post("/staff/tenant-a/origins/remove/", {"origin": "https://a.example"})

    assert response.status_code == 302
    assert response["Location"] == "/staff/tenant-a/settings/"
    assert _messages(response) == [("success", "https://a.example can no longer embed the widget.")]
    assert tenant_snapshot(tenant_a.tenant).origins == ["https://shop.a.example"]
    assert tenant_snapshot(tenant_b.tenant) == b_before


def test_admin_cannot_remove_another_tenants_origin(
    tenant_a, tenant_b, client_admin_a, tenant_snapshot
) -> None:
    a_before = tenant_snapshot(tenant_a.tenant)
    b_before = tenant_snapshot(tenant_b.tenant)

    response = client_admin_a.post("/staff/tenant-a/origins/remove/", {"origin": "https://b.example"})

    assert response.status_code == 302
    assert _messages(response) == [("error", "https://b.example was not an allowed origin.")]
    assert tenant_snapshot(tenant_a.tenant) == a_before
    assert tenant_snapshot(tenant_b.tenant) == b_before


def test_admin_rotates_the_secret(tenant_a, tenant_b, client_admin_a, tenant_snapshot) -> None:
    a_before = tenant_snapshot(tenant_a.tenant)
    b_before = tenant_snapshot(tenant_b.tenant)

    response = client_admin_a.post("/staff/tenant-a/secret/rotate/")

    assert response.status_code == 302
    assert _messages(response) == [
        ("warning", "New identity secret issued: update your website's signing code now.")
    ]
    a_after = tenant_snapshot(tenant_a.tenant)
    assert a_after.identity_secret != a_before.identity_secret
    assert a_after.origins == a_before.origins
    assert tenant_snapshot(tenant_b.tenant) == b_before


@pytest.mark.parametrize("action", ["origins/add/", "origins/remove/", "secret/rotate/"])
def test_admin_actions_refuse_get(action, tenant_a, client_admin_a, tenant_snapshot) -> None:
    before = tenant_snapshot(tenant_a.tenant)
    response = client_admin_a.get(f"/staff/tenant-a/{action}", {"origin": "https://get.example"})
    assert response.status_code == 405
    assert tenant_snapshot(tenant_a.tenant) == before


# --- staff home ----------------------------------------------------------------------------------------


def test_staff_home_lists_only_the_users_tenants(tenant_a, tenant_b, client_agent_a) -> None:
    response = client_agent_a.get("/staff/")

    assert response.status_code == 200
    assert response.context["tenants"] == [{"tenant": tenant_a.tenant, "roles": ["agent"]}]
    body = response.content.decode()
    assert "Tenant A" in body
    assert "/staff/tenant-a/settings/" in body
    assert "Tenant B" not in body
    assert "tenant-b" not in body


def test_staff_home_lists_every_tenant_of_a_member_of_two(tenant_a, tenant_b, make_user, client_as) -> None:
    user = make_user(tenant_b.tenant, roles=[Role.AGENT, Role.EDITOR], username="both")
    services.membership_grant(tenant=tenant_a.tenant, user=user, role=Role.ADMIN)

    response = client_as(user).get("/staff/")

    assert response.status_code == 200
    assert response.context["tenants"] == [
        {"tenant": tenant_a.tenant, "roles": ["admin"]},
        {"tenant": tenant_b.tenant, "roles": ["agent", "editor"]},
    ]


def test_staff_home_empty_state_without_a_tenant(tenant_a, make_user, client_as) -> None:
    response = client_as(make_user(username="newcomer")).get("/staff/")

    assert response.status_code == 200
    assert response.context["tenants"] == []
    body = response.content.decode()
    assert "You're not part of a company yet" in body
    assert "Tenant A" not in body


# --- sign in -------------------------------------------------------------------------------------------


def test_demo_user_signs_in_and_lands_on_staff_home() -> None:
    demo_load(origins=["http://127.0.0.1:8000"])
    client = Client()

    response = client.post("/accounts/login/", {"username": "nina", "password": demo_password()})

    assert response.status_code == 302
    assert response["Location"] == "/staff/"
    assert client.session[SESSION_KEY] == str(User.objects.get(username="nina").pk)
    home = client.get("/staff/")
    assert home.status_code == 200
    assert home.context["tenants"] == [{"tenant": Tenant.objects.get(slug="nimbus"), "roles": ["admin"]}]
    assert "Nimbus Telecom" in home.content.decode()


def test_sign_in_honours_next() -> None:
    demo_load(origins=[])
    client = Client()
    response = client.post(
        "/accounts/login/?next=/staff/nimbus/settings/",
        {"username": "alice", "password": demo_password(), "next": "/staff/nimbus/settings/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/staff/nimbus/settings/"


@pytest.mark.parametrize(("username", "password"), [("nina", "wrong-password"), ("nobody", None)])
def test_wrong_credentials_show_the_error_and_do_not_sign_in(username, password) -> None:
    demo_load(origins=[])
    password = password or demo_password()
    client = Client()

    response = client.post("/accounts/login/", {"username": username, "password": password})

    assert response.status_code == 200
    assert "That username and password don't match. Try again." in response.content.decode()
    assert SESSION_KEY not in client.session
    assert client.get("/staff/").status_code == 302


def test_login_page_renders() -> None:
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Sign in" in body
    assert "don't match" not in body


# --- Django admin --------------------------------------------------------------------------------------


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser(username="operator", email="operator@example.com", password=None)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/accounts/tenant/",
        "/admin/accounts/membership/",
        "/admin/accounts/contact/",
        "/admin/accounts/user/",
        "/admin/accounts/tenant/add/",
    ],
)
def test_admin_pages_work_for_a_superuser(url, tenant_a, tenant_b, superuser, client_as) -> None:
    services.contact_upsert(tenant=tenant_a.tenant, external_id="cust-1", name="Maria", email="m@example.com")

    response = client_as(superuser).get(url)

    assert response.status_code == 200


def test_admin_changelists_show_every_tenants_rows_to_a_superuser(
    tenant_a, tenant_b, superuser, client_as
) -> None:
    services.contact_upsert(tenant=tenant_a.tenant, external_id="cust-a", name="Maria")
    services.contact_upsert(tenant=tenant_b.tenant, external_id="cust-b", name="Tom")
    client = client_as(superuser)

    tenants = client.get("/admin/accounts/tenant/")
    memberships = client.get("/admin/accounts/membership/")
    contacts = client.get("/admin/accounts/contact/")

    assert [t.slug for t in tenants.context["cl"].result_list] == ["tenant-a", "tenant-b"]
    assert memberships.context["cl"].result_count == Membership.objects.count() == 6
    assert sorted(c.external_id for c in contacts.context["cl"].result_list) == ["cust-a", "cust-b"]
    assert Contact.objects.count() == 2


def test_admin_tenant_change_page_works_for_a_superuser(tenant_a, superuser, client_as) -> None:
    response = client_as(superuser).get(f"/admin/accounts/tenant/{tenant_a.tenant.pk}/change/")
    assert response.status_code == 200
    body = response.content.decode()
    assert tenant_a.tenant.widget_key in body
    assert "https://a.example" in body


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/accounts/tenant/", "/admin/accounts/membership/", "/admin/accounts/user/"]
)
def test_admin_redirects_a_non_superuser(url, tenant_a, client_admin_a) -> None:
    response = client_admin_a.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


def test_admin_post_by_non_superuser_changes_nothing(tenant_a, client_admin_a, tenant_snapshot) -> None:
    before = tenant_snapshot(tenant_a.tenant)
    response = client_admin_a.post(
        f"/admin/accounts/tenant/{tenant_a.tenant.pk}/change/", {"name": "Via Admin", "slug": "tenant-a"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert tenant_snapshot(tenant_a.tenant) == before
