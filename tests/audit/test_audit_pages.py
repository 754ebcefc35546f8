"""The "Audit trail" page and `GET /api/v1/tenants/<slug>/audit/`: admins only (agents and editors 403,
other companies 404), filters, pages, the chain check, the empty state, and the OpenAPI schema."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.trail import audit_record
from tests.audit.chain_rows import chain_bulk_append, chain_head

pytestmark = pytest.mark.django_db


def page_url(slug: str) -> str:
    return f"/staff/{slug}/audit/"


def api_url(slug: str) -> str:
    return f"/api/v1/tenants/{slug}/audit/"


def table_seqs(html: str) -> list[int]:
    return [int(n) for n in re.findall(r"<td class=\"kb-nowrap\">#(\d+) ", html)]


@pytest.fixture
def trail(tenant_a, tenant_b):
    """Four rows in company A's chain, one in B's; A's chain position before them (the fixtures' own
    audited role grants come first)."""
    a = tenant_a.tenant.pk
    base = chain_head(a)
    audit_record(
        tenant_id=a, action="handoff.claim", actor=tenant_a.agent, target_id="conv-1", data={"queue": 2}
    )
    audit_record(tenant_id=a, action="settings.update", actor=tenant_a.admin, data={"fields": ["name"]})
    audit_record(tenant_id=a, action="guardrail.abstain", actor_kind="assistant", target_id="conv-1")
    audit_record(tenant_id=a, action="handoff.claim", actor=tenant_a.admin, target_id="conv-2")
    audit_record(
        tenant_id=tenant_b.tenant.pk, action="handoff.claim", actor=tenant_b.agent, target_id="conv-b"
    )
    return base


# --- permissions ------------------------------------------------------------------------------------------


def test_an_admin_sees_the_page(tenant_a, trail, client_admin_a):
    response = client_admin_a.get(page_url(tenant_a.slug))
    assert response.status_code == 200
    html = response.content.decode()
    assert table_seqs(html) == list(range(trail + 4, 0, -1))
    assert f"<caption>Audit rows, newest first: chain positions {trail + 4} to 1</caption>" in html
    assert "conv-b" not in html
    for shown in ("queue: 2", "fields: name", "Assistant", "agent_a"):
        assert shown in html
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.parametrize("who", ["agent", "editor"])
def test_agents_and_editors_get_403(tenant_a, trail, client_as: Callable, api_client_as: Callable, who):
    user = getattr(tenant_a, who)
    page = client_as(user).get(page_url(tenant_a.slug))
    api = api_client_as(user).get(api_url(tenant_a.slug))
    assert (page.status_code, api.status_code) == (403, 403)
    assert api.json()["code"] == "forbidden"
    assert "handoff.claim" not in page.content.decode()


def test_another_companys_admin_gets_404(tenant_a, trail, client_admin_b, api_admin_b):
    assert client_admin_b.get(page_url(tenant_a.slug)).status_code == 404
    assert client_admin_b.get(page_url(tenant_a.slug) + "?format=csv").status_code == 404
    response = api_admin_b.get(api_url(tenant_a.slug))
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_anonymous_is_sent_to_sign_in_or_401(tenant_a, client_as, api_anonymous):
    response = client_as(None).get(page_url(tenant_a.slug))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert api_anonymous.get(api_url(tenant_a.slug)).status_code == 401


def test_the_settings_page_links_admins_to_it(tenant_a, client_admin_a, client_agent_a):
    link = f'<a href="{page_url(tenant_a.slug)}">Audit trail</a>'
    assert link in client_admin_a.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert link not in client_agent_a.get(f"/staff/{tenant_a.slug}/settings/").content.decode()


# --- filters, pages, check ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "seqs"),
    [
        ({"action": "handoff.claim"}, [4, 1]),
        ({"actor_kind": "assistant"}, [3]),
        ({"actor": "ADMIN_A"}, [4, 2]),
        ({"target": "conv-1"}, [3, 1]),
        ({"action": "handoff.claim", "actor": "agent_a"}, [1]),
        ({"action": "nothing.matches"}, []),
    ],
)
def test_filters_narrow_the_page_and_the_api(tenant_a, trail, client_admin_a, api_admin_a, params, seqs):
    expected = [trail + n for n in seqs]
    html = client_admin_a.get(page_url(tenant_a.slug), params).content.decode()
    assert table_seqs(html) == expected
    api_params = {("target_id" if k == "target" else k): v for k, v in params.items()}
    results = api_admin_a.get(api_url(tenant_a.slug), api_params).json()["results"]
    assert [r["seq"] for r in results] == expected


def test_the_action_filter_offers_the_actions_present(tenant_a, trail, client_admin_a):
    html = client_admin_a.get(page_url(tenant_a.slug), {"action": "settings.update"}).content.decode()
    options = dict(re.findall(r'<option value="([a-z_.]+\.[a-z_.]+)"( selected)?>', html))
    assert {
        "guardrail.abstain": "",
        "handoff.claim": "",
        "settings.update": " selected",
    }.items() <= options.items()
    assert list(options) == sorted(options)
    assert sorted(options) == sorted(
        set(AuditEvent.objects.filter(tenant=tenant_a.tenant).values_list("action", flat=True))
    )


def test_date_range_filters_whole_utc_days(tenant_a, client_admin_a, api_admin_a):
    base = datetime.datetime(2026, 3, 1, 23, 30, tzinfo=datetime.UTC)
    head = chain_head(tenant_a.tenant.pk)  # the fixtures' rows: written now, long after March 2026
    chain_bulk_append(tenant_a.tenant.pk, 3, start=base)  # 23:30:01 on the 1st, then :02 and :03
    with connection.cursor() as cursor:  # move the third to the 2nd: the chain check is not the point here
        cursor.execute(
            "UPDATE audit_auditevent SET at = %s WHERE tenant_id = %s AND seq = %s",
            [base + datetime.timedelta(days=1), tenant_a.tenant.pk, head + 3],
        )
    page = client_admin_a.get(page_url(tenant_a.slug), {"since": "2026-03-01", "until": "2026-03-01"})
    assert table_seqs(page.content.decode()) == [head + 2, head + 1]
    api = api_admin_a.get(api_url(tenant_a.slug), {"since": "2026-03-02", "until": "2026-03-02"}).json()
    assert [r["seq"] for r in api["results"]] == [head + 3]
    api = api_admin_a.get(api_url(tenant_a.slug), {"until": "2026-03-01T23:30:02Z"}).json()["results"]
    assert [r["seq"] for r in api] == [head + 1]


def test_bad_filters_say_what_is_wrong(tenant_a, trail, client_admin_a, api_admin_a):
    page = client_admin_a.get(page_url(tenant_a.slug), {"since": "yesterday"})
    assert page.status_code == 400
    assert 'role="alert">since is a date (YYYY-MM-DD) or an ISO 8601 time.<' in page.content.decode()
    api = api_admin_a.get(api_url(tenant_a.slug), {"actor_kind": "robot"})
    assert api.status_code == 400
    assert api.json() == {
        "code": "bad_request",
        "message": "actor_kind is one of staff, customer, assistant, system.",
        "retryable": False,
    }
    reversed_range = api_admin_a.get(api_url(tenant_a.slug), {"since": "2026-03-02", "until": "2026-03-01"})
    assert reversed_range.json()["message"] == "The date range ends before it starts."


def test_the_page_pages_by_chain_position_keeping_the_filters(tenant_a, client_admin_a):
    h = chain_head(tenant_a.tenant.pk)
    chain_bulk_append(tenant_a.tenant.pk, 120, action="test.bulk")
    audit_record(tenant_id=tenant_a.tenant.pk, action="other.thing")
    client = client_admin_a
    first = client.get(page_url(tenant_a.slug), {"action": "test.bulk"}).content.decode()
    assert table_seqs(first) == list(range(h + 120, h + 70, -1))
    older = re.search(r'href="\?([^"]+)" rel="next">Older rows', first)
    assert older is not None
    assert older.group(1).replace("&amp;", "&") == f"action=test.bulk&before={h + 71}"
    assert 'rel="prev">Newer rows' not in first
    second = client.get(page_url(tenant_a.slug) + "?" + older.group(1).replace("&amp;", "&")).content.decode()
    assert table_seqs(second) == list(range(h + 70, h + 20, -1))
    assert 'rel="prev">Newer rows' in second
    newer = client.get(
        page_url(tenant_a.slug), {"action": "test.bulk", "after": str(h + 70)}
    ).content.decode()
    assert table_seqs(newer) == list(range(h + 120, h + 70, -1))
    assert 'rel="prev">Newer rows' not in newer
    last = client.get(
        page_url(tenant_a.slug), {"action": "test.bulk", "before": str(h + 21)}
    ).content.decode()
    assert table_seqs(last) == list(range(h + 20, h, -1))
    assert "Older rows" not in last


def test_the_api_pages_with_a_cursor(tenant_a, api_admin_a):
    h = chain_head(tenant_a.tenant.pk)
    chain_bulk_append(tenant_a.tenant.pk, 7, action="test.bulk")
    query = {"page_size": "3", "action": "test.bulk"}
    first = api_admin_a.get(api_url(tenant_a.slug), query).json()
    assert [r["seq"] - h for r in first["results"]] == [7, 6, 5]
    assert first["previous"] is None
    second = api_admin_a.get(first["next"]).json()
    assert [r["seq"] - h for r in second["results"]] == [4, 3, 2]
    third = api_admin_a.get(second["next"]).json()
    assert ([r["seq"] - h for r in third["results"]], third["next"]) == ([1], None)
    assert [r["seq"] - h for r in api_admin_a.get(third["previous"]).json()["results"]] == [4, 3, 2]
    row = third["results"][0]
    assert sorted(row) == sorted(
        [
            "seq",
            "at",
            "actor_kind",
            "actor_id",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "data",
            "trace_id",
            "prev_hash",
            "hash",
        ]
    )


def test_verify_chain_shows_intact_or_the_problems(tenant_a, trail, client_admin_a):
    html = client_admin_a.get(page_url(tenant_a.slug), {"verify": "1"}).content.decode()
    assert f"<strong>Chain intact.</strong> {trail + 4} rows checked" in html
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET action = 'handoff.release' WHERE tenant_id = %s AND seq = %s",
            [tenant_a.tenant.pk, trail + 2],
        )
        cursor.execute(
            "DELETE FROM audit_auditevent WHERE tenant_id = %s AND seq = %s", [tenant_a.tenant.pk, trail + 3]
        )
    html = client_admin_a.get(page_url(tenant_a.slug), {"verify": "1"}).content.decode()
    assert f"<strong>2 problems found</strong> in {trail + 3} rows." in html
    assert f"<li>Row {trail + 2}: its content was changed after it was written</li>" in html
    assert f"<li>Row {trail + 3}: it is missing</li>" in html
    # Without asking, the page does not recompute the chain.
    assert "Chain intact" not in client_admin_a.get(page_url(tenant_a.slug)).content.decode()


def test_empty_states(tenant_a, client_admin_a):
    AuditEvent.objects.filter(tenant=tenant_a.tenant).delete()  # a company whose staff did nothing yet
    html = client_admin_a.get(page_url(tenant_a.slug)).content.decode()
    assert "Nothing recorded yet" in html
    assert "<table" not in html
    assert "Download" not in html
    audit_record(tenant_id=tenant_a.tenant.pk, action="handoff.claim")
    html = client_admin_a.get(page_url(tenant_a.slug), {"actor": "nobody"}).content.decode()
    assert "No rows match" in html


def test_rows_show_time_actor_target_and_position(tenant_a, client_admin_a):
    row = audit_record(
        tenant_id=tenant_a.tenant.pk,
        action="tool_run.approve",
        actor=tenant_a.admin,
        target_type="ToolRun",
        target_id="run-9",
        data={"tool": "refund", "approved": True},
    )
    html = client_admin_a.get(page_url(tenant_a.slug)).content.decode()
    assert f'<time datetime="{row.at.isoformat()}">{row.at:%-d %b %Y, %H:%M:%S}</time>' in html
    assert "<td>admin_a</td>" in html
    assert '<th scope="row"><code>tool_run.approve</code></th>' in html
    assert '<td class="audit-target">ToolRun run-9</td>' in html
    assert '<td class="audit-data">tool: refund; approved: yes</td>' in html
    assert f'#{row.seq} <span class="kb-muted" title="This row\'s hash">{row.hash[:10]}</span>' in html


def test_the_api_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/tenants/{slug}/audit/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"action", "actor_kind", "actor", "actor_id", "target_id", "since", "until", "cursor"} <= names
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/AuditPageOutput"
