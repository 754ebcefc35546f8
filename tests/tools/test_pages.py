"""The tools page through the Django test client: who sees which section, approving and rejecting what the
assistant proposes, and the admin's tool and connection forms. The connection's secret never reaches HTML.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from apps.core.sealing import unseal
from apps.tools import services
from apps.tools.models import ToolConnection
from tests.tools.conftest import awaiting_run, connection_row, run_row, tool_rows

pytestmark = pytest.mark.django_db

SECRET = "sk-live-4c1d9e7a2b6f8035"
FORBIDDEN_TEXT = "You don&#x27;t have permission to do that."
NOT_FOUND_TEXT = "That doesn&#x27;t exist, or you can&#x27;t see it."


def page_url(slug: str = "tenant-a") -> str:
    return f"/staff/{slug}/tools/"


def messages_of(response) -> list[tuple[str, str]]:
    found = [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]
    if response.status_code == 302:
        response.client.get(response["Location"])  # shows (and so consumes) the messages, as a browser would
    return found


def post(client: Client, data: dict[str, str], slug: str = "tenant-a"):
    response = client.post(page_url(slug), data)
    assert (response.status_code, response["Location"]) == (302, page_url(slug))
    return response


def section_headings(html: str) -> list[str]:
    return re.findall(r"<h2 id=\"[a-z-]+\">([^<]+)</h2>", html)


# ---- who sees what -----------------------------------------------------------------------------------


def test_admin_sees_approvals_runs_tools_and_the_connection(tenant_a, client_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com"]
    services.tool_connection_configure(
        tenant=tenant_a.tenant,
        adapter="http",
        base_url="https://api.example.com/desk",
        auth_secret=SECRET,
        timeout_seconds=5,
    )

    response = client_admin_a.get(page_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert section_headings(html) == [
        "Waiting for approval",
        "Recent runs",
        "Tools the assistant may use",
        "Business system connection",
    ]
    assert SECRET not in html
    assert (
        '<input type="password" id="auth_secret" name="auth_secret" value="" autocomplete="new-password"'
        in html
    )
    assert "A token is stored. Leave empty to keep it." in html
    assert 'value="https://api.example.com/desk"' in html
    assert '<option value="http" selected>' in html
    assert "<code>api.example.com</code>" in html


def test_a_change_tool_offers_no_unconfirmed_approval(tenant_a, client_admin_a):
    html = client_admin_a.get(page_url()).content.decode()

    plan_change = re.search(r'<select id="approval-plan_change".*?</select>', html, re.S)
    order_lookup = re.search(r'<select id="approval-order_lookup".*?</select>', html, re.S)
    assert plan_change is not None
    assert order_lookup is not None
    assert re.findall(r'<option value="(\w+)"', plan_change.group()) == ["customer", "agent"]
    assert re.findall(r'<option value="(\w+)"', order_lookup.group()) == ["none", "customer", "agent"]
    label = '<label class="visually-hidden" for="approval-plan_change">Who approves Change plan</label>'
    assert label in html
    assert "No business system is connected yet, so no tool is offered." in html


def test_agent_sees_approvals_and_runs_but_no_settings(tenant_a, client_agent_a):
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo", auth_secret=SECRET)

    response = client_agent_a.get(page_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert section_headings(html) == ["Waiting for approval", "Recent runs"]
    assert 'name="auth_secret"' not in html
    assert SECRET not in html


def test_empty_states_say_what_will_appear(tenant_a, client_agent_a):
    html = client_agent_a.get(page_url()).content.decode()

    assert "<h3>Nothing is waiting for approval.</h3>" in html
    assert "<h3>No tool has run yet.</h3>" in html


def test_an_editor_is_forbidden(tenant_a, client_editor_a):
    response = client_editor_a.get(page_url())

    assert response.status_code == 403
    assert FORBIDDEN_TEXT in response.content.decode()


def test_another_companys_staff_get_not_found_and_change_nothing(tenant_a, client_agent_b, client_admin_b):
    run = awaiting_run(tenant_a.tenant)
    before_run, before_connection = run_row(run), connection_row(tenant_a.tenant)

    assert client_agent_b.get(page_url()).status_code == 404
    decided = client_agent_b.post(page_url(), {"action": "decide", "run": str(run.id), "decision": "approve"})
    connected = client_admin_b.post(
        page_url(), {"action": "connection", "adapter": "none", "timeout_seconds": "10"}
    )

    assert (decided.status_code, connected.status_code) == (404, 404)
    assert NOT_FOUND_TEXT in decided.content.decode()
    assert run_row(run) == before_run
    assert connection_row(tenant_a.tenant) == before_connection


def test_anonymous_visitors_are_sent_to_sign_in(tenant_a, client_as):
    response = client_as(None).get(page_url())

    assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={page_url()}")


def test_the_settings_page_links_the_tools_page_for_agents_and_admins(
    tenant_a, client_admin_a, client_agent_a, client_editor_a
):
    link = f'<a href="{page_url()}">Tools and approvals</a>'
    settings_url = f"/staff/{tenant_a.slug}/settings/"

    assert link in client_admin_a.get(settings_url).content.decode()
    assert link in client_agent_a.get(settings_url).content.decode()
    assert link not in client_editor_a.get(settings_url).content.decode()


# ---- approving and rejecting -------------------------------------------------------------------------


def test_a_waiting_proposal_is_listed_with_its_facts_and_buttons(tenant_a, client_agent_a):
    conversation = uuid.uuid4()
    run = awaiting_run(tenant_a.tenant, conversation=conversation)

    html = client_agent_a.get(page_url()).content.decode()

    assert "<h3>Change plan</h3>" in html
    assert "The assistant proposes: <strong>Change your plan to plus-20</strong>" in html
    assert "<code>cust-1001</code>" in html
    assert f"<code>{conversation}</code>" in html
    assert f'<input type="hidden" name="run" value="{run.id}">' in html
    assert f'<label for="note-{run.id}">Note (optional, kept with the decision)</label>' in html
    assert (
        '<button type="submit" name="decision" value="approve">Approve'
        '<span class="visually-hidden">: change your plan to plus-20</span></button>'
    ) in html
    assert 'name="decision" value="reject"' in html
    assert html.count("csrfmiddlewaretoken") == 2  # the decision form and the sign-out form


def test_an_agent_approves_from_the_page(tenant_a, client_agent_a):
    run = awaiting_run(tenant_a.tenant)

    response = post(client_agent_a, {"action": "decide", "run": str(run.id), "decision": "approve"})

    assert messages_of(response) == [
        ("success", "Approved “change your plan to plus-20” for cust-1001. It runs now.")
    ]
    row = run_row(run)
    assert (row["status"], row["decided_by_id"]) == ("queued", tenant_a.agent.id)
    html = client_agent_a.get(page_url()).content.decode()
    assert "<h3>Nothing is waiting for approval.</h3>" in html
    assert '<span class="kb-badge" data-status="queued">Queued</span>' in html
    assert f"Decided by {tenant_a.agent.username}" in html


def test_an_admin_rejects_from_the_page_with_a_note(tenant_a, client_admin_a):
    run = awaiting_run(tenant_a.tenant)

    response = post(
        client_admin_a,
        {"action": "decide", "run": str(run.id), "decision": "reject", "note": "Not during a dispute."},
    )

    assert messages_of(response) == [
        ("success", "Rejected “change your plan to plus-20”. The customer is told nothing was changed.")
    ]
    row = run_row(run)
    assert (row["status"], row["decided_by_id"], row["error_message"]) == (
        "rejected",
        tenant_a.admin.id,
        "Not during a dispute.",
    )
    html = client_admin_a.get(page_url()).content.decode()
    assert '<span class="kb-badge" data-status="failed">Rejected</span>' in html
    assert "A colleague declined this request, so nothing was changed." in html


def test_a_second_decision_on_the_page_says_so_and_changes_nothing(tenant_a, client_agent_a, client_admin_a):
    run = awaiting_run(tenant_a.tenant)
    post(client_agent_a, {"action": "decide", "run": str(run.id), "decision": "approve"})
    before = run_row(run)

    response = post(client_admin_a, {"action": "decide", "run": str(run.id), "decision": "reject"})

    assert messages_of(response) == [("error", "This request was already decided.")]
    assert run_row(run) == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "decide", "decision": "maybe"}, "Choose Approve or Reject."),
        ({"action": "decide", "run": "not-a-uuid", "decision": "approve"}, NOT_FOUND_TEXT),
        ({"action": "launch"}, "That action isn't available on this page."),
    ],
    ids=["no_decision", "bad_run_id", "unknown_action"],
)
def test_a_malformed_decision_is_refused_and_changes_nothing(tenant_a, client_agent_a, data, message):
    run = awaiting_run(tenant_a.tenant)
    before = run_row(run)
    data = {"run": str(run.id), **data}

    response = post(client_agent_a, data)

    assert messages_of(response) == [("error", message.replace("&#x27;", "'"))]
    assert run_row(run) == before


def test_another_companys_run_posted_to_my_page_is_not_found(tenant_a, tenant_b, client_agent_a):
    theirs = awaiting_run(tenant_b.tenant)
    before = run_row(theirs)

    response = post(client_agent_a, {"action": "decide", "run": str(theirs.id), "decision": "approve"})

    assert messages_of(response) == [("error", "That doesn't exist, or you can't see it.")]
    assert run_row(theirs) == before


def test_a_decision_without_the_csrf_token_is_refused(tenant_a):
    run = awaiting_run(tenant_a.tenant)
    before = run_row(run)
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.agent)

    response = client.post(page_url(), {"action": "decide", "run": str(run.id), "decision": "approve"})

    assert response.status_code == 403
    assert run_row(run) == before


# ---- the admin's forms -------------------------------------------------------------------------------


def test_admin_enables_and_disables_a_tool(tenant_a, client_admin_a):
    enabled = post(
        client_admin_a, {"action": "tool", "name": "plan_change", "enabled": "on", "approval": "customer"}
    )

    assert messages_of(enabled) == [("success", "Change plan is on (the customer confirms).")]
    assert [(t["name"], t["enabled"], t["approval"]) for t in tool_rows(tenant_a.tenant)] == [
        ("plan_change", True, "customer")
    ]
    html = client_admin_a.get(page_url()).content.decode()
    assert re.search(r'id="enabled-plan_change" name="enabled" form="tool-plan_change" checked>', html)

    disabled = post(client_admin_a, {"action": "tool", "name": "plan_change", "approval": "customer"})

    assert messages_of(disabled) == [("success", "Change plan is off: the assistant no longer offers it.")]
    assert [(t["name"], t["enabled"]) for t in tool_rows(tenant_a.tenant)] == [("plan_change", False)]


def test_a_change_tool_set_to_run_unconfirmed_is_refused(tenant_a, client_admin_a):
    services.tool_configure(tenant=tenant_a.tenant, name="plan_change", enabled=True, approval="agent")
    before = tool_rows(tenant_a.tenant)

    response = post(
        client_admin_a, {"action": "tool", "name": "plan_change", "enabled": "on", "approval": "none"}
    )

    assert messages_of(response) == [
        ("error", "Change plan changes data: an agent or the customer must confirm it.")
    ]
    assert tool_rows(tenant_a.tenant) == before


def test_admin_connects_the_demo_system(tenant_a, client_admin_a):
    response = post(client_admin_a, {"action": "connection", "adapter": "demo", "timeout_seconds": "4"})

    assert messages_of(response) == [("success", "The connection is saved: Demo business system.")]
    row = connection_row(tenant_a.tenant)
    assert row is not None
    assert (row["adapter"], row["base_url"], row["timeout_seconds"], unseal(row["auth_secret"])) == (
        "demo",
        "",
        4.0,
        "",
    )


def test_an_http_url_on_a_host_not_allowed_is_refused_on_the_page(tenant_a, client_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = []
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo")
    before = connection_row(tenant_a.tenant)

    response = post(
        client_admin_a,
        {
            "action": "connection",
            "adapter": "http",
            "base_url": "https://api.example.com/desk",
            "auth_secret": SECRET,
            "timeout_seconds": "10",
        },
    )

    assert messages_of(response) == [
        (
            "error",
            "That host is not on the list of hosts this installation may call. "
            "Ask the platform operator to allow it.",
        )
    ]
    assert connection_row(tenant_a.tenant) == before


def test_the_secret_is_stored_kept_when_left_empty_and_removed_on_request(tenant_a, client_admin_a, settings):
    settings.TOOLS_ALLOWED_HOSTS = ["api.example.com"]
    form = {
        "action": "connection",
        "adapter": "http",
        "base_url": "https://api.example.com/desk",
        "timeout_seconds": "10",
    }

    saved = post(client_admin_a, {**form, "auth_secret": SECRET})

    assert messages_of(saved) == [("success", "The connection is saved: The company's HTTP API.")]
    assert unseal(ToolConnection.objects.get(tenant=tenant_a.tenant).auth_secret) == SECRET
    html = client_admin_a.get(page_url()).content.decode()
    assert SECRET not in html
    assert '<input type="checkbox" id="clear_secret" name="clear_secret">' in html

    post(client_admin_a, {**form, "auth_secret": "", "timeout_seconds": "7"})
    row = connection_row(tenant_a.tenant)
    assert row is not None
    assert (unseal(row["auth_secret"]), row["timeout_seconds"]) == (SECRET, 7.0)

    post(client_admin_a, {**form, "clear_secret": "on"})
    assert unseal(ToolConnection.objects.get(tenant=tenant_a.tenant).auth_secret) == ""
    assert "No token is stored." in client_admin_a.get(page_url()).content.decode()


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        ("soon", "The timeout must be a number of seconds, such as 10."),
        ("90", "The timeout must be between 0 and 60 seconds."),
    ],
)
def test_a_bad_timeout_is_refused(tenant_a, client_admin_a, timeout, message):
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo")
    before = connection_row(tenant_a.tenant)

    response = post(client_admin_a, {"action": "connection", "adapter": "demo", "timeout_seconds": timeout})

    assert messages_of(response) == [("error", message)]
    assert connection_row(tenant_a.tenant) == before


@pytest.mark.parametrize(
    "data",
    [
        {"action": "tool", "name": "plan_change", "enabled": "on", "approval": "customer"},
        {"action": "connection", "adapter": "none", "timeout_seconds": "10"},
    ],
    ids=["tool", "connection"],
)
def test_an_agent_cannot_post_the_admin_forms(tenant_a, client_agent_a, data):
    services.tool_connection_configure(tenant=tenant_a.tenant, adapter="demo")
    services.tool_configure(tenant=tenant_a.tenant, name="plan_change", enabled=False, approval="agent")
    before_connection, before_tools = connection_row(tenant_a.tenant), tool_rows(tenant_a.tenant)

    response = client_agent_a.post(page_url(), data)

    assert response.status_code == 403
    assert FORBIDDEN_TEXT in response.content.decode()
    assert connection_row(tenant_a.tenant) == before_connection
    assert tool_rows(tenant_a.tenant) == before_tools
