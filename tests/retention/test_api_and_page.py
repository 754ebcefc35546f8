"""GET/PUT /api/v1/tenants/<slug>/retention/ and the "Data retention" section of the settings page."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.retention.models import PERIOD_FIELDS, RetentionPolicy
from apps.retention.selectors import retention_policy_for
from apps.retention.services import retention_policy_set

pytestmark = pytest.mark.django_db

FOREVER = dict.fromkeys(PERIOD_FIELDS)


def url(slug: str) -> str:
    return f"/api/v1/tenants/{slug}/retention/"


def test_an_admin_reads_and_sets_the_policy(tenant_a, api_admin_a):
    assert api_admin_a.get(url(tenant_a.slug)).json() == FOREVER

    response = api_admin_a.put(
        url(tenant_a.slug), {"conversations_days": 90, "traces_days": 7}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {**FOREVER, "conversations_days": 90, "traces_days": 7}
    # A period not sent stays; null means forever.
    response = api_admin_a.put(url(tenant_a.slug), {"traces_days": None}, format="json")
    assert response.json() == {**FOREVER, "conversations_days": 90}
    assert retention_policy_for(tenant=tenant_a.tenant).periods() == {**FOREVER, "conversations_days": 90}
    rows = AuditEvent.objects.filter(tenant=tenant_a.tenant, action="settings.retention").order_by("seq")
    assert [(row.actor_id, row.data["fields"]) for row in rows] == [
        (tenant_a.admin.id, ["conversations_days", "traces_days"]),
        (tenant_a.admin.id, ["traces_days"]),
    ]


def test_a_refused_period_is_a_400_with_its_sentence_and_changes_nothing(tenant_a, api_admin_a):
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"messages_days": 30})
    response = api_admin_a.put(
        url(tenant_a.slug), {"messages_days": 60, "knowledge_gaps_days": 0}, format="json"
    )
    assert response.status_code == 400
    sentence = (
        "Keep knowledge gaps for at least 1 day (not 0): a period of 0 would delete them as soon as they are "
        "written. Leave it empty to keep them forever."
    )
    assert response.json() == {
        "code": "bad_request",
        "message": sentence,
        "retryable": False,
        "fields": {"knowledge_gaps_days": sentence},
    }
    assert retention_policy_for(tenant=tenant_a.tenant).periods() == {**FOREVER, "messages_days": 30}


def test_an_agent_is_refused_and_another_company_is_not_found(
    tenant_a, tenant_b, api_agent_a, api_editor_a, api_admin_b, api_anonymous
):
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"audio_days": 30})
    before = list(RetentionPolicy.objects.values_list("id", "audio_days", "updated_at"))
    audited = AuditEvent.objects.count()
    for client, status in ((api_agent_a, 403), (api_editor_a, 403), (api_admin_b, 404), (api_anonymous, 401)):
        assert client.get(url(tenant_a.slug)).status_code == status
        response = client.put(url(tenant_a.slug), {"audio_days": 1}, format="json")
        assert response.status_code == status
        assert response.json()["code"] == {403: "forbidden", 404: "not_found", 401: "unauthorized"}[status]
    assert list(RetentionPolicy.objects.values_list("id", "audio_days", "updated_at")) == before
    assert AuditEvent.objects.count() == audited


def test_the_endpoint_is_in_the_openapi_schema(api_admin_a):
    schema = api_admin_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = schema["paths"]["/api/v1/tenants/{slug}/retention/"]
    assert set(operations) >= {"get", "put"}
    body = operations["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = body.rsplit("/", 1)[1]
    properties = schema["components"]["schemas"][name]["properties"]
    assert set(properties) == set(PERIOD_FIELDS)
    assert properties["audio_days"]["minimum"] == 1
    assert properties["audio_days"]["maximum"] == 3650
    assert "400" in operations["put"]["responses"]


def test_the_settings_page_shows_the_section_and_the_form_to_admins_only(
    tenant_a, client_admin_a, client_agent_a
):
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"conversations_days": 365})
    html = client_admin_a.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert '<h2 id="retention-h">Data retention</h2>' in html
    assert '<dd id="retention-conversations_days">Kept for 365 days</dd>' in html
    assert '<dd id="retention-audio_days">Kept forever</dd>' in html
    assert f'action="/staff/{tenant_a.slug}/retention/"' in html
    assert 'id="conversations_days" name="conversations_days" type="number"' in html
    assert 'value="365"' in html
    assert "Conversations waiting for a person or with one are never deleted." in html

    agent_html = client_agent_a.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert '<dd id="retention-conversations_days">Kept for 365 days</dd>' in agent_html
    assert f'action="/staff/{tenant_a.slug}/retention/"' not in agent_html
    response = client_agent_a.post(f"/staff/{tenant_a.slug}/retention/", {"conversations_days": "1"})
    assert response.status_code == 403
    assert retention_policy_for(tenant=tenant_a.tenant).conversations_days == 365


def test_an_admin_saves_the_form(tenant_a, client_admin_a):
    data = {name: "" for name in PERIOD_FIELDS} | {"audio_days": "14", "traces_days": "30"}
    response = client_admin_a.post(f"/staff/{tenant_a.slug}/retention/", data)
    assert response.status_code == 302
    assert response["Location"] == f"/staff/{tenant_a.slug}/settings/#retention-h"
    assert retention_policy_for(tenant=tenant_a.tenant).periods() == {
        **FOREVER,
        "audio_days": 14,
        "traces_days": 30,
    }
    page = client_admin_a.get(response["Location"]).content.decode()
    assert "Data retention is saved." in page
    assert '<dd id="retention-audio_days">Kept for 14 days</dd>' in page


def test_a_refused_period_is_shown_next_to_its_field_with_what_was_typed(tenant_a, client_admin_a):
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"audio_days": 14})
    data = {name: "" for name in PERIOD_FIELDS} | {"audio_days": "0", "messages_days": "45"}
    response = client_admin_a.post(f"/staff/{tenant_a.slug}/retention/", data)
    assert response.status_code == 400
    html = response.content.decode()
    sentence = (
        "Keep voice recordings for at least 1 day (not 0): a period of 0 would delete them as soon as they "
        "are written. Leave it empty to keep them forever."
    )
    assert f'<p id="audio_days_error" class="field-error">{sentence}</p>' in html
    assert 'aria-describedby="audio_days_help audio_days_error" aria-invalid="true"' in html
    assert 'id="messages_days" name="messages_days" type="number"' in html
    assert 'value="45"' in html  # what was typed is kept for the next try
    assert "Nothing was saved" in html
    assert retention_policy_for(tenant=tenant_a.tenant).periods() == {**FOREVER, "audio_days": 14}


def test_another_companys_admin_cannot_post_the_form(tenant_a, client_admin_b):
    response = client_admin_b.post(f"/staff/{tenant_a.slug}/retention/", {"audio_days": "1"})
    assert response.status_code == 404
    assert not RetentionPolicy.objects.exists()
