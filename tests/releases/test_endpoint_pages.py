"""The models page (/staff/<slug>/models/) and /api/v1/tenants/<slug>/model-endpoints/: admins only, another
company's 404, registrations probed against the fake OpenAI server, refusals in one sentence, keys never
sent back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.llm.endpoints import endpoint_api_key, endpoint_register
from apps.llm.models import ModelEndpoint, ModelProfile, TenantModel
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

KEY = "sk-page-77d1e0"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["good-model"]) as fake:
        fake.api_key = KEY
        yield fake


def page_url(slug: str) -> str:
    return f"/staff/{slug}/models/"


def api_url(slug: str, endpoint_id: Any = None) -> str:
    return f"/api/v1/tenants/{slug}/model-endpoints/" + (f"{endpoint_id}/" if endpoint_id else "")


def form(server: FakeOpenAI, **overrides: str) -> dict[str, str]:
    return {
        "name": "Candidate",
        "base_url": server.base_url,
        "model": "good-model",
        "api_key": KEY,
        "style": "auto",
        **overrides,
    }


def register(tenant: Any, server: FakeOpenAI, **overrides: Any) -> ModelEndpoint:
    arguments: dict[str, Any] = {**form(server), "tenant": tenant, "actor": None, **overrides}
    return endpoint_register(**arguments)


def test_the_page_shows_the_current_model_the_endpoints_and_the_form(
    tenant_a, tenant_b, client_admin_a, server
):
    own = register(tenant_a.tenant, server)
    register(None, server, name="Shared model", style="compose")
    register(tenant_b.tenant, server, name="Not yours")
    ModelProfile.objects.create(
        base_url=server.base_url,
        model="good-model",
        measured_at=timezone.now(),
        questions=10,
        composed=40,
        supported=39,
        support_rate=39 / 40,
        passes=True,
    )
    TenantModel.objects.create(tenant=tenant_a.tenant, endpoint=own)

    response = client_admin_a.get(page_url(tenant_a.slug))

    assert response.status_code == 200
    page = response.content.decode()
    assert '<dd id="current-model"><strong>Candidate</strong>: good-model@127.0.0.1' in page
    assert "Shared model" in page
    assert '<span class="tag">operator</span>' in page
    assert "Not yours" not in page
    # What "auto" means for each, from its measured profile (the sentence of apps.llm.profiles.style_auto).
    assert "Auto, now <strong>compose</strong>" in page
    assert "97.5% of the 40 sentences good-model composed were supported" in page
    assert '"Auto" follows the model\'s measured profile' in page
    assert 'name="api_key" type="password"' in page
    assert KEY not in page
    assert own.api_key_sealed not in page
    # Only the company's own endpoint can be removed here.
    assert page.count('aria-label="Remove ') == 1
    assert f"/staff/{tenant_a.slug}/models/endpoints/{own.id}/delete/" in page


def test_an_empty_page_says_what_answers_and_what_to_do(tenant_a, client_admin_a, settings):
    page = client_admin_a.get(page_url(tenant_a.slug)).content.decode()
    assert f"The desk's configured model, {settings.LLM_MODEL}@" in page
    assert "No endpoint is registered yet" in page


def test_agents_and_editors_are_refused_and_another_company_is_not_found(
    tenant_a, client_agent_a, client_editor_a, client_admin_b, server
):
    for client, status in ((client_agent_a, 403), (client_editor_a, 403), (client_admin_b, 404)):
        assert client.get(page_url(tenant_a.slug)).status_code == status
        response = client.post(page_url(tenant_a.slug) + "endpoints/", form(server))
        assert response.status_code == status
    assert server.requests == []
    assert ModelEndpoint.objects.count() == 0


def test_registering_on_the_page(tenant_a, client_admin_a, server):
    response = client_admin_a.post(page_url(tenant_a.slug) + "endpoints/", form(server, style="quote"))
    assert response.status_code == 302
    assert response["Location"] == page_url(tenant_a.slug) + "#endpoints-h"
    endpoint = ModelEndpoint.objects.get()
    assert (endpoint.tenant_id, endpoint.style, endpoint_api_key(endpoint)) == (
        tenant_a.tenant.id,
        "quote",
        KEY,
    )
    page = client_admin_a.get(response["Location"]).content.decode()
    assert "Candidate is registered: it streamed its first token in" in page


def test_a_refusal_is_shown_next_to_the_form_with_the_values_kept_but_not_the_key(
    tenant_a, client_admin_a, server
):
    server.behaviour = "no_stream"
    response = client_admin_a.post(
        page_url(tenant_a.slug) + "endpoints/", form(server, name="My vLLM", style="compose")
    )

    assert response.status_code == 400
    page = response.content.decode()
    sentence = (
        f"{server.base_url} does not stream: it answered a streamed test chat with one JSON reply instead of "
        "server-sent events."
    )
    assert (
        f'<p class="field-error" role="alert" id="register-error">Nothing was registered: {sentence}</p>'
        in page
    )
    for kept in ("My vLLM", server.base_url, "good-model"):
        assert f'value="{kept}"' in page
    assert 'id="ep-style-compose" name="style" value="compose" checked' in page
    assert KEY not in page
    assert ModelEndpoint.objects.count() == 0


def test_removing_on_the_page(tenant_a, tenant_b, client_admin_a, client_admin_b, server):
    own = register(tenant_a.tenant, server)
    shared = register(None, server, name="Shared", model="good-model", base_url=server.base_url + "/")

    # Another company's admin cannot even find it; the operator's cannot be removed by a company.
    assert client_admin_b.post(page_url(tenant_a.slug) + f"endpoints/{own.id}/delete/").status_code == 404
    assert client_admin_b.post(page_url(tenant_b.slug) + f"endpoints/{own.id}/delete/").status_code == 404
    assert client_admin_a.post(page_url(tenant_a.slug) + f"endpoints/{shared.id}/delete/").status_code == 403
    assert ModelEndpoint.objects.count() == 2

    TenantModel.objects.create(tenant=tenant_a.tenant, endpoint=own)
    response = client_admin_a.post(page_url(tenant_a.slug) + f"endpoints/{own.id}/delete/", follow=True)
    assert (
        "Candidate answers this company&#x27;s conversations now; switch models first."
        in response.content.decode()
    )
    TenantModel.objects.all().delete()

    response = client_admin_a.post(page_url(tenant_a.slug) + f"endpoints/{own.id}/delete/", follow=True)
    assert "Candidate is removed." in response.content.decode()
    assert list(ModelEndpoint.objects.all()) == [shared]
    assert AuditEvent.objects.filter(action="model_endpoint.delete", actor=tenant_a.admin).count() == 1


def test_the_settings_page_links_to_the_models_page_for_admins(tenant_a, client_admin_a, client_agent_a):
    link = f'href="{page_url(tenant_a.slug)}"'
    assert link in client_admin_a.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert link not in client_agent_a.get(f"/staff/{tenant_a.slug}/settings/").content.decode()


# The API.


def test_the_api_lists_registers_reads_and_removes(tenant_a, tenant_b, api_admin_a, server):
    shared = register(None, server, name="Shared")
    register(tenant_b.tenant, server, name="Theirs")

    response = api_admin_a.post(
        api_url(tenant_a.slug), form(server, name="Mine", style="compose"), format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert set(created) == {
        "id",
        "name",
        "base_url",
        "model",
        "style",
        "operator",
        "has_key",
        "checked_at",
        "check_report",
        "created_at",
    }
    assert (created["name"], created["style"], created["operator"], created["has_key"]) == (
        "Mine",
        "compose",
        False,
        True,
    )
    assert created["check_report"]["models"] == ["good-model"]
    assert created["check_report"]["chunks"] > 0

    listed = api_admin_a.get(api_url(tenant_a.slug)).json()
    assert [(e["name"], e["operator"]) for e in listed] == [("Mine", False), ("Shared", True)]
    assert KEY not in api_admin_a.get(api_url(tenant_a.slug)).content.decode()
    assert api_admin_a.get(api_url(tenant_a.slug, created["id"])).json() == created

    assert api_admin_a.delete(api_url(tenant_a.slug, shared.id)).status_code == 403
    assert api_admin_a.delete(api_url(tenant_a.slug, created["id"])).status_code == 204
    assert api_admin_a.get(api_url(tenant_a.slug, created["id"])).status_code == 404
    assert set(ModelEndpoint.objects.values_list("name", flat=True)) == {"Shared", "Theirs"}


def test_an_api_refusal_is_a_400_with_one_sentence_and_stores_nothing(tenant_a, api_admin_a, server):
    response = api_admin_a.post(api_url(tenant_a.slug), form(server, model="gpt-9"), format="json")
    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": f'{server.base_url} does not serve the model "gpt-9" (it serves: good-model).',
        "retryable": False,
    }
    assert ModelEndpoint.objects.count() == 0


def test_the_api_refuses_agents_and_editors_and_hides_other_companies(
    tenant_a, tenant_b, api_agent_a, api_editor_a, api_admin_b, api_anonymous, server
):
    theirs = register(tenant_b.tenant, server, name="Theirs")
    own = register(tenant_a.tenant, server)
    for client, status in ((api_agent_a, 403), (api_editor_a, 403), (api_admin_b, 404), (api_anonymous, 401)):
        assert client.get(api_url(tenant_a.slug)).status_code == status
        assert client.post(api_url(tenant_a.slug), form(server), format="json").status_code == status
        assert client.get(api_url(tenant_a.slug, own.id)).status_code == status
        assert client.delete(api_url(tenant_a.slug, own.id)).status_code == status
    # An admin of B asking about A's endpoint through B's own address.
    assert api_admin_b.get(api_url(tenant_b.slug, own.id)).status_code == 404
    assert api_admin_b.delete(api_url(tenant_b.slug, own.id)).status_code == 404
    assert set(ModelEndpoint.objects.all()) == {own, theirs}


def test_the_api_is_in_the_openapi_schema_without_the_key_in_any_answer(api_admin_a):
    schema = api_admin_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert set(schema["paths"]["/api/v1/tenants/{slug}/model-endpoints/"]) >= {"get", "post"}
    assert set(schema["paths"]["/api/v1/tenants/{slug}/model-endpoints/{endpoint_id}/"]) >= {"get", "delete"}
    output = schema["components"]["schemas"]["ModelEndpointOutput"]["properties"]
    assert not {"api_key", "api_key_sealed"} & set(output)
