"""The operator's commands: onboarding a tenant and loading the demo company."""

from __future__ import annotations

import json
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts import services
from apps.accounts.models import AllowedOrigin, Contact, Membership, Tenant, User
from apps.demo.services import DEMO_POLICIES, demo_load, demo_password
from apps.knowledge.models import Document

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        "tenants": Tenant.objects.count(),
        "users": User.objects.count(),
        "memberships": Membership.objects.count(),
        "contacts": Contact.objects.count(),
        "origins": AllowedOrigin.objects.count(),
    }


# --- tenant_create -------------------------------------------------------------------------------------


def test_tenant_create_prints_the_credentials_as_json() -> None:
    data = json.loads(_run("tenant_create", "acme", "--name", "Acme", "--origin", "https://Acme.example/"))

    tenant = Tenant.objects.get(slug="acme")
    assert data == {
        "id": str(tenant.id),
        "slug": "acme",
        "name": "Acme",
        "widget_key": tenant.widget_key,
        "identity_secret": tenant.identity_secret,
        "allowed_origins": ["https://acme.example"],
    }
    assert data["widget_key"].startswith("wk_")
    assert data["identity_secret"].startswith("ids_")
    assert list(AllowedOrigin.objects.for_tenant(tenant).values_list("origin", flat=True)) == [
        "https://acme.example"
    ]
    assert _counts() == {"tenants": 1, "users": 0, "memberships": 0, "contacts": 0, "origins": 1}


def test_tenant_create_with_several_origins_and_none() -> None:
    data = json.loads(
        _run(
            "tenant_create",
            "acme",
            "--name",
            "Acme",
            "--origin",
            "https://shop.acme.example:443",
            "--origin",
            "http://localhost:3000/",
            "--origin",
            "https://SHOP.acme.example",
        )
    )
    assert data["allowed_origins"] == ["http://localhost:3000", "https://shop.acme.example"]

    bare = json.loads(_run("tenant_create", "bare", "--name", "Bare"))
    assert bare["allowed_origins"] == []


def test_tenant_create_duplicate_slug_fails_clearly_and_creates_nothing() -> None:
    first = json.loads(_run("tenant_create", "acme", "--name", "Acme", "--origin", "https://acme.example"))
    before = (_counts(), Tenant.objects.values().get(slug="acme"))

    with pytest.raises(CommandError) as caught:
        _run("tenant_create", "acme", "--name", "Acme Again", "--origin", "https://other.example")

    assert str(caught.value) == "A company with the slug 'acme' already exists."
    assert (_counts(), Tenant.objects.values().get(slug="acme")) == before
    assert Tenant.objects.get(slug="acme").identity_secret == first["identity_secret"]
    assert list(AllowedOrigin.objects.values_list("origin", flat=True)) == ["https://acme.example"]


@pytest.mark.parametrize("slug", ["Acme", "acme-", "acmé", "acme_co", "ac me", "a" * 51])
def test_tenant_create_invalid_slug_fails_clearly_and_creates_nothing(slug: str) -> None:
    with pytest.raises(CommandError) as caught:
        _run("tenant_create", slug, "--name", "Acme", "--origin", "https://acme.example")

    assert str(caught.value) == (
        f"{slug!r} is not a valid slug: 1-50 lowercase letters, digits and hyphens, "
        "not starting or ending with a hyphen"
    )
    assert _counts() == {"tenants": 0, "users": 0, "memberships": 0, "contacts": 0, "origins": 0}


def test_tenant_create_invalid_origin_fails_clearly_and_creates_nothing() -> None:
    with pytest.raises(CommandError) as caught:
        _run("tenant_create", "acme", "--name", "Acme", "--origin", "https://acme.example/shop")

    assert str(caught.value) == (
        "'https://acme.example/shop' is not an origin: give only scheme://host[:port], without a path"
    )
    assert _counts()["tenants"] == 0


def test_tenant_create_blank_name_fails_clearly_and_creates_nothing() -> None:
    with pytest.raises(CommandError) as caught:
        _run("tenant_create", "acme", "--name", "   ")

    assert str(caught.value) == "A company needs a name."
    assert _counts()["tenants"] == 0


def test_tenant_create_requires_a_name() -> None:
    with pytest.raises(CommandError) as caught:
        _run("tenant_create", "acme")

    assert str(caught.value) == "Error: the following arguments are required: --name"
    assert _counts()["tenants"] == 0


# --- demo_load -----------------------------------------------------------------------------------------


def test_demo_load_twice_is_idempotent() -> None:
    first = json.loads(_run("demo_load", "--json", "--allow-non-debug", "--origin", "http://127.0.0.1:8000"))
    after_first = _counts()
    tenant = Tenant.objects.get(slug="nimbus")
    secret = tenant.identity_secret

    second = json.loads(_run("demo_load", "--json", "--allow-non-debug", "--origin", "http://127.0.0.1:8000"))

    assert after_first == {"tenants": 1, "users": 5, "memberships": 4, "contacts": 3, "origins": 1}
    assert _counts() == after_first
    assert first["created"] is True
    assert second["created"] is False
    logins = [
        {"username": "operator", "roles": "platform operator (Django admin)"},
        {"username": "nina", "roles": "Admin"},
        {"username": "alice", "roles": "Agent"},
        {"username": "bob", "roles": "Agent"},
        {"username": "erin", "roles": "Knowledge editor"},
    ]
    for result in (first, second):
        assert result == {
            "tenant": "nimbus",
            "created": result["created"],
            "widget_key": tenant.widget_key,
            "password": demo_password(),
            "logins": logins,
            "documents_published": result["documents_published"],
        }
    policies = sorted(DEMO_POLICIES.glob("*.md"))
    assert first["documents_published"] == len(policies)
    assert second["documents_published"] == 0
    assert Document.objects.for_tenant(tenant).filter(published_version__isnull=False).count() == len(
        policies
    )
    tenant.refresh_from_db()
    assert tenant.identity_secret == secret
    assert list(AllowedOrigin.objects.for_tenant(tenant).values_list("origin", flat=True)) == [
        "http://127.0.0.1:8000"
    ]
    assert sorted(Membership.objects.values_list("user__username", "role")) == [
        ("alice", "agent"),
        ("bob", "agent"),
        ("erin", "editor"),
        ("nina", "admin"),
    ]
    assert list(Contact.objects.values_list("external_id", flat=True)) == [
        "cust-1001",
        "cust-1002",
        "cust-1003",
    ]
    assert User.objects.get(username="operator").is_superuser is True
    assert User.objects.get(username="nina").is_superuser is False
    # The human side, set up once: hours, a team, canned responses, two company rules, a premium customer.
    from apps.handoff.models import CannedResponse, HandoffRule, HandoffSettings, Team

    hours = HandoffSettings.objects.get(tenant=tenant)
    assert (hours.timezone, hours.hours["mon"], hours.hours["sun"]) == (
        "Europe/Berlin",
        [["00:00", "24:00"]],
        [["00:00", "24:00"]],
    )
    assert [
        (t.name, sorted(m.username for m in t.members.all())) for t in Team.objects.filter(tenant=tenant)
    ] == [("Billing", ["alice", "bob"])]
    assert sorted(CannedResponse.objects.filter(tenant=tenant).values_list("shortcut", flat=True)) == [
        "bill",
        "checking",
        "else",
        "hello",
    ]
    assert sorted(HandoffRule.objects.filter(tenant=tenant).values_list("kind", "value", "priority")) == [
        ("tier", "premium", 2),
        ("topic", "cancel my contract, port my number, formal complaint", 1),
    ]
    assert dict(Contact.objects.values_list("external_id", "tier")) == {
        "cust-1001": "",
        "cust-1002": "",
        "cust-1003": "premium",
    }


def test_demo_load_plain_output_says_what_happened() -> None:
    first = _run("demo_load", "--allow-non-debug")
    second = _run("demo_load", "--allow-non-debug")

    assert first.splitlines()[0] == "Loaded demo company Nimbus Telecom (nimbus)"
    assert second.splitlines()[0] == "Already loaded: demo company Nimbus Telecom (nimbus)"
    assert first.splitlines()[1:] == second.splitlines()[1:]
    assert [line.split()[0] for line in first.splitlines()[1:]] == [
        "operator",
        "nina",
        "alice",
        "bob",
        "erin",
    ]
    assert _counts() == {"tenants": 1, "users": 5, "memberships": 4, "contacts": 3, "origins": 0}


def test_demo_load_again_with_a_new_origin_only_adds_it() -> None:
    _run("demo_load", "--allow-non-debug", "--origin", "http://127.0.0.1:8000")
    before = _counts()

    _run(
        "demo_load",
        "--allow-non-debug",
        "--origin",
        "http://localhost:8000",
        "--origin",
        "http://127.0.0.1:8000/",
    )

    assert _counts() == {**before, "origins": 2}
    assert list(AllowedOrigin.objects.values_list("origin", flat=True)) == [
        "http://127.0.0.1:8000",
        "http://localhost:8000",
    ]


DEMO_LOGINS = ["operator", "nina", "alice", "bob", "erin"]
OLD_PUBLIC_PASSWORD = "helpdesk-demo"


def test_demo_password_is_random_per_install_private_and_stable(settings, tmp_path) -> None:
    settings.DEMO_PASSWORD_FILE = tmp_path / "var" / "demo_password"

    first = json.loads(_run("demo_load", "--json", "--allow-non-debug"))
    second = json.loads(_run("demo_load", "--json", "--allow-non-debug"))

    password = first["password"]
    assert password != OLD_PUBLIC_PASSWORD
    assert len(password) >= 16
    assert second["password"] == password
    assert demo_password() == password
    assert settings.DEMO_PASSWORD_FILE.read_text() == password
    assert stat.S_IMODE(settings.DEMO_PASSWORD_FILE.stat().st_mode) == 0o600
    for username in DEMO_LOGINS:
        user = User.objects.get(username=username)
        assert user.check_password(password)
        assert not user.check_password(OLD_PUBLIC_PASSWORD)
    plain = _run("demo_load", "--allow-non-debug")
    assert plain.splitlines()[1].split() == [
        "operator",
        "/",
        password,
        "platform",
        "operator",
        "(Django",
        "admin)",
    ]
    # Another install (another var directory) has a password of its own.
    settings.DEMO_PASSWORD_FILE = tmp_path / "other-var" / "demo_password"
    assert demo_password() not in {password, OLD_PUBLIC_PASSWORD}


def test_an_install_loaded_with_the_old_public_password_gets_a_private_one(
    settings, tmp_path, monkeypatch
) -> None:
    settings.DEMO_PASSWORD_FILE = tmp_path / "demo_password"
    # The demo logins of an install loaded by an earlier version, with its public password.
    User.objects.create_superuser(username="operator", email="op@example.com", password=OLD_PUBLIC_PASSWORD)
    for username in DEMO_LOGINS[1:]:
        services.user_create(username=username, email=f"{username}@example.com", password=OLD_PUBLIC_PASSWORD)

    def broken(**kwargs: object) -> None:
        raise RuntimeError("the database went away")

    # A load that fails half-way keeps no password file: the next load resets the passwords again.
    monkeypatch.setattr(services, "contact_upsert", broken)
    with pytest.raises(RuntimeError):
        demo_load(origins=[])
    monkeypatch.undo()
    assert not settings.DEMO_PASSWORD_FILE.exists()
    assert User.objects.get(username="operator").check_password(OLD_PUBLIC_PASSWORD)

    result = json.loads(_run("demo_load", "--json", "--allow-non-debug"))

    assert result["password"] == settings.DEMO_PASSWORD_FILE.read_text()
    for username in DEMO_LOGINS:
        user = User.objects.get(username=username)
        assert user.check_password(result["password"]), username
        assert not user.check_password(OLD_PUBLIC_PASSWORD), username


def test_demo_load_refuses_to_run_with_debug_off(settings, tmp_path) -> None:
    settings.DEMO_PASSWORD_FILE = tmp_path / "demo_password"
    assert settings.DEBUG is False

    with pytest.raises(CommandError) as caught:
        _run("demo_load", "--origin", "http://127.0.0.1:8000")

    assert str(caught.value) == (
        "Refusing to load the demo company with DEBUG off: it creates sign-ins, a superuser among them, "
        "and prints their password; pass --allow-non-debug if you really want them on this server."
    )
    assert _counts() == {"tenants": 0, "users": 0, "memberships": 0, "contacts": 0, "origins": 0}
    assert not settings.DEMO_PASSWORD_FILE.exists()


def test_demo_load_runs_without_the_flag_when_debug_is_on(settings, tmp_path) -> None:
    settings.DEMO_PASSWORD_FILE = tmp_path / "demo_password"
    settings.DEBUG = True

    first = _run("demo_load")

    assert first.splitlines()[0] == "Loaded demo company Nimbus Telecom (nimbus)"
    assert User.objects.get(username="operator").check_password(settings.DEMO_PASSWORD_FILE.read_text())
