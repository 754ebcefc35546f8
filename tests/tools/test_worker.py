"""Tool runs through real Celery workers (CONTRACTS.md I3): the business system sees a change at most once
and every run ends `done` or `failed`, also when a worker is SIGKILLed mid-call or a task arrives twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.db import connection

from apps.tools import services
from apps.tools.models import RunStatus, ToolRun
from tests.conftest import TenantStaff, celery_worker_in_process
from tests.fakes.business_server import FakeBusiness
from tests.harness import harness_database_url
from tests.tools.conftest import Propose, tools_enable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def _wait_final(run: ToolRun, timeout: float) -> ToolRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_final:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run still {run.status} after {timeout}s")


@pytest.fixture
def tools_worker() -> Iterator[None]:
    """A worker in this process consuming the tools queue, as the `celery-tools` process of `make run`."""
    with celery_worker_in_process():
        yield


def test_a_read_runs_on_the_tools_queue_and_wakes_the_waiter(
    tenant_a: TenantStaff, propose: Propose, tools_worker: None
) -> None:
    tools_enable(tenant_a.tenant)
    run = propose(tenant_a.tenant, "order_lookup", '{"order_number": "NM-100234"}')
    done = _wait_final(run, 20)
    assert (done.status, done.attempts) == (RunStatus.DONE, 1)
    from apps.core.redis import state_key, state_redis

    assert state_redis().lrange(state_key("toolrun", run.id, "final"), 0, -1) == [b"done"]


def test_a_task_delivered_twice_changes_the_plan_once(
    tenant_a: TenantStaff, propose: Propose, tools_worker: None
) -> None:
    from apps.telco.models import Account, PlanChange

    tools_enable(tenant_a.tenant)
    run = propose(tenant_a.tenant, "plan_change", '{"plan_code": "unlimited-max"}')
    services.tool_run_decide(run=run, approve=True, actor=tenant_a.agent)  # sends the task once
    services.run_enqueue(run)  # and a duplicate delivery
    done = _wait_final(run, 20)
    time.sleep(1.0)  # let the duplicate be consumed too
    done.refresh_from_db()
    assert (done.status, done.attempts) == (RunStatus.DONE, 1)
    assert PlanChange.objects.filter(idempotency_key=run.idempotency_key).count() == 1
    assert (
        Account.objects.get(company=tenant_a.tenant.id, external_id="cust-1001").plan.code == "unlimited-max"
    )


@pytest.mark.slow
def test_a_worker_killed_mid_call_leaves_one_side_effect_and_a_done_run(
    tenant_a: TenantStaff, propose: Propose, settings
) -> None:
    with FakeBusiness(token="s3cret") as business:
        settings.TOOLS_ALLOWED_HOSTS = [business.host_port]
        business.script(["hang_after_effect"])  # the first plan change is applied, then the call hangs
        business.hang_seconds = 60
        tools_enable(
            tenant_a.tenant,
            adapter="http",
            base_url=business.base_url,
            auth_secret="s3cret",
            timeout_seconds=15,
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings.test",
            "DATABASE_URL": harness_database_url(connection.settings_dict["NAME"]),
            "TOOLS_ALLOWED_HOSTS": business.host_port,
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "helpdesk",
                "worker",
                "--queues",
                "tools",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--hostname",
                f"killtest-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            run = propose(tenant_a.tenant, "plan_change", '{"plan_code": "unlimited"}')
            services.tool_run_decide(run=run, approve=True, actor=tenant_a.agent)
            assert business.wait_for_requests(1, timeout=60), "the worker never called the business system"
            assert business.effect_count == 1
            run.refresh_from_db()
            assert run.status == RunStatus.RUNNING
            children = psutil.Process(worker.pid).children()
            assert len(children) == 1
            os.kill(children[0].pid, signal.SIGKILL)  # the pool process dies in the middle of the call

            done = _wait_final(run, 90)
            assert (done.status, done.attempts) == (RunStatus.DONE, 2)
            assert done.result is not None
            assert done.result["to_plan"] == "unlimited"
            # The second attempt sent the same key and got the first answer back.
            assert business.effect_count == 1
            keys = [
                r.headers.get("idempotency-key")
                for r in business.requests
                if r.path.endswith("/plan-changes")
            ]
            assert keys == [run.idempotency_key, run.idempotency_key]
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
