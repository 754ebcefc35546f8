"""Brute-force protection of staff sign-in (/accounts/login/ and /admin/login/), by django-axes.

After `AXES_FAILURE_LIMIT` failures for one username (from any address) or from one address (for any
username), even the right password is refused with 429 until the cool-off has passed since the last
failure, or an admin unlocks it. Each client below speaks from its own address (REMOTE_ADDR, which
apps.core.clientip hands to axes).
"""

from __future__ import annotations

import math
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.db.models import F
from django.test import AsyncClient, Client, override_settings
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import User
from helpdesk.env import ConfigError, lockout_parameters

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
WRONG = "not the password"
ATTACKER, OFFICE, ELSEWHERE = "203.0.113.7", "198.51.100.20", "192.0.2.55"
LOGIN, ADMIN_LOGIN = "/accounts/login/", "/admin/login/"


@pytest.fixture
def nina() -> User:
    return services.user_create(username="nina", email="nina@staff.example", password=PASSWORD)


@pytest.fixture
def bob() -> User:
    return services.user_create(username="bob", email="bob@staff.example", password=PASSWORD)


@pytest.fixture
def operator() -> User:
    return User.objects.create_superuser(username="root", email="root@staff.example", password=PASSWORD)


def limit() -> int:
    return int(settings.AXES_FAILURE_LIMIT)


def cool_off() -> timedelta:
    value = settings.AXES_COOLOFF_TIME
    assert isinstance(value, timedelta)
    return value


def sign_in(client: Client, url: str, username: str, password: str, **meta: Any):
    """Posts the sign-in form; `meta` adds request headers the WSGI way (HTTP_ACCEPT=...)."""
    return client.post(url, {"username": username, "password": password, "next": "/staff/"}, **meta)


def fail(client: Client, url: str, username: str, times: int) -> None:
    for _ in range(times):
        response = sign_in(client, url, username, WRONG)
        assert response.status_code == 200
        assert SESSION_KEY not in client.session


def lock_out(client: Client, url: str, username: str) -> None:
    """The limit's worth of wrong passwords: the last one already answers with the lockout."""
    fail(client, url, username, limit() - 1)
    assert sign_in(client, url, username, WRONG).status_code == 429


def age_failures(by: timedelta) -> None:
    """Moves every recorded failure `by` into the past, as if that much time had gone by."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - by)


def assert_locked_page(response, client: Client, *, retry_after_about: float) -> None:
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert abs(retry_after - retry_after_about) <= 5
    until = timezone.localtime(timezone.now() + timedelta(seconds=retry_after))
    minutes = math.ceil(retry_after / 60)
    body = response.content.decode()
    assert "<h1>Too many failed sign-ins</h1>" in body
    # The minute shown can roll over between the response and this line: accept either.
    in_minutes = f"{minutes} minute{'s' if minutes != 1 else ''}"
    sentences = {
        f"Try again after {when:%H:%M} {until.tzname()} (in {in_minutes}), or ask an administrator to unlock "
        "sign-in for you."
        for when in (until, until - timedelta(seconds=5))
    }
    assert any(sentence in body for sentence in sentences), body
    assert "<code>rate_limited</code>" in body
    assert SESSION_KEY not in client.session


def test_settings_lock_by_address_and_by_username_after_five_failures_for_fifteen_minutes() -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    assert cool_off() == timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == ["ip_address", "username"]
    assert settings.AXES_CLIENT_IP_CALLABLE == "apps.accounts.lockout.client_address"
    assert settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT is False


def test_lockout_parameters_come_from_a_comma_separated_list() -> None:
    assert lockout_parameters(["ip_address", "username+user_agent"]) == [
        "ip_address",
        ["username", "user_agent"],
    ]
    with pytest.raises(ConfigError) as caught:
        lockout_parameters(["ip_address", "username+password"])
    assert str(caught.value) == (
        "SIGNIN_LOCKOUT_PARAMETERS has 'password': use ip_address, username, user_agent, comma-separated, "
        "joined with + to count a combination"
    )


def test_staff_login_refuses_the_right_password_after_the_limit(nina) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    fail(client, LOGIN, "nina", limit() - 1)

    last = sign_in(client, LOGIN, "nina", WRONG)
    assert_locked_page(last, client, retry_after_about=cool_off().total_seconds())

    right = sign_in(client, LOGIN, "nina", PASSWORD)
    assert_locked_page(right, client, retry_after_about=cool_off().total_seconds())
    assert client.get("/staff/").status_code == 302


def test_the_lock_lasts_the_cool_off_from_the_last_failure_and_then_lifts(nina) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    lock_out(client, LOGIN, "nina")

    age_failures(cool_off() - timedelta(minutes=1))
    still = sign_in(client, LOGIN, "nina", PASSWORD)
    assert_locked_page(still, client, retry_after_about=60)
    # A refused attempt does not restart the clock: the time the page promised holds.
    age_failures(timedelta(seconds=61))

    response = sign_in(client, LOGIN, "nina", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/staff/"
    assert client.session[SESSION_KEY] == str(nina.pk)


def test_admin_login_refuses_the_right_password_after_the_limit(operator) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(limit() - 1):
        response = sign_in(client, ADMIN_LOGIN, "root", WRONG)
        assert response.status_code == 200
    sign_in(client, ADMIN_LOGIN, "root", WRONG)

    response = sign_in(client, ADMIN_LOGIN, "root", PASSWORD)

    assert_locked_page(response, client, retry_after_about=cool_off().total_seconds())
    assert client.get("/admin/").status_code == 302


def test_another_username_from_another_address_is_unaffected(nina, bob) -> None:
    attacker = Client(REMOTE_ADDR=ATTACKER)
    fail(attacker, LOGIN, "nina", limit() - 1)
    assert sign_in(attacker, LOGIN, "nina", WRONG).status_code == 429
    client = Client(REMOTE_ADDR=OFFICE)

    response = sign_in(client, LOGIN, "bob", PASSWORD)

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(bob.pk)


def test_one_address_spraying_many_usernames_is_locked_out_for_every_username(nina, bob) -> None:
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for n in range(limit()):
        sign_in(attacker, LOGIN, f"guess{n}", WRONG)

    from_attacker = sign_in(attacker, LOGIN, "bob", PASSWORD)
    assert_locked_page(from_attacker, attacker, retry_after_about=cool_off().total_seconds())
    office = Client(REMOTE_ADDR=OFFICE)
    assert sign_in(office, LOGIN, "bob", PASSWORD).status_code == 302


def test_many_addresses_guessing_one_username_lock_that_username(nina, bob) -> None:
    for n in range(limit()):
        response = sign_in(Client(REMOTE_ADDR=f"203.0.113.{100 + n}"), LOGIN, "nina", WRONG)
    assert response.status_code == 429

    client = Client(REMOTE_ADDR=OFFICE)
    assert_locked_page(
        sign_in(client, LOGIN, "nina", PASSWORD), client, retry_after_about=cool_off().total_seconds()
    )
    other = Client(REMOTE_ADDR=OFFICE)
    assert sign_in(other, LOGIN, "bob", PASSWORD).status_code == 302


def test_the_address_is_the_trusted_hop_not_what_the_client_writes(nina, bob) -> None:
    """One host cannot escape its address counter by writing a new X-Forwarded-For each time."""
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for n in range(limit()):
        sign_in(attacker, LOGIN, f"guess{n}", WRONG, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")

    response = sign_in(attacker, LOGIN, "bob", PASSWORD, HTTP_X_FORWARDED_FOR="10.0.0.99")

    assert_locked_page(response, attacker, retry_after_about=cool_off().total_seconds())
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


def test_clients_without_a_usable_address_share_one_counter(nina, bob) -> None:
    """Behind a unix socket or a proxy that sent garbage there is no address: such sign-ins still count,
    together, instead of failing."""
    for n in range(limit()):
        sign_in(Client(REMOTE_ADDR="unknown"), LOGIN, f"guess{n}", WRONG)

    client = Client(REMOTE_ADDR="unknown")
    assert_locked_page(
        sign_in(client, LOGIN, "bob", PASSWORD), client, retry_after_about=cool_off().total_seconds()
    )
    assert sign_in(Client(REMOTE_ADDR=OFFICE), LOGIN, "bob", PASSWORD).status_code == 302


def test_a_success_before_the_limit_clears_that_persons_failures(nina) -> None:
    client = Client(REMOTE_ADDR=OFFICE)
    fail(client, LOGIN, "nina", limit() - 1)
    assert sign_in(client, LOGIN, "nina", PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    fail(client, LOGIN, "nina", limit() - 1)

    assert sign_in(client, LOGIN, "nina", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    # The count started again from that success: the limit-th failure after it locks.
    fail(client, LOGIN, "nina", limit() - 1)
    assert sign_in(client, LOGIN, "nina", WRONG).status_code == 429


def test_a_success_does_not_clear_failures_against_someone_else(nina, bob) -> None:
    """An insider with an account of their own cannot reset the count between guesses at nina."""
    client = Client(REMOTE_ADDR=ATTACKER)
    fail(client, LOGIN, "nina", limit() - 1)
    assert sign_in(client, LOGIN, "bob", PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    last = sign_in(client, LOGIN, "nina", WRONG)

    assert_locked_page(last, client, retry_after_about=cool_off().total_seconds())
    assert sign_in(Client(REMOTE_ADDR=ELSEWHERE), LOGIN, "nina", PASSWORD).status_code == 429


@override_settings(AXES_RESET_ON_SUCCESS=False)
def test_without_reset_on_success_earlier_failures_still_count(nina) -> None:
    client = Client(REMOTE_ADDR=OFFICE)
    fail(client, LOGIN, "nina", limit() - 1)
    assert sign_in(client, LOGIN, "nina", PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    last = sign_in(client, LOGIN, "nina", WRONG)

    assert_locked_page(last, client, retry_after_about=cool_off().total_seconds())


def test_json_clients_get_rate_limited_with_retry_after(nina) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    lock_out(client, LOGIN, "nina")

    response = sign_in(client, LOGIN, "nina", PASSWORD, HTTP_ACCEPT="application/json")

    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert abs(retry_after - cool_off().total_seconds()) <= 5
    assert response.json() == {
        "code": "rate_limited",
        "message": (
            "Too many failed sign-ins. Try again in 15 minutes, or ask an administrator to unlock sign-in "
            "for you."
        ),
        "retryable": True,
        "retry_after": retry_after,
    }


def test_the_lockout_under_asgi_renders_the_same_page(nina) -> None:
    """Daphne runs the middleware chain asynchronously, where axes calls the lockout response with
    different arguments."""
    lock_out(Client(REMOTE_ADDR=ATTACKER), LOGIN, "nina")
    # The username is locked whatever the address the async client speaks from.
    client = AsyncClient()

    response = async_to_sync(client.post)(LOGIN, {"username": "nina", "password": PASSWORD})

    assert response.status_code == 429
    assert abs(int(response["Retry-After"]) - cool_off().total_seconds()) <= 5
    assert "<h1>Too many failed sign-ins</h1>" in response.content.decode()


def test_an_admin_unlocks_with_the_management_command(nina) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    lock_out(client, LOGIN, "nina")
    assert sign_in(client, LOGIN, "nina", PASSWORD).status_code == 429

    call_command("axes_reset_username", "nina", stdout=StringIO())

    assert AccessAttempt.objects.count() == 0
    assert sign_in(client, LOGIN, "nina", PASSWORD).status_code == 302


def test_an_admin_unlocks_in_the_django_admin(nina, operator) -> None:
    lock_out(Client(REMOTE_ADDR=ATTACKER), LOGIN, "nina")
    admin = Client(REMOTE_ADDR=OFFICE)
    admin.force_login(operator)
    attempt_ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    assert admin.get("/admin/axes/accessattempt/").status_code == 200

    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": attempt_ids, "post": "yes"},
    )

    assert response.status_code == 302
    assert AccessAttempt.objects.count() == 0
    assert sign_in(Client(REMOTE_ADDR=ATTACKER), LOGIN, "nina", PASSWORD).status_code == 302
