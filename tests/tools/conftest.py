"""A company with the demo business system connected and its tools chosen, for the tools tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from apps.accounts.models import Tenant
from apps.core.redis import state_key, state_redis
from apps.telco.services import demo_telco_load
from apps.tools import services
from apps.tools.models import TenantTool, ToolConnection, ToolRun
from tests.conftest import TenantStaff

TOOLS = [
    ("order_lookup", "none"),
    ("bill_explain", "none"),
    ("plans_compare", "none"),
    ("plan_change", "agent"),
    ("ticket_create", "customer"),
]


def tools_enable(tenant: Tenant, *, adapter: str = "demo", **connection: object) -> None:
    demo_telco_load(company=tenant.id)
    services.tool_connection_configure(tenant=tenant, adapter=adapter, **connection)  # type: ignore[arg-type]
    for name, approval in TOOLS:
        services.tool_configure(tenant=tenant, name=name, enabled=True, approval=approval)


@pytest.fixture
def tools_a(tenant_a: TenantStaff) -> TenantStaff:
    tools_enable(tenant_a.tenant)
    return tenant_a


Propose = Callable[..., ToolRun]


@pytest.fixture
def propose() -> Propose:
    """`propose(tenant, name, arguments_json, customer="cust-1001")`: one model tool call, as proposed by
    the assistant, in a conversation of its own."""

    def factory(
        tenant: Tenant,
        name: str,
        arguments: str = "{}",
        *,
        customer: str | None = "cust-1001",
        conversation: uuid.UUID | None = None,
        index: int = 0,
    ) -> ToolRun:
        return services.tool_call_propose(
            tenant=tenant,
            call=services.ToolCallRequest(call_id="call_0", name=name, arguments=arguments),
            index=index,
            customer=customer,
            conversation_ref=conversation or uuid.uuid4(),
            message_ref=uuid.uuid4(),
        )

    return factory


@pytest.fixture(autouse=True)
def _breakers_closed() -> None:
    """Breaker state lives in Redis across tests: every test starts with every adapter's closed."""
    client = state_redis()
    for key in client.scan_iter(match=state_key("breaker", "tool", "*")):
        client.delete(key)


def awaiting_run(tenant, *, customer: str = "cust-1001", plan: str = "plus-20", conversation=None) -> ToolRun:
    """A plan change the assistant proposed, waiting for an agent (for the approval API and page tests)."""
    services.tool_connection_configure(tenant=tenant, adapter="demo")
    services.tool_configure(tenant=tenant, name="plan_change", enabled=True, approval="agent")
    return services.tool_call_propose(
        tenant=tenant,
        call=services.ToolCallRequest(
            call_id="c1", name="plan_change", arguments=json.dumps({"plan_code": plan})
        ),
        index=0,
        customer=customer,
        conversation_ref=conversation or uuid.uuid4(),
        message_ref=uuid.uuid4(),
    )


def run_row(run: ToolRun):
    return ToolRun.objects.filter(pk=run.pk).values().get()


def connection_row(tenant: Tenant):
    return ToolConnection.objects.filter(tenant=tenant).values().first()


def tool_rows(tenant: Tenant):
    return list(TenantTool.objects.for_tenant(tenant).order_by("name").values())
