"""The Django admin's tools pages for the platform operator: they render, the connection's secret never
appears, only the operator sets a company's allowed hosts, and tool runs are read-only."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.core.sealing import unseal
from apps.tools import services
from apps.tools.models import TenantTool, ToolConnection, ToolRun
from apps.tools.services import ToolCallRequest

pytestmark = pytest.mark.django_db

SECRET = "sk-live-4c1d9e7a2b6f8035"


@pytest.fixture
def operator_client(db: None) -> Client:
    operator = User.objects.create_superuser(username="operator", email="op@example.com", password=None)
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def connection(tenant_a, settings) -> ToolConnection:
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com"]
    return services.tool_connection_configure(
        tenant=tenant_a.tenant,
        adapter="http",
        base_url="https://api.example.com/desk",
        auth_secret=SECRET,
        timeout_seconds=5,
    )


@pytest.fixture
def run(tenant_a, connection) -> ToolRun:
    services.tool_configure(tenant=tenant_a.tenant, name="plan_change", enabled=True, approval="agent")
    return services.tool_call_propose(
        tenant=tenant_a.tenant,
        call=ToolCallRequest(call_id="c1", name="plan_change", arguments='{"plan_code": "plus-20"}'),
        index=0,
        customer="cust-1001",
        conversation_ref=uuid.uuid4(),
        message_ref=uuid.uuid4(),
    )


def change_form(connection: ToolConnection, **overrides: str) -> dict[str, str]:
    return {
        "adapter": connection.adapter,
        "base_url": connection.base_url,
        "timeout_seconds": str(connection.timeout_seconds),
        "allowed_hosts": ",".join(connection.allowed_hosts),
        "new_auth_secret": "",
        **overrides,
    }


def test_every_changelist_and_change_page_renders_without_the_secret(
    operator_client: Client, connection: ToolConnection, run: ToolRun
) -> None:
    tool = TenantTool.objects.get(tenant=connection.tenant, name="plan_change")
    pages = [
        "/admin/tools/toolconnection/",
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        "/admin/tools/toolconnection/add/",
        "/admin/tools/tenanttool/",
        f"/admin/tools/tenanttool/{tool.pk}/change/",
        "/admin/tools/tenanttool/add/",
        "/admin/tools/toolrun/",
        f"/admin/tools/toolrun/{run.pk}/change/",
        "/admin/tools/toolrun/?status__exact=awaiting_approval&tool=plan_change",
        "/admin/tools/toolrun/?q=cust-1001",
        f"/admin/tools/toolrun/?q={run.pk}",
    ]
    for url in pages:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url


def test_the_connection_form_has_a_write_only_token_field(
    operator_client: Client, connection: ToolConnection
) -> None:
    html = operator_client.get(f"/admin/tools/toolconnection/{connection.pk}/change/").content.decode()

    assert '<input type="password" name="new_auth_secret" autocomplete="new-password"' in html
    assert 'name="auth_secret"' not in html
    assert 'name="allowed_hosts"' in html


def test_run_search_finds_by_id_and_customer(operator_client: Client, run: ToolRun) -> None:
    by_id = operator_client.get(f"/admin/tools/toolrun/?q={run.pk}")
    by_customer = operator_client.get("/admin/tools/toolrun/?q=cust-1001")
    by_nobody = operator_client.get("/admin/tools/toolrun/?q=cust-9999")

    assert [list(r.context["cl"].result_list) for r in (by_id, by_customer, by_nobody)] == [[run], [run], []]


def test_the_operator_allows_a_host_and_sets_a_new_token(
    operator_client: Client, connection: ToolConnection, settings
) -> None:
    settings.TOOLS_ALLOWED_HOSTS = []

    response = operator_client.post(
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        change_form(
            connection,
            base_url="https://billing.example.net/v2",
            allowed_hosts="billing.example.net, API.example.com",
            new_auth_secret="sk-live-rotated",
        ),
    )

    assert response.status_code == 302
    row = ToolConnection.objects.get(pk=connection.pk)
    assert (row.base_url, row.allowed_hosts, unseal(row.auth_secret)) == (
        "https://billing.example.net/v2",
        ["api.example.com", "billing.example.net"],
        "sk-live-rotated",
    )


def test_an_empty_token_field_keeps_the_stored_one(
    operator_client: Client, connection: ToolConnection
) -> None:
    response = operator_client.post(
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        change_form(connection, timeout_seconds="8"),
    )

    assert response.status_code == 302
    row = ToolConnection.objects.get(pk=connection.pk)
    assert (row.timeout_seconds, unseal(row.auth_secret)) == (8.0, SECRET)


def test_a_url_on_a_host_not_allowed_is_a_form_error_and_changes_nothing(
    operator_client: Client, connection: ToolConnection, settings
) -> None:
    settings.TOOLS_ALLOWED_HOSTS = []
    before = ToolConnection.objects.filter(pk=connection.pk).values().get()

    response = operator_client.post(
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        change_form(connection, base_url="https://evil.example/", new_auth_secret="x"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "base_url": ["Add evil.example to the allowed hosts first."]
    }
    assert ToolConnection.objects.filter(pk=connection.pk).values().get() == before


@pytest.mark.parametrize(
    ("base_url", "needed"),
    [
        ("https://api.example.com:8443/desk", "api.example.com:8443"),
        ("http://127.0.0.1:5432/", "127.0.0.1:5432"),
        ("http://[::1]:6379/", "[::1]:6379"),
    ],
)
def test_a_url_on_an_allowed_host_but_another_port_is_a_form_error(
    operator_client: Client, connection: ToolConnection, settings, base_url: str, needed: str
) -> None:
    settings.TOOLS_ALLOWED_HOSTS = []
    before = ToolConnection.objects.filter(pk=connection.pk).values().get()

    response = operator_client.post(
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        change_form(connection, base_url=base_url, allowed_hosts="api.example.com, 127.0.0.1, [::1]"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "base_url": [f"Add {needed} to the allowed hosts first."]
    }
    assert ToolConnection.objects.filter(pk=connection.pk).values().get() == before


def test_a_url_with_a_port_out_of_range_is_a_form_error(
    operator_client: Client, connection: ToolConnection
) -> None:
    before = ToolConnection.objects.filter(pk=connection.pk).values().get()

    response = operator_client.post(
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        change_form(connection, base_url="https://api.example.com:99999/desk"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "base_url": ["The URL's port must be a number from 1 to 65535."]
    }
    assert ToolConnection.objects.filter(pk=connection.pk).values().get() == before


def test_the_operator_allows_a_host_on_a_port(
    operator_client: Client, connection: ToolConnection, settings
) -> None:
    settings.TOOLS_ALLOWED_HOSTS = []

    response = operator_client.post(
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        change_form(
            connection,
            base_url="https://billing.example.net:8443/v2",
            allowed_hosts="Billing.Example.NET:8443, [0:0::1]:9000",
        ),
    )

    assert response.status_code == 302
    row = ToolConnection.objects.get(pk=connection.pk)
    assert (row.base_url, row.allowed_hosts) == (
        "https://billing.example.net:8443/v2",
        ["[::1]:9000", "billing.example.net:8443"],
    )


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("api.example.com:99999", "api.example.com:99999: the port must be a number from 1 to 65535"),
        ("api.example.com:", "api.example.com:: the port must be a number from 1 to 65535"),
        ("::1", "::1: write an IPv6 address in brackets, like [::1] or [::1]:8000"),
        ("[::1", "[::1: write an IPv6 address in brackets, like [::1] or [::1]:8000"),
        ("[api.example.com]:443", "[api.example.com]:443: api.example.com is not an IPv6 address"),
        ("https://api.example.com", "https://api.example.com: write a host name or address, not a URL"),
        ("api.example.com/v1", "api.example.com/v1: write a host name or address, not a URL"),
        ("user@api.example.com", "user@api.example.com: write a host name or address, not a URL"),
    ],
)
def test_a_malformed_allowed_host_is_a_form_error_and_changes_nothing(
    operator_client: Client, connection: ToolConnection, entry: str, error: str
) -> None:
    before = ToolConnection.objects.filter(pk=connection.pk).values().get()

    response = operator_client.post(
        f"/admin/tools/toolconnection/{connection.pk}/change/",
        change_form(connection, allowed_hosts=f"api.example.com, {entry}"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"allowed_hosts": [error]}
    assert ToolConnection.objects.filter(pk=connection.pk).values().get() == before


def test_the_operator_connects_a_company_from_the_add_page(operator_client: Client, tenant_b) -> None:
    response = operator_client.post(
        "/admin/tools/toolconnection/add/",
        {
            "tenant": str(tenant_b.tenant.pk),
            "adapter": "demo",
            "base_url": "",
            "timeout_seconds": "10",
            "allowed_hosts": "",
            "new_auth_secret": "",
        },
    )

    assert response.status_code == 302
    row = ToolConnection.objects.get(tenant=tenant_b.tenant)
    assert (row.adapter, row.auth_secret, row.allowed_hosts) == ("demo", "", [])
    assert response["Location"] == "/admin/tools/toolconnection/"


def test_a_change_tool_cannot_be_set_to_run_unconfirmed(operator_client: Client, run: ToolRun) -> None:
    tool = TenantTool.objects.get(tenant=run.tenant, name="plan_change")

    response = operator_client.post(
        f"/admin/tools/tenanttool/{tool.pk}/change/", {"enabled": "on", "approval": "none"}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "approval": ["This tool changes data: an agent or the customer must confirm it."]
    }
    assert TenantTool.objects.get(pk=tool.pk).approval == "agent"


def test_runs_cannot_be_added_changed_or_deleted(operator_client: Client, run: ToolRun) -> None:
    before = ToolRun.objects.filter(pk=run.pk).values().get()

    assert operator_client.get("/admin/tools/toolrun/add/").status_code == 403
    assert (
        operator_client.post(f"/admin/tools/toolrun/{run.pk}/change/", {"status": "done"}).status_code == 403
    )
    assert operator_client.post(f"/admin/tools/toolrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ToolRun.objects.filter(pk=run.pk).values().get() == before


def test_the_operator_enables_a_tool_from_the_add_page(operator_client: Client, tenant_b) -> None:
    response = operator_client.post(
        "/admin/tools/tenanttool/add/",
        {"tenant": str(tenant_b.tenant.pk), "name": "order_lookup", "enabled": "on", "approval": "none"},
    )

    assert response.status_code == 302
    tools = TenantTool.objects.for_tenant(tenant_b.tenant)
    assert list(tools.values_list("name", "enabled", "approval")) == [("order_lookup", True, "none")]

    again = operator_client.post(
        "/admin/tools/tenanttool/add/",
        {"tenant": str(tenant_b.tenant.pk), "name": "order_lookup", "approval": "agent"},
    )

    assert again.status_code == 200
    assert again.context["adminform"].form.non_field_errors() == [
        "Tenant tool with this Tenant and Name already exists."
    ]
    assert TenantTool.objects.for_tenant(tenant_b.tenant).count() == 1
