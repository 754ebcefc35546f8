"""Tools in the audit trail: an admin's configuration and secret rotation, an agent's or the customer's
decision, and every change of a run's state (apps/tools/actions.py, services.run_audit), each one row in the
transaction of the change, with ids and codes but never a secret or a run's arguments."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.core.errors import Conflict, Forbidden, NotFound
from apps.tools import execution, services
from apps.tools.models import TenantTool, ToolConnection, ToolRun
from tests.conftest import TenantStaff
from tests.fakes.business_server import FakeBusiness
from tests.tools.conftest import Propose, tools_enable

pytestmark = pytest.mark.django_db

SECRET = "tok-4bd0c9e2-rotate-me"


def _since(tenant, seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant_id=tenant.id, seq__gt=seq).order_by("seq"))


def _head(tenant) -> int:
    last = AuditEvent.objects.filter(tenant_id=tenant.id).order_by("-seq").first()
    return last.seq if last else 0


def _clean(tenant) -> None:
    assert list(chain_verify(tenant_id=tenant.id)) == []


def _run_rows(run: ToolRun) -> list[tuple[str, str, int | None]]:
    """(action, actor kind, actor id) of every row about `run`, in order."""
    rows = AuditEvent.objects.filter(target_type="ToolRun", target_id=str(run.id)).order_by("seq")
    for row in rows:
        assert row.tenant_id == run.tenant_id
        assert (row.data["tool"], row.data["run_id"]) == (run.tool, str(run.id))
    return [(r.action, r.actor_kind, r.actor_id) for r in rows]


# ---- configuration ---------------------------------------------------------------------------------------


def test_an_admin_configuring_a_tool_leaves_a_row_naming_the_fields_changed(tenant_a: TenantStaff) -> None:
    tenant, admin = tenant_a.tenant, tenant_a.admin
    head = _head(tenant)  # the company's creation wrote rows of its own
    services.tool_configure(tenant=tenant, name="plan_change", enabled=True, approval="agent", actor=admin)
    services.tool_configure(tenant=tenant, name="plan_change", enabled=False, approval="agent", actor=admin)
    rows = _since(tenant, head)
    tool = TenantTool.objects.get(tenant=tenant, name="plan_change")
    assert [(r.action, r.actor_id, r.actor_kind, r.target_type, r.target_id) for r in rows] == [
        ("tool.configure", admin.id, "staff", "TenantTool", str(tool.id)),
        ("tool.configure", admin.id, "staff", "TenantTool", str(tool.id)),
    ]
    assert rows[0].data == {"tool": "plan_change", "fields": ["approval", "enabled"], "created": True}
    assert rows[1].data == {"tool": "plan_change", "fields": ["enabled"], "created": False}
    _clean(tenant)


def test_connecting_and_rotating_the_secret_never_records_it(tenant_a: TenantStaff, settings) -> None:
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com"]
    tenant, admin = tenant_a.tenant, tenant_a.admin
    head = _head(tenant)
    services.tool_connection_configure(tenant=tenant, adapter="demo", actor=admin)
    services.tool_connection_configure(
        tenant=tenant,
        adapter="http",
        base_url="https://api.example.com/desk",
        auth_secret=SECRET,
        actor=admin,
    )
    services.tool_connection_configure(
        tenant=tenant, adapter="http", base_url="https://api.example.com/desk", auth_secret="", actor=admin
    )
    connection = ToolConnection.objects.get(tenant=tenant)
    rows = _since(tenant, head)
    assert [(r.action, r.actor_id, r.target_type, r.target_id) for r in rows] == [
        ("tool_connection.configure", admin.id, "ToolConnection", str(connection.id)),
        ("secret.rotate", admin.id, "ToolConnection", str(connection.id)),
        ("tool_connection.configure", admin.id, "ToolConnection", str(connection.id)),
        ("secret.rotate", admin.id, "ToolConnection", str(connection.id)),
        ("tool_connection.configure", admin.id, "ToolConnection", str(connection.id)),
    ]
    assert rows[0].data["fields"] == ["adapter", "base_url", "timeout_seconds", "allowed_hosts"]
    assert rows[2].data == {"fields": ["adapter", "base_url"], "adapter": "http"}
    assert (rows[1].data, rows[3].data) == (
        {"field": "auth_secret", "cleared": False},
        {"field": "auth_secret", "cleared": True},
    )
    assert rows[4].data == {"fields": [], "adapter": "http"}
    everything = json.dumps([r.data for r in rows])
    assert SECRET not in everything
    assert "4bd0c9e2" not in everything
    _clean(tenant)


def test_the_tools_page_records_the_signed_in_admin(tenant_a: TenantStaff, client_as) -> None:
    head = _head(tenant_a.tenant)
    page = client_as(tenant_a.admin).post(
        f"/staff/{tenant_a.slug}/tools/", {"action": "connection", "adapter": "demo", "timeout_seconds": "10"}
    )
    assert page.status_code == 302
    [row] = _since(tenant_a.tenant, head)
    assert (row.action, row.actor_id) == ("tool_connection.configure", tenant_a.admin.id)


def test_a_refused_configuration_writes_nothing(tenant_a: TenantStaff, tenant_b: TenantStaff) -> None:
    tenant = tenant_a.tenant
    heads = _head(tenant), _head(tenant_b.tenant)
    with pytest.raises(Forbidden):  # agents decide runs; only admins choose tools
        services.tool_configure(tenant=tenant, name="plan_change", enabled=True, actor=tenant_a.agent)
    with pytest.raises(Forbidden):
        services.tool_connection_configure(tenant=tenant, adapter="demo", actor=tenant_a.editor)
    with pytest.raises(NotFound):  # another company's admin does not learn this one exists
        services.tool_connection_configure(tenant=tenant, adapter="demo", actor=tenant_b.admin)
    assert not TenantTool.objects.filter(tenant=tenant).exists()
    assert not ToolConnection.objects.filter(tenant=tenant).exists()
    assert _since(tenant, heads[0]) == []
    assert _since(tenant_b.tenant, heads[1]) == []


# ---- runs ------------------------------------------------------------------------------------------------


def test_an_approved_change_leaves_its_life_in_the_trail(tools_a: TenantStaff, propose: Propose) -> None:
    run = propose(tools_a.tenant, "plan_change", '{"plan_code": "unlimited-max"}')
    services.tool_run_decide(run=run, approve=True, actor=tools_a.agent)
    done = execution.tool_run_execute(run_id=str(run.id))
    assert done.status == "done"
    assert _run_rows(run) == [
        ("tool_run.awaiting_approval", "assistant", None),
        ("tool_run.approve", "staff", tools_a.agent.id),
        ("tool_run.running", "system", None),
        ("tool_run.done", "system", None),
    ]
    rows = AuditEvent.objects.filter(target_id=str(run.id)).order_by("seq")
    assert [r.data["attempt"] for r in rows] == [0, 0, 1, 1]
    assert rows[1].data["status"] == "queued"
    assert "unlimited" not in json.dumps([r.data for r in rows])  # the arguments never
    _clean(tools_a.tenant)


def test_rejections_and_the_customers_confirmation_are_recorded_with_their_actor(
    tools_a: TenantStaff, propose: Propose
) -> None:
    change = propose(tools_a.tenant, "plan_change", '{"plan_code": "unlimited-max"}')
    services.tool_run_decide(run=change, approve=False, actor=tools_a.admin, note="not today")
    assert _run_rows(change) == [
        ("tool_run.awaiting_approval", "assistant", None),
        ("tool_run.reject", "staff", tools_a.admin.id),
    ]
    ticket = propose(tools_a.tenant, "ticket_create", '{"subject": "Router", "description": "It blinks red"}')
    services.tool_run_decide(run=ticket, approve=True, by_customer=True)
    assert _run_rows(ticket)[1:] == [("tool_run.approve", "customer", None)]
    _clean(tools_a.tenant)


def test_a_refused_call_is_recorded_with_its_reason(tools_a: TenantStaff, propose: Propose) -> None:
    run = propose(tools_a.tenant, "delete_everything", "{}")
    assert _run_rows(run) == [("tool_run.refused", "assistant", None)]
    row = AuditEvent.objects.get(target_id=str(run.id))
    assert (row.data["status"], row.data["error_code"]) == ("refused", "unknown_tool")


def test_a_decision_refused_or_too_late_writes_nothing(
    tools_a: TenantStaff, tenant_b: TenantStaff, propose: Propose
) -> None:
    run = propose(tools_a.tenant, "plan_change", '{"plan_code": "unlimited-max"}')
    ticket = propose(tools_a.tenant, "ticket_create", '{"subject": "Router", "description": "It blinks"}')
    head = _head(tools_a.tenant)
    with pytest.raises(NotFound):  # an agent of another company
        services.tool_run_decide(run=run, approve=True, actor=tenant_b.agent)
    with pytest.raises(Forbidden):  # an editor is no agent
        services.tool_run_decide(run=run, approve=True, actor=tools_a.editor)
    with pytest.raises(Forbidden):  # the customer's confirmation is theirs to give
        services.tool_run_decide(run=ticket, approve=True, actor=tools_a.agent)
    assert _since(tools_a.tenant, head) == []
    services.tool_run_decide(run=run, approve=False, actor=tools_a.agent)
    with pytest.raises(Conflict):
        services.tool_run_decide(run=run, approve=True, actor=tools_a.admin)
    assert [r.action for r in _since(tools_a.tenant, head)] == ["tool_run.reject"]
    run.refresh_from_db()
    assert run.status == "rejected"


@pytest.fixture
def failing_business(tenant_a: TenantStaff, settings) -> Iterator[FakeBusiness]:
    settings.TOOLS_BREAKER_FAILURES = 5
    settings.TOOLS_MAX_RETRIES = 1
    with FakeBusiness(token="tok") as fake:
        settings.TOOLS_ALLOWED_HOSTS = [fake.host_port]
        tools_enable(
            tenant_a.tenant, adapter="http", base_url=fake.base_url, auth_secret="tok", timeout_seconds=1
        )
        yield fake


def test_a_retried_then_failed_run_records_each_attempt(
    tenant_a: TenantStaff, propose: Propose, failing_business: FakeBusiness
) -> None:
    failing_business.behaviour = "error_503"
    run = propose(tenant_a.tenant, "order_lookup", '{"order_number": "NM-100234"}')
    with pytest.raises(execution.RetryLater):
        execution.tool_run_execute(run_id=str(run.id))
    failed = execution.tool_run_execute(run_id=str(run.id))
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert _run_rows(run) == [
        ("tool_run.queued", "assistant", None),
        ("tool_run.running", "system", None),
        ("tool_run.queued", "system", None),
        ("tool_run.running", "system", None),
        ("tool_run.failed", "system", None),
    ]
    rows = AuditEvent.objects.filter(target_id=str(run.id)).order_by("seq")
    assert [(r.data["attempt"], r.data["error_code"]) for r in rows] == [
        (0, None),
        (1, None),
        (1, "unavailable"),
        (2, None),
        (2, "unavailable"),
    ]
    assert "NM-100234" not in json.dumps([r.data for r in rows])
    _clean(tenant_a.tenant)
