"""Who sees what of /healthz, and how often its checks really run.

Anonymous callers (load balancers, anyone on the internet) get the overall status only; the per-check
details name versions, worker hosts and exception text, so they are for staff and token holders. The
report is kept a few seconds and shared by concurrent callers, so a flood of /healthz does not call the
model or embed text once per request.

Each test replaces the registered checks with its own counting ones, so what runs is exactly what the
test registered (the real checks are tested in test_healthz.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.test import Client

from apps.core import health

TOKEN = "healthz-test-token-5b1f0c9e"
SECRET_DETAIL = "worker@db-host-7 PostgreSQL 18.1"
FAILURE = "connection to 10.0.0.7:5432 refused: password authentication failed for user 'helpdesk'"


class CountingCheck:
    def __init__(self, *, delay: float = 0.0, failing: bool = False) -> None:
        self.delay = delay
        self.failing = failing
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        if self.failing:
            raise health.CheckFailed(FAILURE)
        return SECRET_DETAIL


@pytest.fixture
def only_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "_registry", {})


@pytest.fixture
def check(only_registered: None) -> CountingCheck:
    counting = CountingCheck()
    health.register("part", counting)
    return counting


def get(client: Client | None = None, *, authorization: str | None = None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    return (client or Client()).get("/healthz", headers=headers)


# ---- who sees what -------------------------------------------------------------------------------------


def test_anonymous_callers_get_the_status_and_nothing_else(check):
    response = get()
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert SECRET_DETAIL.encode() not in response.content
    assert response["Cache-Control"].startswith("max-age=0")


def test_down_is_503_with_retry_after_and_still_no_details_for_anonymous(check):
    check.failing = True
    response = get()
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"status": "down"}
    assert b"10.0.0.7" not in response.content


def test_an_optional_check_down_leaves_the_status_ok(only_registered):
    health.register("optional", CountingCheck(failing=True), required=False)
    response = get()
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_staff_see_every_check(check, make_user):
    staff = make_user()
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(staff)
    body = get(client).json()
    assert body == {
        "status": "ok",
        "checks": {
            "part": {
                "status": "ok",
                "required": True,
                "latency_ms": body["checks"]["part"]["latency_ms"],
                "detail": SECRET_DETAIL,
            }
        },
    }
    assert isinstance(body["checks"]["part"]["latency_ms"], float)


@pytest.mark.django_db
def test_signed_in_people_who_are_not_staff_get_the_status_only(check, tenant_a):
    client = Client()
    client.force_login(tenant_a.admin)  # a company's admin is not the platform's staff
    assert get(client).json() == {"status": "ok"}


@pytest.mark.django_db
def test_a_staff_session_the_database_cannot_read_still_gets_the_status(check, make_user, monkeypatch):
    staff = make_user()
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(staff)

    def database_down(self: SessionStore) -> dict[str, object]:
        raise OperationalError("the database system is shutting down")

    # /healthz is what people read while the database is down: that must not turn it into a 500.
    monkeypatch.setattr(SessionStore, "load", database_down)
    response = get(client)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("setting", ["HEALTHZ_TOKEN", "METRICS_TOKEN"])
@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer  {TOKEN} "])
def test_a_bearer_token_sees_every_check(check, settings, setting, authorization):
    settings.HEALTHZ_TOKEN = None
    settings.METRICS_TOKEN = None
    setattr(settings, setting, TOKEN)
    check.failing = True
    response = get(authorization=authorization)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["status"] == "down"
    assert response.json()["checks"]["part"]["detail"] == FAILURE


def test_both_tokens_are_accepted_when_both_are_set(check, settings):
    settings.HEALTHZ_TOKEN = TOKEN
    settings.METRICS_TOKEN = "the-scrapers-token"
    for token in (TOKEN, "the-scrapers-token"):
        assert "checks" in get(authorization=f"Bearer {token}").json()


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer é",
    ],
)
def test_a_wrong_token_gets_the_status_only(check, settings, authorization):
    settings.HEALTHZ_TOKEN = TOKEN
    settings.METRICS_TOKEN = None
    response = get(authorization=authorization)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("authorization", ["Bearer ", "Bearer None", "Bearer"])
def test_no_token_configured_means_no_token_matches(check, settings, authorization):
    settings.HEALTHZ_TOKEN = None
    settings.METRICS_TOKEN = None
    assert get(authorization=authorization).json() == {"status": "ok"}


# ---- one computation per window, shared -----------------------------------------------------------------


def test_concurrent_and_rapid_requests_run_each_check_once(only_registered, settings):
    settings.HEALTHZ_CACHE_SECONDS = 60.0
    settings.HEALTHZ_TOKEN = TOKEN
    slow = CountingCheck(delay=0.3)  # long enough that every thread arrives while it runs
    health.register("slow", slow)
    callers = 12
    start = threading.Barrier(callers)
    answers: list[tuple[int, dict[str, object]]] = []
    lock = threading.Lock()

    def call(index: int) -> None:
        start.wait()
        response = get(authorization=f"Bearer {TOKEN}" if index % 2 else None)
        with lock:
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(answers) == callers
    assert slow.calls == 1
    assert sorted(status for status, _ in answers) == [200] * callers
    assert sum("checks" in body for _, body in answers) == callers // 2

    for _ in range(30):
        assert get().status_code == 200
    assert slow.calls == 1


def test_the_report_is_computed_again_after_its_window(check, settings):
    settings.HEALTHZ_CACHE_SECONDS = 0.2
    get()
    get()
    assert check.calls == 1
    time.sleep(0.3)
    get()
    assert check.calls == 2


def test_a_down_report_is_kept_for_less_time_so_recovery_shows_quickly(check, settings):
    settings.HEALTHZ_CACHE_SECONDS = 60.0
    settings.HEALTHZ_DOWN_CACHE_SECONDS = 0.2
    check.failing = True
    assert get().status_code == 503
    check.failing = False  # the part recovers
    assert get().status_code == 503  # still within the down window: the kept report answers
    assert check.calls == 1
    time.sleep(0.3)
    assert get().status_code == 200
    assert check.calls == 2
    assert get().status_code == 200  # an ok report is kept for the long window
    assert check.calls == 2


def test_concurrent_callers_of_a_red_report_share_one_computation(only_registered, settings):
    # Red is when a flood hurts most (every check may sit out its timeout): still one computation.
    settings.HEALTHZ_DOWN_CACHE_SECONDS = 60.0
    failing = CountingCheck(delay=0.2, failing=True)
    health.register("part", failing)
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(get().status_code)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert (answers, failing.calls) == ([503] * 6, 1)
