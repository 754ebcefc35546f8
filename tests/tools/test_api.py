"""The tools REST API: admins choose tools and connect the business system, agents decide on proposals.

Runs are made the way the assistant makes them, through `tool_call_propose`; nothing here needs a worker
(the tests run inside a transaction that never commits, so no task is ever sent).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.core.sealing import unseal
from apps.tools import services
from apps.tools.models import ToolConnection, ToolRun
from apps.tools.registry import tool_specs
from apps.tools.services import ToolCallRequest
from tests.tools.conftest import awaiting_run, connection_row, run_row, tool_rows

pytestmark = pytest.mark.django_db

SECRET = "sk-live-4c1d9e7a2b6f8035"


def base(staff) -> str:
    return f"/api/v1/tenants/{staff.slug}"


def unconfigured(name: str) -> dict[str, Any]:
    spec = next(s for s in tool_specs() if s.name == name)
    return {
        "name": spec.name,
        "label": spec.label,
        "description": spec.description,
        "effect": spec.effect,
        "enabled": False,
        "approval": "agent" if spec.changes_data else "none",
        "configured": False,
        "examples": [],
    }


# ---- tool settings -----------------------------------------------------------------------------------


def test_admin_lists_every_tool_and_the_connection_without_the_secret(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com"]
    services.tool_connection_configure(
        tenant=tenant_a.tenant,
        adapter="http",
        base_url="https://api.example.com/desk",
        auth_secret=SECRET,
        timeout_seconds=5,
    )
    services.tool_configure(tenant=tenant_a.tenant, name="plan_change", enabled=True, approval="customer")

    response = api_admin_a.get(f"{base(tenant_a)}/tools/")

    assert response.status_code == 200
    body = response.json()
    expected = [unconfigured(spec.name) for spec in tool_specs()]
    for row in expected:
        if row["name"] == "plan_change":
            row.update(enabled=True, approval="customer", configured=True)
    assert body["tools"] == expected
    assert body["connection"] == {
        "adapter": "http",
        "base_url": "https://api.example.com/desk",
        "timeout_seconds": 5.0,
        "has_secret": True,
        "allowed_hosts": ["api.example.com"],
    }
    assert SECRET not in response.content.decode()


def test_a_company_without_a_connection_sees_the_defaults(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []

    body = api_admin_a.get(f"{base(tenant_a)}/tools/").json()

    assert body["tools"] == [unconfigured(spec.name) for spec in tool_specs()]
    assert body["connection"] == {
        "adapter": "none",
        "base_url": "",
        "timeout_seconds": 10.0,
        "has_secret": False,
        "allowed_hosts": [],
    }
    assert connection_row(tenant_a.tenant) is None


def test_admin_enables_a_tool_and_chooses_its_approval(tenant_a, api_admin_a):
    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/plan_change/", {"enabled": True, "approval": "customer"}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        **unconfigured("plan_change"),
        "enabled": True,
        "approval": "customer",
        "configured": True,
    }
    assert [(t["name"], t["enabled"], t["approval"]) for t in tool_rows(tenant_a.tenant)] == [
        ("plan_change", True, "customer")
    ]


def test_admin_gives_the_company_s_own_example_requests_and_they_are_stored_redacted(tenant_a, api_admin_a):
    examples = ["  Wo ist mein   Paket? ", "Has my Nimbus Box shipped? Mail jane.doe@example.com", ""]

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/order_lookup/", {"enabled": True, "examples": examples}, format="json"
    )

    assert response.status_code == 200
    stored = ["Wo ist mein Paket?", "Has my Nimbus Box shipped? Mail <EMAIL_ADDRESS>"]
    assert response.json()["examples"] == stored
    # Saving again without examples keeps them.
    again = api_admin_a.put(f"{base(tenant_a)}/tools/order_lookup/", {"enabled": False}, format="json")
    assert (again.json()["enabled"], again.json()["examples"]) == (False, stored)
    assert [(t["name"], t["examples"]) for t in tool_rows(tenant_a.tenant)] == [("order_lookup", stored)]


def test_too_many_example_requests_are_refused_and_nothing_changes(tenant_a, api_admin_a):
    services.tool_configure(
        tenant=tenant_a.tenant, name="order_lookup", enabled=True, examples=["Mein Paket?"]
    )
    before = tool_rows(tenant_a.tenant)

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/order_lookup/",
        {"enabled": True, "examples": [f"Where is parcel {n}?" for n in range(31)]},
        format="json",
    )

    assert response.status_code == 400
    assert tool_rows(tenant_a.tenant) == before


def test_without_an_approval_a_change_tool_waits_for_an_agent(tenant_a, api_admin_a):
    response = api_admin_a.put(f"{base(tenant_a)}/tools/ticket_create/", {"enabled": True}, format="json")

    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["approval"]) == (True, "agent")


def test_a_change_tool_cannot_run_unconfirmed(tenant_a, api_admin_a):
    services.tool_configure(tenant=tenant_a.tenant, name="plan_change", enabled=False, approval="agent")
    before = tool_rows(tenant_a.tenant)

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/plan_change/", {"enabled": True, "approval": "none"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": "Change plan changes data: an agent or the customer must confirm it.",
        "retryable": False,
    }
    assert tool_rows(tenant_a.tenant) == before


def test_an_unknown_tool_is_a_clear_error(tenant_a, api_admin_a):
    response = api_admin_a.put(f"{base(tenant_a)}/tools/launch_rockets/", {"enabled": True}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": "There is no tool named 'launch_rockets'.",
        "retryable": False,
    }
    assert tool_rows(tenant_a.tenant) == []


def test_an_invalid_approval_is_a_field_error(tenant_a, api_admin_a):
    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/order_lookup/", {"enabled": True, "approval": "boss"}, format="json"
    )

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], list(body["fields"])) == ("bad_request", ["approval"])
    assert tool_rows(tenant_a.tenant) == []


# ---- the connection ----------------------------------------------------------------------------------


def test_admin_connects_the_demo_business_system(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/connection/", {"adapter": "demo", "timeout_seconds": 4}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "adapter": "demo",
        "base_url": "",
        "timeout_seconds": 4.0,
        "has_secret": False,
        "allowed_hosts": [],
    }
    row = connection_row(tenant_a.tenant)
    assert row is not None
    assert (row["adapter"], row["base_url"], row["timeout_seconds"]) == ("demo", "", 4.0)


def test_an_http_url_on_a_host_not_allowed_is_refused_and_nothing_changes(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo", auth_secret=SECRET)
    before = connection_row(tenant_a.tenant)

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/connection/",
        {"adapter": "http", "base_url": "https://api.example.com/desk", "auth_secret": "other"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": "That host is not on the list of hosts this installation may call. "
        "Ask the platform operator to allow it.",
        "retryable": False,
    }
    assert connection_row(tenant_a.tenant) == before


def test_an_http_url_on_an_allowed_host_is_accepted_and_the_secret_never_comes_back(
    tenant_a, api_admin_a, settings
):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com"]

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/connection/",
        {"adapter": "http", "base_url": "https://api.example.com/desk", "auth_secret": SECRET},
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {
        "adapter": "http",
        "base_url": "https://api.example.com/desk",
        "timeout_seconds": 10.0,
        "has_secret": True,
        "allowed_hosts": ["api.example.com"],
    }
    assert SECRET not in response.content.decode()
    row = connection_row(tenant_a.tenant)
    assert row is not None
    assert (row["adapter"], row["base_url"], unseal(row["auth_secret"])) == (
        "http",
        "https://api.example.com/desk",
        SECRET,
    )


def test_an_allowed_host_on_another_port_is_refused_and_nothing_changes(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com", "127.0.0.1"]
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo", auth_secret=SECRET)
    before = connection_row(tenant_a.tenant)

    for base_url in ("https://api.example.com:8443/desk", "http://127.0.0.1:6379/"):
        response = api_admin_a.put(
            f"{base(tenant_a)}/tools/connection/", {"adapter": "http", "base_url": base_url}, format="json"
        )

        assert response.status_code == 400
        assert response.json()["message"] == (
            "That host is not on the list of hosts this installation may call. "
            "Ask the platform operator to allow it."
        )
    assert connection_row(tenant_a.tenant) == before


def test_an_allowed_host_and_port_is_accepted_and_shown(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = ["API.example.com:8443", "[::1]:9000"]

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/connection/",
        {"adapter": "http", "base_url": "https://api.example.com:8443/desk"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["allowed_hosts"] == ["[::1]:9000", "api.example.com:8443"]
    assert connection_row(tenant_a.tenant)["base_url"] == "https://api.example.com:8443/desk"


def test_an_omitted_secret_is_kept_and_an_empty_one_removes_it(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com"]
    url = f"{base(tenant_a)}/tools/connection/"
    body = {"adapter": "http", "base_url": "https://api.example.com/desk"}
    api_admin_a.put(url, {**body, "auth_secret": SECRET}, format="json")

    kept = api_admin_a.put(url, {**body, "timeout_seconds": 3}, format="json")

    assert (kept.status_code, kept.json()["has_secret"]) == (200, True)
    assert unseal(ToolConnection.objects.get(tenant=tenant_a.tenant).auth_secret) == SECRET

    removed = api_admin_a.put(url, {**body, "auth_secret": ""}, format="json")

    assert (removed.status_code, removed.json()["has_secret"]) == (200, False)
    assert unseal(ToolConnection.objects.get(tenant=tenant_a.tenant).auth_secret) == ""


def test_a_company_admin_cannot_widen_the_allowed_hosts(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo")
    before = connection_row(tenant_a.tenant)

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/connection/",
        {"adapter": "http", "base_url": "https://evil.example/", "allowed_hosts": ["evil.example"]},
        format="json",
    )

    assert response.status_code == 400
    assert connection_row(tenant_a.tenant) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"adapter": "ftp"}, "adapter"),
        ({"adapter": "http", "base_url": "file:///etc/passwd"}, "base_url"),
        ({"adapter": "demo", "timeout_seconds": "soon"}, "timeout_seconds"),
    ],
)
def test_invalid_connection_fields_are_field_errors(tenant_a, api_admin_a, body, field):
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo")
    before = connection_row(tenant_a.tenant)

    response = api_admin_a.put(f"{base(tenant_a)}/tools/connection/", body, format="json")

    assert response.status_code == 400
    assert (response.json()["code"], list(response.json()["fields"])) == ("bad_request", [field])
    assert connection_row(tenant_a.tenant) == before


def test_a_timeout_out_of_range_is_refused(tenant_a, api_admin_a):
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo")
    before = connection_row(tenant_a.tenant)

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/connection/", {"adapter": "demo", "timeout_seconds": 61}, format="json"
    )

    assert (response.status_code, response.json()["message"]) == (
        400,
        "The timeout must be between 0 and 60 seconds.",
    )
    assert connection_row(tenant_a.tenant) == before


@pytest.mark.parametrize("who", ["agent", "editor", "anonymous", "other_admin"])
def test_only_the_companys_admins_reach_its_tool_settings(tenant_a, tenant_b, api_client_as, who):
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo", auth_secret=SECRET)
    services.tool_configure(tenant=tenant_a.tenant, name="order_lookup", enabled=True)
    connection_before, tools_before = connection_row(tenant_a.tenant), tool_rows(tenant_a.tenant)
    client = api_client_as(
        {
            "agent": tenant_a.agent,
            "editor": tenant_a.editor,
            "anonymous": None,
            "other_admin": tenant_b.admin,
        }[who]
    )
    expected = {
        "agent": (403, "forbidden"),
        "editor": (403, "forbidden"),
        "anonymous": (401, "unauthorized"),
        "other_admin": (404, "not_found"),
    }[who]

    responses = [
        client.get(f"{base(tenant_a)}/tools/"),
        client.put(f"{base(tenant_a)}/tools/order_lookup/", {"enabled": False}, format="json"),
        client.put(f"{base(tenant_a)}/tools/connection/", {"adapter": "none"}, format="json"),
    ]

    assert [(r.status_code, r.json()["code"]) for r in responses] == [expected] * 3
    assert all(SECRET not in r.content.decode() for r in responses)
    assert connection_row(tenant_a.tenant) == connection_before
    assert tool_rows(tenant_a.tenant) == tools_before


# ---- runs and decisions ------------------------------------------------------------------------------


def test_an_agent_lists_runs_with_their_proposal(tenant_a, api_agent_a):
    conversation = uuid.uuid4()
    run = awaiting_run(tenant_a.tenant, conversation=conversation)

    response = api_agent_a.get(f"{base(tenant_a)}/tool-runs/")

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": str(run.id),
            "tool": "plan_change",
            "label": "Change plan",
            "status": "awaiting_approval",
            "approval": "agent",
            "proposal": "change your plan to plus-20",
            "arguments": {"plan_code": "plus-20"},
            "customer": "cust-1001",
            "summary": "",
            "error_code": "",
            "error_message": "",
            "attempts": 0,
            "duration_ms": None,
            "conversation_ref": str(conversation),
            "created_at": response.json()[0]["created_at"],
            "decided_by": None,
            "decided_at": None,
            "decided_by_customer": False,
        }
    ]
    assert response.json()[0]["created_at"].startswith(run.created_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_runs_filter_by_status_and_conversation(tenant_a, api_agent_a):
    conversation = uuid.uuid4()
    waiting = awaiting_run(tenant_a.tenant, conversation=conversation)
    refused = services.tool_call_propose(
        tenant=tenant_a.tenant,
        call=ToolCallRequest(call_id="c2", name="launch_rockets", arguments="{}"),
        index=0,
        customer="cust-1002",
        conversation_ref=uuid.uuid4(),
        message_ref=uuid.uuid4(),
    )
    url = f"{base(tenant_a)}/tool-runs/"

    def ids(params: dict[str, str]) -> list[str]:
        return [r["id"] for r in api_agent_a.get(url, params).json()]

    assert ids({}) == [str(refused.id), str(waiting.id)]
    assert ids({"status": "refused"}) == [str(refused.id)]
    assert ids({"status": "awaiting_approval"}) == [str(waiting.id)]
    assert ids({"conversation": str(conversation)}) == [str(waiting.id)]
    assert ids({"status": "done"}) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"status": "finished"},
            "`status` must be one of refused, awaiting_approval, rejected, queued, running, done, failed.",
        ),
        ({"conversation": "42"}, "`conversation` must be a conversation id (a UUID)."),
    ],
)
def test_invalid_run_filters_are_refused(tenant_a, api_agent_a, params, message):
    response = api_agent_a.get(f"{base(tenant_a)}/tool-runs/", params)

    assert response.status_code == 400
    assert response.json() == {"code": "bad_request", "message": message, "retryable": False}


def test_runs_are_limited_to_the_newest_hundred(tenant_a, api_agent_a):
    for index in range(101):
        services.tool_call_propose(
            tenant=tenant_a.tenant,
            call=ToolCallRequest(call_id=f"c{index}", name="unknown", arguments="{}"),
            index=0,
            customer="",
            conversation_ref=uuid.uuid4(),
            message_ref=uuid.uuid4(),
        )
    newest = list(ToolRun.objects.for_tenant(tenant_a.tenant).order_by("-created_at")[:100])

    body = api_agent_a.get(f"{base(tenant_a)}/tool-runs/").json()

    assert [r["id"] for r in body] == [str(r.id) for r in newest]


def test_runs_of_another_company_are_never_listed(tenant_a, tenant_b, api_agent_a, api_agent_b):
    awaiting_run(tenant_b.tenant)

    assert api_agent_a.get(f"{base(tenant_a)}/tool-runs/").json() == []
    response = api_agent_b.get(f"{base(tenant_a)}/tool-runs/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.parametrize("who", ["agent", "admin"])
def test_an_agent_or_admin_approves_and_the_run_is_queued(tenant_a, api_client_as, who):
    user = getattr(tenant_a, who)
    run = awaiting_run(tenant_a.tenant)

    response = api_client_as(user).post(
        f"{base(tenant_a)}/tool-runs/{run.id}/decision/", {"approve": True}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["decided_by"], body["decided_by_customer"]) == (
        "queued",
        user.username,
        False,
    )
    assert body["decided_at"] is not None
    row = run_row(run)
    assert (row["status"], row["decided_by_id"], row["decided_by_customer"]) == ("queued", user.id, False)
    assert row["queued_at"] == row["decided_at"]


def test_a_second_decision_is_a_conflict_and_changes_nothing(tenant_a, api_agent_a, api_admin_a):
    run = awaiting_run(tenant_a.tenant)
    url = f"{base(tenant_a)}/tool-runs/{run.id}/decision/"
    assert api_agent_a.post(url, {"approve": True}, format="json").status_code == 200
    before = run_row(run)

    response = api_admin_a.post(url, {"approve": False, "note": "No."}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "code": "conflict",
        "message": "This request was already decided.",
        "retryable": False,
    }
    assert run_row(run) == before


def test_an_agent_rejects_with_a_note(tenant_a, api_agent_a):
    run = awaiting_run(tenant_a.tenant)

    response = api_agent_a.post(
        f"{base(tenant_a)}/tool-runs/{run.id}/decision/",
        {"approve": False, "note": "The customer changed their mind on the phone."},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["decided_by"], body["error_message"], body["summary"]) == (
        "rejected",
        tenant_a.agent.username,
        "The customer changed their mind on the phone.",
        "A colleague declined this request, so nothing was changed.",
    )
    row = run_row(run)
    assert (row["status"], row["queued_at"], row["finished_at"]) == ("rejected", None, row["decided_at"])


@pytest.mark.parametrize(
    "body",
    [{}, {"approve": "perhaps"}, {"approve": True, "note": "x" * 301}],
    ids=["missing", "not_a_bool", "note_too_long"],
)
def test_an_invalid_decision_is_refused_and_changes_nothing(tenant_a, api_agent_a, body):
    run = awaiting_run(tenant_a.tenant)
    before = run_row(run)

    response = api_agent_a.post(f"{base(tenant_a)}/tool-runs/{run.id}/decision/", body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "bad_request")
    assert run_row(run) == before


@pytest.mark.parametrize("who", ["editor", "anonymous", "other_agent", "other_admin"])
def test_only_the_companys_agents_and_admins_decide(tenant_a, tenant_b, api_client_as, who):
    run = awaiting_run(tenant_a.tenant)
    before = run_row(run)
    client = api_client_as(
        {
            "editor": tenant_a.editor,
            "anonymous": None,
            "other_agent": tenant_b.agent,
            "other_admin": tenant_b.admin,
        }[who]
    )
    expected = {
        "editor": (403, "forbidden"),
        "anonymous": (401, "unauthorized"),
        "other_agent": (404, "not_found"),
        "other_admin": (404, "not_found"),
    }[who]

    responses = [
        client.get(f"{base(tenant_a)}/tool-runs/"),
        client.post(f"{base(tenant_a)}/tool-runs/{run.id}/decision/", {"approve": True}, format="json"),
    ]

    assert [(r.status_code, r.json()["code"]) for r in responses] == [expected] * 2
    assert run_row(run) == before


def test_another_companys_run_under_my_slug_is_not_found(tenant_a, tenant_b, api_agent_a):
    theirs = awaiting_run(tenant_b.tenant)
    before = run_row(theirs)

    response = api_agent_a.post(
        f"{base(tenant_a)}/tool-runs/{theirs.id}/decision/", {"approve": True}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert run_row(theirs) == before


def test_the_schema_lists_the_tools_api(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    paths = schema["paths"]
    assert set(paths["/api/v1/tenants/{slug}/tools/"]) == {"get"}
    assert set(paths["/api/v1/tenants/{slug}/tools/{name}/"]) == {"put"}
    assert set(paths["/api/v1/tenants/{slug}/tools/connection/"]) == {"put"}
    assert set(paths["/api/v1/tenants/{slug}/tool-runs/"]) == {"get"}
    assert set(paths["/api/v1/tenants/{slug}/tool-runs/{run_id}/decision/"]) == {"post"}
    components = schema["components"]["schemas"]
    assert set(components["ToolConnectionInput"]["properties"]) == {
        "adapter",
        "base_url",
        "auth_secret",
        "timeout_seconds",
    }
    assert set(components["ToolConnectionOutput"]["properties"]) == {
        "adapter",
        "base_url",
        "timeout_seconds",
        "has_secret",
        "allowed_hosts",
    }
    assert {"proposal", "label", "decided_by"} <= set(components["ToolRunOutput"]["properties"])


def test_a_refused_first_connection_leaves_no_row_behind(tenant_a, api_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []

    response = api_admin_a.put(
        f"{base(tenant_a)}/tools/connection/",
        {"adapter": "http", "base_url": "https://api.example.com/desk"},
        format="json",
    )

    assert response.status_code == 400
    assert connection_row(tenant_a.tenant) is None
