"""A company's business system failing: 5xx and hangs are bounded, retried only while worth it, trip the
adapter's breaker (shared through Redis), and the customer is told and offered a person."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from apps.tools import execution, services
from apps.tools.breaker import AdapterBreaker
from apps.tools.models import RunStatus, ToolRun
from tests.conftest import TenantStaff
from tests.fakes.business_server import FakeBusiness
from tests.tools.conftest import Propose, tools_enable

pytestmark = pytest.mark.django_db


@pytest.fixture
def business(tenant_a: TenantStaff, settings) -> Iterator[FakeBusiness]:
    settings.TOOLS_BREAKER_FAILURES = 3
    settings.TOOLS_BREAKER_RESET_SECONDS = 3.0
    settings.TOOLS_MAX_RETRIES = 2
    with FakeBusiness(token="tok") as fake:
        settings.TOOLS_ALLOWED_HOSTS = [fake.host_port]
        tools_enable(
            tenant_a.tenant, adapter="http", base_url=fake.base_url, auth_secret="tok", timeout_seconds=1
        )
        yield fake


def _run_to_the_end(run: ToolRun) -> tuple[ToolRun, int]:
    """Executes the run as the worker would, retries included (without the countdowns)."""
    retries = 0
    while True:
        try:
            return execution.tool_run_execute(run_id=str(run.id)), retries
        except execution.RetryLater:
            retries += 1


def test_a_failing_system_is_retried_then_the_run_fails_and_the_breaker_opens(
    tenant_a: TenantStaff, propose: Propose, business: FakeBusiness
) -> None:
    business.behaviour = "error_503"
    run, retries = _run_to_the_end(propose(tenant_a.tenant, "order_lookup", '{"order_number": "NM-1"}'))
    assert (run.status, run.error_code, run.attempts, retries) == (RunStatus.FAILED, "unavailable", 3, 2)
    assert run.summary == services.FAILURES["unavailable"]
    assert business.request_count == 3
    assert AdapterBreaker(f"http:{tenant_a.tenant.id}").state().state == "open"

    # While it is open, runs fail at once without calling the system.
    fast, retries = _run_to_the_end(propose(tenant_a.tenant, "bill_explain", "{}"))
    assert (fast.status, fast.error_code, retries, business.request_count) == (
        RunStatus.FAILED,
        "unavailable",
        0,
        3,
    )

    # After the reset period one trial goes through; its success closes the breaker.
    business.behaviour = "ok"
    time.sleep(3.1)
    trial, _ = _run_to_the_end(propose(tenant_a.tenant, "bill_explain", "{}"))
    assert trial.status == RunStatus.DONE
    assert AdapterBreaker(f"http:{tenant_a.tenant.id}").state().state == "closed"


def test_a_hanging_system_is_bounded_by_the_connection_timeout(
    tenant_a: TenantStaff, propose: Propose, business: FakeBusiness
) -> None:
    business.behaviour = "hang"
    business.hang_seconds = 30
    started = time.monotonic()
    run, retries = _run_to_the_end(propose(tenant_a.tenant, "plans_compare", "{}"))
    elapsed = time.monotonic() - started
    assert (run.status, run.error_code, retries) == (RunStatus.FAILED, "timeout", 2)
    assert elapsed < 3 * (1 + 0.5) + 1  # three attempts of at most the 1 s timeout each, plus overhead
    assert run.duration_ms is not None
    assert run.duration_ms < 1600


def test_a_no_from_the_system_is_not_retried_and_does_not_trip_the_breaker(
    tenant_a: TenantStaff, propose: Propose, business: FakeBusiness
) -> None:
    run, retries = _run_to_the_end(propose(tenant_a.tenant, "order_lookup", '{"order_number": "NM-404404"}'))
    assert (run.status, run.error_code, retries, business.request_count) == (
        RunStatus.FAILED,
        "not_found",
        0,
        1,
    )
    assert AdapterBreaker(f"http:{tenant_a.tenant.id}").state().failures == 0


def test_a_host_the_operator_did_not_allow_is_never_called(
    tenant_a: TenantStaff, propose: Propose, business: FakeBusiness, settings
) -> None:
    settings.TOOLS_ALLOWED_HOSTS = []  # the operator withdrew the host after the company configured it
    run, retries = _run_to_the_end(propose(tenant_a.tenant, "plans_compare", "{}"))
    assert (run.status, run.error_code, retries, business.request_count) == (
        RunStatus.FAILED,
        "host_not_allowed",
        0,
        0,
    )


def test_the_secret_is_sealed_in_the_database_and_sent_as_given(
    tenant_a: TenantStaff, propose: Propose, business: FakeBusiness
) -> None:
    from apps.tools.models import ToolConnection

    stored = ToolConnection.objects.get(tenant=tenant_a.tenant).auth_secret
    assert stored.startswith("sealed:v1:")
    assert "tok" not in stored.removeprefix("sealed:v1:")  # the fake business system's token is "tok"
    run, _ = _run_to_the_end(propose(tenant_a.tenant, "plans_compare", "{}"))
    assert run.status == RunStatus.DONE
    assert business.requests[-1].headers["authorization"] == "Bearer tok"


def test_a_secret_no_key_opens_fails_the_run_clearly(
    tenant_a: TenantStaff, propose: Propose, business: FakeBusiness, settings
) -> None:
    settings.SECRET_KEY = "rotated-without-a-fallback-" + "z" * 30
    run, retries = _run_to_the_end(propose(tenant_a.tenant, "plans_compare", "{}"))
    assert (run.status, run.error_code, retries, business.request_count) == (
        RunStatus.FAILED,
        "secret_unreadable",
        0,
        0,
    )
