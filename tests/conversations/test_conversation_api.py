"""Staff read conversations through the API: their own tenant only, agents and up, and the OpenAPI schema
describes the endpoints."""

from __future__ import annotations

import pytest

from apps.conversations import services

pytestmark = pytest.mark.django_db


def test_agents_list_and_read_their_tenants_conversations_only(
    kb_tenant, make_tenant, make_user, api_client_as
):
    from apps.accounts.models import Role

    session = services.widget_session_open(tenant=kb_tenant, token=None, claim=None)
    services.message_receive(
        tenant=kb_tenant, claims=session.claims, client_msg_id="a", text="Is roaming free?"
    )
    agent = make_user(kb_tenant, roles=[Role.AGENT])
    listed = api_client_as(agent).get(f"/api/v1/tenants/{kb_tenant.slug}/conversations/").json()["results"]
    assert [(c["id"], c["verified"], c["last_seq"]) for c in listed] == [
        (str(session.claims.conversation_id), False, 1)
    ]
    other = make_tenant()
    outsider = make_user(other, roles=[Role.ADMIN])
    url = f"/api/v1/tenants/{kb_tenant.slug}/conversations/{session.claims.conversation_id}/"
    assert api_client_as(outsider).get(url).status_code == 404
    assert api_client_as(outsider).get(f"/api/v1/tenants/{kb_tenant.slug}/conversations/").status_code == 404
    foreign = f"/api/v1/tenants/{other.slug}/conversations/{session.claims.conversation_id}/"
    assert api_client_as(outsider).get(foreign).status_code == 404
    assert api_client_as(None).get(url).status_code == 401


def test_the_openapi_schema_describes_the_widget_and_conversation_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in [
        "/api/widget/v1/session",
        "/api/widget/v1/events",
        "/api/widget/v1/passages/{chunk_id}",
        "/api/v1/tenants/{slug}/conversations/",
        "/api/v1/tenants/{slug}/conversations/{conversation_id}/",
        "/api/v1/tenants/{slug}/kb/gaps/",
    ]:
        assert path in schema["paths"], path
