"""The accounts services: origin normalisation, tenant creation and configuration, secrets, roles."""

from __future__ import annotations

import pytest

from apps.accounts import services
from apps.accounts.models import AllowedOrigin, Membership, Role, Tenant, User
from apps.core.errors import BadRequest, Conflict

# --- normalize_origin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://shop.example.com", "https://shop.example.com"),
        ("http://shop.example.com", "http://shop.example.com"),
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("http://shop.example.com:80", "http://shop.example.com"),
        ("http://shop.example.com:443", "http://shop.example.com:443"),
        ("https://shop.example.com:80", "https://shop.example.com:80"),
        ("https://shop.example.com:8443", "https://shop.example.com:8443"),
        ("https://shop.example.com/", "https://shop.example.com"),
        ("https://shop.example.com:443/", "https://shop.example.com"),
        ("HTTPS://Shop.EXAMPLE.com", "https://shop.example.com"),
        ("https://SHOP.example.com:8443/", "https://shop.example.com:8443"),
        ("  https://shop.example.com  ", "https://shop.example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://[::1]:80", "http://[::1]"),
        ("https://[2001:DB8::1]", "https://[2001:db8::1]"),
        ("https://[2001:db8::1]:443/", "https://[2001:db8::1]"),
    ],
)
def test_normalize_origin_accepts_and_normalises(raw: str, expected: str) -> None:
    assert services.normalize_origin(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("https://shop.example.com/path", "without a path"),
        ("https://shop.example.com/path/", "without a path"),
        ("https://shop.example.com/?a=1", "without a path"),
        ("https://shop.example.com?a=1", "without a path"),
        ("https://shop.example.com#top", "without a path"),
        ("https://user:pw@shop.example.com", "without a path"),
        ("https://user@shop.example.com", "without a path"),
        ("https://:pw@shop.example.com", "without a path"),
        ("ftp://shop.example.com", "use scheme://host[:port]"),
        ("javascript://shop.example.com", "use scheme://host[:port]"),
        ("shop.example.com", "use scheme://host[:port]"),
        ("//shop.example.com", "use scheme://host[:port]"),
        ("https:shop.example.com", "use scheme://host[:port]"),
        ("https://", "use scheme://host[:port]"),
        ("https://:443", "use scheme://host[:port]"),
        ("null", "use scheme://host[:port]"),
        ("", "use scheme://host[:port]"),
        ("https://shop.example.com:99999", "has an invalid port"),
        ("https://shop.example.com:65536", "has an invalid port"),
        ("https://shop.example.com:-1", "has an invalid port"),
        ("https://shop.example.com:abc", "has an invalid port"),
        ("https://shop.example.com:443:443", "has an invalid port"),
    ],
)
def test_normalize_origin_refuses(raw: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        services.normalize_origin(raw)
    assert caught.value.code == "bad_request"
    assert caught.value.message.startswith(repr(raw))
    assert message in caught.value.message


def test_normalize_origin_refuses_unclosed_ipv6_bracket_as_bad_request() -> None:
    with pytest.raises(BadRequest):
        services.normalize_origin("http://[::1")


def test_normalize_origin_refuses_port_zero() -> None:
    with pytest.raises(BadRequest):
        services.normalize_origin("https://shop.example.com:0")


@pytest.mark.parametrize(
    "raw",
    [
        "https://shop.example.com *",
        "https://shop.example.com;script-src *",
        'https://shop.example.com"><script>',
        "https://[::1]junk",
    ],
)
def test_normalize_origin_refuses_hosts_that_are_not_hostnames(raw: str) -> None:
    with pytest.raises(BadRequest):
        services.normalize_origin(raw)


# --- tenant_create ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tenant_create_stores_tenant_with_credentials_and_normalised_origins() -> None:
    tenant = services.tenant_create(
        slug="acme",
        name="  Acme Corp  ",
        origins=[
            "https://Shop.Acme.example/",
            "https://shop.acme.example:443",
            "http://acme.example:80",
            " http://acme.example ",
            "https://acme.example:8443",
        ],
    )

    row = Tenant.objects.get(pk=tenant.pk)
    assert (row.slug, row.name, row.is_active) == ("acme", "Acme Corp", True)
    assert row.widget_key.startswith("wk_")
    assert row.identity_secret.startswith("ids_")
    assert row.widget_key == tenant.widget_key
    assert row.identity_secret == tenant.identity_secret
    assert list(AllowedOrigin.objects.for_tenant(row).values_list("origin", flat=True)) == [
        "http://acme.example",
        "https://acme.example:8443",
        "https://shop.acme.example",
    ]


@pytest.mark.django_db
def test_tenant_create_without_origins_has_none() -> None:
    tenant = services.tenant_create(slug="acme", name="Acme")
    assert list(AllowedOrigin.objects.filter(tenant=tenant)) == []


@pytest.mark.django_db
def test_each_tenant_gets_its_own_credentials() -> None:
    one = services.tenant_create(slug="one", name="One")
    two = services.tenant_create(slug="two", name="Two")
    assert one.widget_key != two.widget_key
    assert one.identity_secret != two.identity_secret


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["a", "0", "acme", "acme-2", "a1-b2-c3", "a" * 50])
def test_tenant_create_accepts_valid_slugs(slug: str) -> None:
    tenant = services.tenant_create(slug=slug, name="Valid")
    assert list(Tenant.objects.values_list("slug", flat=True)) == [slug]
    assert tenant.slug == slug


@pytest.mark.django_db
@pytest.mark.parametrize(
    "slug",
    [
        "",
        "-acme",
        "acme-",
        "-",
        "Acme",
        "ac me",
        "acme_co",
        "acme.co",
        "acmé",
        "acme/../x",
        "a" * 51,
        " acme",
    ],
)
def test_tenant_create_refuses_invalid_slugs_and_creates_nothing(slug: str) -> None:
    with pytest.raises(BadRequest) as caught:
        services.tenant_create(slug=slug, name="Invalid", origins=["https://ok.example"])
    assert caught.value.message == (
        f"{slug!r} is not a valid slug: 1-50 lowercase letters, digits and hyphens, "
        "not starting or ending with a hyphen"
    )
    assert Tenant.objects.count() == 0
    assert AllowedOrigin.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_tenant_create_refuses_empty_name_and_creates_nothing(name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        services.tenant_create(slug="acme", name=name, origins=["https://ok.example"])
    assert caught.value.message == "A company needs a name."
    assert Tenant.objects.count() == 0
    assert AllowedOrigin.objects.count() == 0


@pytest.mark.django_db
def test_tenant_create_refuses_an_invalid_origin_and_creates_nothing() -> None:
    with pytest.raises(BadRequest) as caught:
        services.tenant_create(slug="acme", name="Acme", origins=["https://ok.example", "ftp://bad.example"])
    assert caught.value.message.startswith("'ftp://bad.example' is not an origin")
    assert Tenant.objects.count() == 0
    assert AllowedOrigin.objects.count() == 0


@pytest.mark.django_db
def test_tenant_create_duplicate_slug_is_a_conflict_and_changes_nothing() -> None:
    first = services.tenant_create(slug="acme", name="Acme", origins=["https://acme.example"])
    before = Tenant.objects.values().get(pk=first.pk)

    with pytest.raises(Conflict) as caught:
        services.tenant_create(slug="acme", name="Other Acme", origins=["https://other.example"])

    assert caught.value.code == "conflict"
    assert caught.value.message == "A company with the slug 'acme' already exists."
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["acme"]
    assert Tenant.objects.values().get(pk=first.pk) == before
    assert list(AllowedOrigin.objects.values_list("tenant__slug", "origin")) == [
        ("acme", "https://acme.example")
    ]


# --- tenant_configure -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_tenant_configure_replaces_origins_and_renames(tenant_a, tenant_b, tenant_snapshot) -> None:
    b_before = tenant_snapshot(tenant_b.tenant)

    services.tenant_configure(
        tenant=tenant_a.tenant,
        name="  Renamed A ",
        origins=[
            "https://A.example/",
            "https://new.example:443",
            "https://new.example",
            "http://new.example",
        ],
    )

    after = tenant_snapshot(tenant_a.tenant)
    assert after.name == "Renamed A"
    assert after.origins == ["http://new.example", "https://a.example", "https://new.example"]
    assert tenant_a.tenant.name == "Renamed A"
    assert tenant_snapshot(tenant_b.tenant) == b_before


@pytest.mark.django_db
def test_tenant_configure_keeps_existing_rows_of_origins_it_keeps(tenant_a) -> None:
    kept = AllowedOrigin.objects.get(tenant=tenant_a.tenant, origin="https://a.example")

    services.tenant_configure(tenant=tenant_a.tenant, origins=["https://a.example", "https://c.example"])

    assert AllowedOrigin.objects.get(tenant=tenant_a.tenant, origin="https://a.example").pk == kept.pk


@pytest.mark.django_db
def test_tenant_configure_with_empty_list_removes_every_origin(tenant_a, tenant_snapshot) -> None:
    services.tenant_configure(tenant=tenant_a.tenant, origins=[])
    after = tenant_snapshot(tenant_a.tenant)
    assert after.origins == []
    assert after.name == "Tenant A"


@pytest.mark.django_db
def test_tenant_configure_without_origins_leaves_them(tenant_a, tenant_snapshot) -> None:
    services.tenant_configure(tenant=tenant_a.tenant, name="Only Renamed")
    after = tenant_snapshot(tenant_a.tenant)
    assert after.name == "Only Renamed"
    assert after.origins == ["https://a.example", "https://shop.a.example"]


@pytest.mark.django_db
def test_tenant_configure_with_one_invalid_origin_changes_nothing(tenant_a, tenant_snapshot) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    with pytest.raises(BadRequest) as caught:
        services.tenant_configure(
            tenant=tenant_a.tenant,
            name="Should Not Stick",
            origins=["https://fine.example", "https://fine.example/with/path", "https://also-fine.example"],
        )

    assert caught.value.message.startswith("'https://fine.example/with/path' is not an origin")
    assert tenant_snapshot(tenant_a.tenant) == before
    assert before.origins == ["https://a.example", "https://shop.a.example"]


@pytest.mark.django_db
def test_tenant_configure_with_empty_name_changes_nothing(tenant_a, tenant_snapshot) -> None:
    before = tenant_snapshot(tenant_a.tenant)

    with pytest.raises(BadRequest) as caught:
        services.tenant_configure(tenant=tenant_a.tenant, name="  ", origins=["https://other.example"])

    assert caught.value.message == "A company needs a name."
    assert tenant_snapshot(tenant_a.tenant) == before


# --- identity secret, origins one by one ---------------------------------------------------------------


@pytest.mark.django_db
def test_identity_secret_rotation_changes_only_that_secret(tenant_a, tenant_b, tenant_snapshot) -> None:
    a_before = tenant_snapshot(tenant_a.tenant)
    b_before = tenant_snapshot(tenant_b.tenant)

    rotated = services.tenant_identity_secret_rotate(tenant=tenant_a.tenant)

    a_after = tenant_snapshot(tenant_a.tenant)
    assert a_after.identity_secret == rotated.identity_secret
    assert a_after.identity_secret != a_before.identity_secret
    assert a_after.identity_secret.startswith("ids_")
    assert (a_after.widget_key, a_after.name, a_after.origins) == (
        a_before.widget_key,
        a_before.name,
        a_before.origins,
    )
    assert tenant_snapshot(tenant_b.tenant) == b_before

    again = services.tenant_identity_secret_rotate(tenant=tenant_a.tenant)
    assert again.identity_secret not in {a_before.identity_secret, a_after.identity_secret}


@pytest.mark.django_db
def test_allowed_origin_add_normalises_and_is_idempotent(tenant_a, tenant_snapshot) -> None:
    first = services.allowed_origin_add(tenant=tenant_a.tenant, origin="HTTPS://New.Example:443/")
    second = services.allowed_origin_add(tenant=tenant_a.tenant, origin="https://new.example")
    assert first.pk == second.pk
    assert first.origin == "https://new.example"
    assert tenant_snapshot(tenant_a.tenant).origins == [
        "https://a.example",
        "https://new.example",
        "https://shop.a.example",
    ]


@pytest.mark.django_db
def test_allowed_origin_remove_never_touches_another_tenant(tenant_a, tenant_b, tenant_snapshot) -> None:
    b_before = tenant_snapshot(tenant_b.tenant)
    a_before = tenant_snapshot(tenant_a.tenant)

    assert services.allowed_origin_remove(tenant=tenant_a.tenant, origin="https://b.example") == 0

    assert tenant_snapshot(tenant_b.tenant) == b_before
    assert tenant_snapshot(tenant_a.tenant) == a_before

    assert services.allowed_origin_remove(tenant=tenant_a.tenant, origin="https://A.example/") == 1
    assert tenant_snapshot(tenant_a.tenant).origins == ["https://shop.a.example"]


# --- people and roles -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "Admin", "", "superuser"])
def test_membership_grant_refuses_unknown_role(role: str, make_tenant, make_user) -> None:
    tenant = make_tenant(slug="acme")
    user = make_user(username="someone")

    with pytest.raises(BadRequest) as caught:
        services.membership_grant(tenant=tenant, user=user, role=role)

    assert caught.value.message == f"{role!r} is not a role: choose one of admin, agent, editor, pii_viewer"
    assert Membership.objects.count() == 0


@pytest.mark.django_db
def test_membership_grant_is_idempotent_and_per_role(make_tenant, make_user) -> None:
    tenant = make_tenant(slug="acme")
    user = make_user(username="someone")

    first = services.membership_grant(tenant=tenant, user=user, role=Role.AGENT)
    again = services.membership_grant(tenant=tenant, user=user, role="agent")
    services.membership_grant(tenant=tenant, user=user, role=Role.EDITOR)

    assert first.pk == again.pk
    assert list(Membership.objects.values_list("tenant__slug", "user__username", "role")) == [
        ("acme", "someone", "agent"),
        ("acme", "someone", "editor"),
    ]


@pytest.mark.django_db
def test_user_create_duplicate_username_is_a_conflict(make_user) -> None:
    make_user(username="taken", email="first@staff.example")

    with pytest.raises(Conflict) as caught:
        services.user_create(username="taken", email="second@staff.example", password="x" * 12)

    assert caught.value.message == "The username 'taken' is taken."
    assert list(User.objects.values_list("username", "email")) == [("taken", "first@staff.example")]
