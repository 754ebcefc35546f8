"""The admins' handoff settings page: hours in the company's time zone, escalation, capacity, rules, teams,
canned responses and agents' capacity. A refused change shows why and keeps what was typed; nothing but an
admin of the company changes anything."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.handoff import services
from apps.handoff.availability import settings_for
from apps.handoff.models import CannedResponse, HandoffRule, HandoffSettings, Presence, Team

pytestmark = pytest.mark.django_db

URL = "/staff/tenant-a/handoff-settings/"
WEEK = {
    "timezone": "Europe/Berlin",
    "mon_start": "08:30",
    "mon_end": "18:00",
    "tue_start": "08:30",
    "tue_end": "18:00",
    "wed_start": "",
    "wed_end": "",
    "thu_start": "08:30",
    "thu_end": "18:00",
    "fri_start": "09:00",
    "fri_end": "00:00",
    "sat_start": "10:00",
    "sat_end": "14:00",
    "sun_start": "",
    "sun_end": "",
    "escalate_minutes": "2.5",
    "default_capacity": "4",
}


def snapshot(tenant) -> tuple:
    row = HandoffSettings.objects.filter(tenant=tenant).first()
    return (
        (row.timezone, row.hours, row.escalate_after_seconds, row.default_capacity) if row else None,
        sorted(HandoffRule.objects.filter(tenant=tenant).values_list("kind", "value", "priority")),
        sorted(Team.objects.filter(tenant=tenant).values_list("name", flat=True)),
        sorted(CannedResponse.objects.filter(tenant=tenant).values_list("shortcut", "title", "body")),
        sorted(Presence.objects.filter(tenant=tenant).values_list("user_id", "capacity")),
    )


def messages_of(html: str) -> list[str]:
    return [html_lib.unescape(m) for m in re.findall(r'<li class="msg msg-\w+">(.*?)</li>', html, flags=re.S)]


def test_page_shows_the_current_settings(client_admin_a, tenant_a):
    services.handoff_settings_update(
        tenant=tenant_a.tenant,
        timezone_name="Europe/Berlin",
        hours={"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["09:00", "24:00"]]},
        escalate_after_seconds=600,
    )
    response = client_admin_a.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<option value="Europe/Berlin" selected>' in html
    assert 'id="mon_start" name="mon_start" value="09:00"' in html
    assert 'id="mon_end" name="mon_end" value="12:00"' in html
    assert "Also open 13:00\u201317:00" in html
    assert 'id="fri_end" name="fri_end" value="00:00"' in html  # open until midnight
    assert 'id="tue_start" name="tue_start" value=""' in html
    assert 'name="escalate_minutes" value="10"' in html
    assert 'name="default_capacity" value="3"' in html
    assert "agent_a" in html  # listed with their capacity


def test_save_hours_escalation_and_capacity(client_admin_a, tenant_a):
    services.handoff_settings_update(
        tenant=tenant_a.tenant, hours={"thu": [["08:30", "12:00"], ["13:00", "18:00"]]}
    )
    response = client_admin_a.post(URL, {"action": "settings", **WEEK})
    assert response.status_code == 302
    assert response["Location"] == f"{URL}#hours"
    row = HandoffSettings.objects.get(tenant=tenant_a.tenant)
    assert row.timezone == "Europe/Berlin"
    assert row.hours == {
        "mon": [["08:30", "18:00"]],
        "tue": [["08:30", "18:00"]],
        "wed": [],
        "thu": [["08:30", "18:00"], ["13:00", "18:00"]],  # the second interval (from the API) is kept
        "fri": [["09:00", "24:00"]],
        "sat": [["10:00", "14:00"]],
        "sun": [],
    }
    assert (row.escalate_after_seconds, row.default_capacity) == (150, 4)
    page = client_admin_a.get(URL).content.decode()
    assert messages_of(page) == [
        "Saved. People answer live Mon\u2013Tue 08:30\u201318:00, Thu 08:30\u201318:00, 13:00\u201318:00, "
        "Fri 09:00\u201324:00, Sat 10:00\u201314:00 (Europe/Berlin)."
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mon_end": "08:00"}, "mon: 08:30\u201308:00 ends before it starts."),
        ({"tue_end": ""}, "Tuesday: give an opening and a closing time, or neither if closed."),
        ({"sat_start": "25:99"}, "'25:99' is not a time of day (HH:MM)."),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a time zone (try Europe/Berlin)."),
        ({"escalate_minutes": "ten"}, "Escalate after is a number of minutes, such as 5 or 2.5."),
        ({"escalate_minutes": "nan"}, "Escalate after is a number of minutes, such as 5 or 2.5."),
        ({"escalate_minutes": "0"}, "Escalate after 30 seconds to 24 hours."),
        ({"default_capacity": "21"}, "Capacity goes from 1 to 20 conversations."),
    ],
)
def test_refused_settings_keep_the_input(client_admin_a, tenant_a, change, message):
    settings_for(tenant_a.tenant)
    before = snapshot(tenant_a.tenant)
    form = {"action": "settings", **WEEK, **change}
    response = client_admin_a.post(URL, form)
    assert response.status_code == 400
    html = response.content.decode()
    assert messages_of(html) == [message]
    for field in ("mon_start", "mon_end", "tue_end", "sat_start", "escalate_minutes", "default_capacity"):
        assert f'name="{field}" value="{form[field]}"' in html, field
    if change.get("timezone") != "Mars/Olympus":
        assert '<option value="Europe/Berlin" selected>' in html
    assert snapshot(tenant_a.tenant) == before


def test_rules_add_and_delete(client_admin_a, tenant_a):
    team = services.team_create(tenant=tenant_a.tenant, name="Billing")
    response = client_admin_a.post(
        URL,
        {
            "action": "rule_add",
            "kind": "topic",
            "value": "refund, chargeback",
            "priority": "2",
            "team": team.id,
        },
    )
    assert (response.status_code, response["Location"]) == (302, f"{URL}#rules")
    rule = HandoffRule.objects.get(tenant=tenant_a.tenant)
    assert (rule.kind, rule.value, rule.priority, rule.team_id) == ("topic", "refund, chargeback", 2, team.id)
    html = client_admin_a.get(URL).content.decode()
    assert messages_of(html) == ["Rule added: topic “refund, chargeback”."]
    assert "Mentions any of: refund, chargeback" in html
    response = client_admin_a.post(URL, {"action": "rule_delete", "rule": rule.id})
    assert response.status_code == 302
    assert not HandoffRule.objects.filter(tenant=tenant_a.tenant).exists()


def test_refused_rule_keeps_the_input(client_admin_a, tenant_a):
    response = client_admin_a.post(
        URL, {"action": "rule_add", "kind": "tier", "value": "premium", "priority": "7", "team": ""}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert messages_of(html) == ["Priority goes from 0 (normal) to 2 (urgent)."]
    assert '<option value="tier" selected>' in html
    assert 'id="rule-value" name="value" value="premium"' in html
    assert not HandoffRule.objects.exists()


def test_rule_of_another_company_cannot_be_deleted(client_admin_a, tenant_b):
    rule = services.handoff_rule_create(tenant=tenant_b.tenant, kind="tier", value="gold")
    response = client_admin_a.post(URL, {"action": "rule_delete", "rule": rule.id})
    assert response.status_code == 404
    assert messages_of(response.content.decode()) == ["There is no such rule."]
    assert HandoffRule.objects.filter(id=rule.id).exists()


def test_team_with_members(client_admin_a, tenant_a, tenant_b, make_user):
    carol = make_user(tenant_a.tenant, roles=[Role.AGENT], username="carol", first_name="Carol")
    response = client_admin_a.post(
        URL,
        {
            "action": "team_add",
            "name": "Billing",
            "members": [carol.id, tenant_a.agent.id, tenant_b.agent.id],
        },
    )
    assert (response.status_code, response["Location"]) == (302, f"{URL}#teams")
    team = Team.objects.get(tenant=tenant_a.tenant)
    # Someone of another company is never added.
    assert sorted(team.members.values_list("username", flat=True)) == ["agent_a", "carol"]
    html = client_admin_a.get(URL).content.decode()
    assert messages_of(html) == ["Team Billing created with 2 members."]
    assert "<strong>Billing</strong>:" in html

    again = client_admin_a.post(URL, {"action": "team_add", "name": "Billing", "members": [carol.id]})
    assert again.status_code == 409
    html = again.content.decode()
    assert messages_of(html) == ["There is a team called Billing already."]
    assert 'id="team-name" name="name" value="Billing"' in html
    assert f'value="{carol.id}" checked>' in html
    assert Team.objects.filter(tenant=tenant_a.tenant).count() == 1


def test_canned_responses_add_edit_delete(client_admin_a, tenant_a):
    response = client_admin_a.post(
        URL,
        {"action": "canned_save", "title": "Refunds", "shortcut": "/Refund", "body": "Refunds take 5 days."},
    )
    assert (response.status_code, response["Location"]) == (302, f"{URL}#canned")
    canned = CannedResponse.objects.get(tenant=tenant_a.tenant)
    assert (canned.shortcut, canned.title, canned.body) == ("refund", "Refunds", "Refunds take 5 days.")

    response = client_admin_a.post(
        URL,
        {
            "action": "canned_save",
            "canned": canned.id,
            "title": "Refund",
            "shortcut": "refund",
            "body": "3 days.",
        },
    )
    assert response.status_code == 302
    canned.refresh_from_db()
    assert (canned.title, canned.body) == ("Refund", "3 days.")

    response = client_admin_a.post(URL, {"action": "canned_delete", "canned": canned.id})
    assert response.status_code == 302
    assert not CannedResponse.objects.exists()
    assert messages_of(client_admin_a.get(URL).content.decode()) == [
        "Canned response /refund added.",
        "Canned response /refund saved.",
        "Canned response /refund deleted.",
    ]


def test_refused_canned_responses_keep_the_input(client_admin_a, tenant_a):
    hello = services.canned_response_save(tenant=tenant_a.tenant, title="Hello", shortcut="hello", body="Hi!")
    bye = services.canned_response_save(tenant=tenant_a.tenant, title="Bye", shortcut="bye", body="Bye!")
    settings_for(tenant_a.tenant)
    before = snapshot(tenant_a.tenant)

    new = client_admin_a.post(
        URL,
        {"action": "canned_save", "title": "Greeting <b>", "shortcut": "hi there", "body": "Hi & welcome"},
    )
    assert new.status_code == 400
    html = new.content.decode()
    assert messages_of(html) == ["Shortcuts are letters, digits, - and _ (up to 40)."]
    assert 'id="canned-title" name="title" value="Greeting &lt;b&gt;"' in html
    assert 'id="canned-shortcut" name="shortcut" value="hi there"' in html
    assert ">Hi &amp; welcome</textarea>" in html

    edit = client_admin_a.post(
        URL,
        {"action": "canned_save", "canned": bye.id, "title": "Bye", "shortcut": "hello", "body": "See you"},
    )
    assert edit.status_code == 409
    html = edit.content.decode()
    assert messages_of(html) == ["/hello is taken already."]
    # The edited row's form is open again with what was typed; the other row is untouched.
    assert f'id="shortcut-{bye.id}" name="shortcut" value="hello"' in html
    assert f'id="body-{bye.id}" name="body" maxlength="4000" required>See you</textarea>' in html
    assert f'id="shortcut-{hello.id}" name="shortcut" value="hello"' in html
    assert html.count("<details open>") == 1
    assert snapshot(tenant_a.tenant) == before


def test_agent_capacity(client_admin_a, tenant_a, tenant_b):
    agent = tenant_a.agent
    response = client_admin_a.post(URL, {"action": "capacity", "user": agent.id, "capacity": "5"})
    assert (response.status_code, response["Location"]) == (302, f"{URL}#agents")
    assert Presence.objects.get(tenant=tenant_a.tenant, user=agent).capacity == 5
    html = client_admin_a.get(URL).content.decode()
    assert messages_of(html) == ["agent_a may now hold 5 conversations at once."]
    assert f'id="capacity-{agent.id}" name="capacity" value="5"' in html

    refused = client_admin_a.post(URL, {"action": "capacity", "user": agent.id, "capacity": "25"})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert messages_of(html) == ["Capacity goes from 1 to 20 conversations."]
    assert f'id="capacity-{agent.id}" name="capacity" value="25"' in html
    assert Presence.objects.get(tenant=tenant_a.tenant, user=agent).capacity == 5

    stranger = client_admin_a.post(URL, {"action": "capacity", "user": tenant_b.agent.id, "capacity": "2"})
    assert stranger.status_code == 404
    assert not Presence.objects.filter(user=tenant_b.agent).exists()


def test_unknown_action(client_admin_a):
    response = client_admin_a.post(URL, {"action": "drop_tables"})
    assert response.status_code == 302
    assert messages_of(client_admin_a.get(URL).content.decode()) == [
        "That action isn't available on this page."
    ]


def test_only_the_company_admins(client_agent_a, client_editor_a, client_admin_b, client_as, tenant_a):
    settings_for(tenant_a.tenant)
    before = snapshot(tenant_a.tenant)
    for client, status in ((client_agent_a, 403), (client_editor_a, 403), (client_admin_b, 404)):
        assert client.get(URL).status_code == status
        assert client.post(URL, {"action": "settings", **WEEK}).status_code == status
        assert client.post(URL, {"action": "rule_add", "kind": "tier", "value": "gold"}).status_code == status
    anonymous = client_as(None).post(URL, {"action": "settings", **WEEK})
    assert anonymous.status_code == 302
    assert snapshot(tenant_a.tenant) == before


def test_posts_need_the_csrf_token(tenant_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.admin)
    settings_for(tenant_a.tenant)
    before = snapshot(tenant_a.tenant)
    assert client.post(URL, {"action": "settings", **WEEK}).status_code == 403
    assert snapshot(tenant_a.tenant) == before
    page = client.get(URL).content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 5


def test_staff_pages_link_here(client_admin_a, client_agent_a):
    home = client_admin_a.get("/staff/").content.decode()
    assert 'href="/staff/tenant-a/reports/"' in home
    assert 'href="/staff/tenant-a/handoff-settings/"' in home
    assert 'href="/staff/tenant-a/console/"' in home
    settings_page = client_admin_a.get("/staff/tenant-a/settings/").content.decode()
    assert 'href="/staff/tenant-a/reports/"' in settings_page
    agent_page = client_agent_a.get("/staff/tenant-a/settings/").content.decode()
    assert 'href="/staff/tenant-a/console/"' in agent_page
    assert "/reports/" not in agent_page
    assert "/handoff-settings/" not in agent_page
