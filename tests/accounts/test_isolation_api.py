"""Tenant isolation and roles over the REST API: nothing of another company is readable or writable."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.models import Role

pytestmark = pytest.mark.django_db

NOT_FOUND = {"code": "not_found", "message": "That doesn't exist, or you can't see it.", "retryable": False}
FORBIDDEN = {"code": "forbidden", "message": "You don't have permission to do that.", "retryable": False}
UNAUTHORIZED = {
    "code": "unauthorized",
    "message": "Authentication credentials were not provided.",
    "retryable": False,
}


def _url(slug: str, action: str = "") -> str:
    return f"/api/v1/tenants/{slug}/{action}"


def _call(client: APIClient, method: str, url: str, data: dict[str, object] | None = None):
    if method == "patch":
        return client.patch(url, data or {}, format="json")
    if method == "post":
        return client.post(url, data or {}, format="json")
    return client.get(url)


def _tenant_json(staff, roles: list[str], origins: list[str], name: str | None = None) -> dict[str, object]:
    return {
        "slug": staff.slug,
        "name": name or staff.tenant.name,
        "widget_key": staff.tenant.widget_key,
        "allowed_origins": origins,
        "roles": roles,
        "abstain_threshold": staff.tenant.abstain_threshold,
        "daily_token_budget": staff.tenant.daily_token_budget,
        "answer_style": staff.tenant.answer_style,
        "handoff_topics": staff.tenant.handoff_topics,
        "support_email": staff.tenant.support_email,
        "email_assistant_enabled": staff.tenant.email_assistant_enabled,
    }


# --- listing -------------------------------------------------------------------------------------------


def test_member_of_a_lists_only_a(tenant_a, tenant_b, api_client_as) -> None:
    for user, roles in [
        (tenant_a.admin, ["admin"]),
        (tenant_a.agent, ["agent"]),
        (tenant_a.editor, ["editor"]),
    ]:
        response = api_client_as(user).get("/api/v1/tenants/")
        assert response.status_code == 200
        assert response.json() == [
            _tenant_json(tenant_a, roles, ["https://a.example", "https://shop.a.example"])
        ]


def test_member_of_both_lists_both_with_their_own_roles(tenant_a, tenant_b, make_user, api_client_as) -> None:
    user = make_user(tenant_a.tenant, roles=[Role.AGENT, Role.EDITOR], username="both")
    services.membership_grant(tenant=tenant_b.tenant, user=user, role=Role.ADMIN)

    response = api_client_as(user).get("/api/v1/tenants/")

    assert response.status_code == 200
    assert response.json() == [
        _tenant_json(tenant_a, ["agent", "editor"], ["https://a.example", "https://shop.a.example"]),
        _tenant_json(tenant_b, ["admin"], ["https://b.example", "https://shop.b.example"]),
    ]


def test_user_without_a_tenant_lists_nothing(tenant_a, make_user, api_client_as) -> None:
    response = api_client_as(make_user(username="nobody")).get("/api/v1/tenants/")
    assert response.status_code == 200
    assert response.json() == []


def test_inactive_tenant_is_neither_listed_nor_readable(tenant_a, api_admin_a, tenant_snapshot) -> None:
    tenant_a.tenant.is_active = False
    tenant_a.tenant.save(update_fields=["is_active", "updated_at"])
    before = tenant_snapshot(tenant_a.tenant)

    assert api_admin_a.get("/api/v1/tenants/").json() == []
    response = api_admin_a.patch(_url("tenant-a"), {"name": "Revived"}, format="json")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert tenant_snapshot(tenant_a.tenant) == before


# --- another tenant: 404, never 403, and nothing changes -------------------------------------------


@pytest.mark.parametrize("role", ["admin", "agent", "editor"])
@pytest.mark.parametrize(
    ("method", "action", "data"),
    [
        ("get", "", None),
        ("patch", "", {"name": "Hijacked", "allowed_origins": ["https://evil.example"]}),
        ("patch", "", {"allowed_origins": []}),
        ("get", "members/", None),
        ("post", "identity-secret/rotate/", None),
    ],
)
def test_member_of_a_gets_404_on_tenant_b_and_b_is_unchanged(
    role, method, action, data, tenant_a, tenant_b, api_client_as, tenant_snapshot
) -> None:
    client = api_client_as(getattr(tenant_a, role))
    before = tenant_snapshot(tenant_b.tenant)

    response = _call(client, method, _url("tenant-b", action), data)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert tenant_snapshot(tenant_b.tenant) == before
    assert before.origins == ["https://b.example", "https://shop.b.example"]
    assert before.identity_secret == tenant_b.tenant.identity_secret


@pytest.mark.parametrize(
    ("method", "action"),
    [("get", ""), ("patch", ""), ("get", "members/"), ("post", "identity-secret/rotate/")],
)
def test_unknown_tenant_answers_exactly_like_a_foreign_one(method, action, tenant_a, api_admin_a) -> None:
    response = _call(api_admin_a, method, _url("no-such-tenant", action), {"name": "x"})
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


# --- roles inside one's own tenant ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "editor"])
def test_non_admin_reads_own_tenant(role, tenant_a, api_client_as) -> None:
    response = api_client_as(getattr(tenant_a, role)).get(_url("tenant-a"))
    assert response.status_code == 200
    assert response.json() == _tenant_json(tenant_a, [role], ["https://a.example", "https://shop.a.example"])
    assert "identity_secret" not in response.json()


@pytest.mark.parametrize("role", ["agent", "editor"])
@pytest.mark.parametrize(
    ("method", "action", "data"),
    [
        ("patch", "", {"name": "Renamed by agent"}),
        ("patch", "", {"allowed_origins": ["https://evil.example"]}),
        ("get", "members/", None),
        ("post", "identity-secret/rotate/", None),
    ],
)
def test_non_admin_of_a_is_forbidden_admin_actions_and_nothing_changes(
    role, method, action, data, tenant_a, api_client_as, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = _call(api_client_as(getattr(tenant_a, role)), method, _url("tenant-a", action), data)

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert tenant_snapshot(tenant_a.tenant) == before


def test_admin_reads_own_tenant(tenant_a, api_admin_a) -> None:
    response = api_admin_a.get(_url("tenant-a"))
    assert response.status_code == 200
    assert response.json() == _tenant_json(
        tenant_a, ["admin"], ["https://a.example", "https://shop.a.example"]
    )


def test_admin_renames_and_sets_origins(tenant_a, tenant_b, api_admin_a, tenant_snapshot) -> None:
    b_before = tenant_snapshot(tenant_b.tenant)
    secret_before = tenant_snapshot(tenant_a.tenant).identity_secret

    response = api_admin_a.patch(
        _url("tenant-a"),
        {
            "name": "Acme Renamed",
            "allowed_origins": ["HTTPS://Shop.A.example:443/", "https://new.example", "https://new.example/"],
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == _tenant_json(
        tenant_a, ["admin"], ["https://new.example", "https://shop.a.example"], name="Acme Renamed"
    )
    after = tenant_snapshot(tenant_a.tenant)
    assert after.name == "Acme Renamed"
    assert after.origins == ["https://new.example", "https://shop.a.example"]
    assert after.identity_secret == secret_before
    assert tenant_snapshot(tenant_b.tenant) == b_before


def test_admin_patch_with_only_a_name_keeps_origins(tenant_a, api_admin_a, tenant_snapshot) -> None:
    response = api_admin_a.patch(_url("tenant-a"), {"name": "Just A Name"}, format="json")
    assert response.status_code == 200
    assert response.json() == _tenant_json(
        tenant_a, ["admin"], ["https://a.example", "https://shop.a.example"], name="Just A Name"
    )
    assert tenant_snapshot(tenant_a.tenant).origins == ["https://a.example", "https://shop.a.example"]


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        (
            ["https://ok.example", "ftp://a.example"],
            "'ftp://a.example' is not an origin: use scheme://host[:port], e.g. https://shop.example.com",
        ),
        (
            ["https://a.example/admin"],
            "'https://a.example/admin' is not an origin: give only scheme://host[:port], without a path",
        ),
        (["https://a.example:99999"], "'https://a.example:99999' has an invalid port"),
    ],
)
def test_admin_bad_origin_is_400_and_nothing_changes(
    origins, message, tenant_a, api_admin_a, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = api_admin_a.patch(
        _url("tenant-a"), {"name": "Must Not Stick", "allowed_origins": origins}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"code": "bad_request", "message": message, "retryable": False}
    assert tenant_snapshot(tenant_a.tenant) == before


def test_admin_malformed_ipv6_origin_is_400_and_nothing_changes(
    tenant_a, api_admin_a, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = api_admin_a.patch(_url("tenant-a"), {"allowed_origins": ["http://[::1"]}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert tenant_snapshot(tenant_a.tenant) == before


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "   "}, {"name": ["This field may not be blank."]}),
        ({"name": "x" * 201}, {"name": ["Ensure this field has no more than 200 characters."]}),
        (
            {"allowed_origins": "https://a.example"},
            {"allowed_origins": ['Expected a list of items but got type "str".']},
        ),
    ],
)
def test_admin_invalid_fields_are_400_and_nothing_changes(
    data, fields, tenant_a, api_admin_a, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = api_admin_a.patch(_url("tenant-a"), data, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": "Some fields are invalid.",
        "retryable": False,
        "fields": fields,
    }
    assert tenant_snapshot(tenant_a.tenant) == before


def test_admin_lists_members_of_own_tenant_only(tenant_a, tenant_b, api_admin_a) -> None:
    response = api_admin_a.get(_url("tenant-a", "members/"))
    assert response.status_code == 200
    assert response.json() == [
        {"username": "admin_a", "email": "admin_a@staff.example", "role": "admin"},
        {"username": "agent_a", "email": "agent_a@staff.example", "role": "agent"},
        {"username": "editor_a", "email": "editor_a@staff.example", "role": "editor"},
    ]


def test_admin_rotates_own_secret_only(tenant_a, tenant_b, api_admin_a, tenant_snapshot) -> None:
    a_before = tenant_snapshot(tenant_a.tenant)
    b_before = tenant_snapshot(tenant_b.tenant)

    response = api_admin_a.post(_url("tenant-a", "identity-secret/rotate/"))

    assert response.status_code == 200
    a_after = tenant_snapshot(tenant_a.tenant)
    assert response.json() == {"identity_secret": a_after.identity_secret}
    assert a_after.identity_secret != a_before.identity_secret
    assert a_after.identity_secret.startswith("ids_")
    assert tenant_snapshot(tenant_b.tenant) == b_before


def test_method_not_allowed_uses_the_error_shape(tenant_a, api_admin_a, tenant_snapshot) -> None:
    before = tenant_snapshot(tenant_a.tenant)
    response = api_admin_a.delete(_url("tenant-a"))
    assert response.status_code == 405
    assert response.json() == {
        "code": "bad_request",
        "message": 'Method "DELETE" not allowed.',
        "retryable": False,
    }
    assert tenant_snapshot(tenant_a.tenant) == before


# --- anonymous -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/tenants/"),
        ("get", "/api/v1/tenants/tenant-a/"),
        ("patch", "/api/v1/tenants/tenant-a/"),
        ("get", "/api/v1/tenants/tenant-a/members/"),
        ("post", "/api/v1/tenants/tenant-a/identity-secret/rotate/"),
    ],
)
def test_anonymous_is_unauthorized_and_nothing_changes(
    method, url, tenant_a, api_anonymous, tenant_snapshot
) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    response = _call(api_anonymous, method, url, {"name": "Anon", "allowed_origins": []})

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert tenant_snapshot(tenant_a.tenant) == before


# --- schema --------------------------------------------------------------------------------------------


def test_openapi_schema_describes_the_tenant_api(api_anonymous) -> None:
    response = api_anonymous.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Helpdesk API"
    tenant_paths = {
        path: sorted(m for m in ops if m in {"get", "post", "put", "patch", "delete"})
        for path, ops in schema["paths"].items()
        # The knowledge and conversation APIs have their own tests.
        if path.startswith("/api/v1/tenants/")
        and "/kb/" not in path
        and "/conversations/" not in path
        and "/tools/" not in path
        and "/tool-runs/" not in path
        # The handoff app's paths (tests/handoff/test_openapi.py).
        and not any(
            f"/{part}/" in path
            for part in (
                "handoffs",
                "canned-responses",
                "presence",
                "tickets",
                "handoff-settings",
                "handoff-rules",
                "teams",
                "reports",
                "contacts",
            )
        )
        # The releases app's paths (tests/releases/test_openapi.py).
        and not any(f"/{part}/" in path for part in ("golden", "model-endpoints", "canaries"))
    }
    assert tenant_paths == {
        "/api/v1/tenants/": ["get"],
        "/api/v1/tenants/{slug}/": ["get", "patch"],
        "/api/v1/tenants/{slug}/members/": ["get"],
        "/api/v1/tenants/{slug}/identity-secret/rotate/": ["post"],
        "/api/v1/tenants/{slug}/audit/": ["get"],
        "/api/v1/tenants/{slug}/retention/": ["get", "put"],
        "/api/v1/tenants/{slug}/erasures/": ["post"],
        "/api/v1/tenants/{slug}/erasures/{erasure_id}/": ["get"],
    }
