"""How the assistant answers, per company: the answer style (auto, quote, compose) and the sensitive topics
that hand a turn to a person. Admins change them on the settings page or through the API; everyone else
can only read them."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps

from apps.accounts import services
from apps.accounts.models import DEFAULT_HANDOFF_TOPICS, Tenant
from apps.llm import profiles

pytestmark = pytest.mark.django_db

ALL = ["bereavement", "fraud", "vulnerability", "legal"]


@pytest.fixture(autouse=True)
def _no_cached_profile() -> None:
    profiles.profile_cache_clear()


def _row(tenant: Tenant) -> tuple[str, list[str], int]:
    fresh = Tenant.objects.get(id=tenant.id)
    return fresh.answer_style, fresh.handoff_topics, fresh.knowledge_epoch


def test_a_new_company_starts_on_auto_with_every_topic_handed_to_a_person(make_tenant: Any) -> None:
    tenant = make_tenant()
    assert _row(tenant) == ("auto", ALL, 1)
    assert list(DEFAULT_HANDOFF_TOPICS) == ALL


def test_the_migration_enables_every_built_in_topic_for_existing_companies(make_tenant: Any) -> None:
    tenant = make_tenant()
    Tenant.objects.filter(id=tenant.id).update(handoff_topics=[])
    migration = importlib.import_module("apps.accounts.migrations.0006_tenant_answer_settings")
    migration.enable_every_built_in_topic(django_apps, None)
    assert _row(tenant)[1] == ALL


def test_the_settings_page_explains_each_style_and_what_auto_means_now(tenant_a: Any, client_as: Any) -> None:
    html = client_as(tenant_a.admin).get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert (
        "Quote: the customer sees the policy&#x27;s own sentences under a short lead-in; nothing generated."
        in html
    )
    assert (
        "Compose: the model writes up to three sentences from those sentences, each checked before it is "
        "shown." in html
    )
    assert "Auto: chosen from the configured model&#x27;s measured profile." in html
    assert (
        '<dd id="auto-style"><strong>Quote</strong>: the configured model has not been profiled; '
        "run manage.py model_profile</dd>" in html
    )
    assert 'id="answer_style_auto" name="answer_style" value="auto" checked' in html
    for key in ALL:
        assert (
            f'name="handoff_topics" value="{key}" aria-describedby="handoff_topic_{key}_help" checked' in html
        )
    assert "Lawyers, lawsuits, court action, small claims, complaints to an ombudsman or a regulator." in html


def test_auto_follows_the_measured_profile_of_the_configured_model(
    tenant_a: Any, client_as: Any, settings: Any
) -> None:
    profiles.profile_record(
        base_url=settings.LLM_BASE_URL,
        model=settings.LLM_MODEL,
        questions=40,
        composed=100,
        supported=97,
        first_token_p50_ms=300.0,
        complete_p50_ms=2100.0,
    )
    html = client_as(tenant_a.admin).get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert '<dd id="auto-style"><strong>Compose</strong>: 97.0% of the 100 sentences' in html


def test_admins_save_the_style_and_topics_on_the_page(tenant_a: Any, client_as: Any) -> None:
    client = client_as(tenant_a.admin)
    url = f"/staff/{tenant_a.slug}/answers/"
    page = client.post(
        url,
        {"answer_style": "quote", "handoff_topics": ["vulnerability", "bereavement", "fraud"]},
        follow=True,
    )
    assert "How the assistant answers is saved." in page.content.decode()
    # Stored in the order they are checked, whatever the order they were sent in.
    assert _row(tenant_a.tenant) == ("quote", ["bereavement", "fraud", "vulnerability"], 1)
    html = page.content.decode()
    assert '<dd id="handoff-topics">Bereavement, Fraud and stolen accounts, Vulnerable customers</dd>' in html
    assert 'name="handoff_topics" value="legal" aria-describedby="handoff_topic_legal_help">' in html

    # Nothing ticked: no topic hands off.
    client.post(url, {"answer_style": "compose"})
    assert _row(tenant_a.tenant) == ("compose", [], 1)
    html = client.get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert "None: the assistant answers every topic (customers can still ask for a person)." in html


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"answer_style": "poetry", "handoff_topics": ["legal"]},
            "&#x27;poetry&#x27; is not an answer style",
        ),
        (
            {"answer_style": "quote", "handoff_topics": ["legal", "weather"]},
            "weather is not a sensitive topic",
        ),
    ],
)
def test_a_bad_choice_changes_nothing(
    tenant_a: Any, client_as: Any, data: dict[str, Any], error: str
) -> None:
    page = client_as(tenant_a.admin).post(f"/staff/{tenant_a.slug}/answers/", data, follow=True)
    assert error in page.content.decode()
    assert _row(tenant_a.tenant) == ("auto", ALL, 1)


def test_only_admins_change_how_the_assistant_answers(
    tenant_a: Any, client_as: Any, api_client_as: Any
) -> None:
    for user in (tenant_a.agent, tenant_a.editor):
        page = client_as(user).post(
            f"/staff/{tenant_a.slug}/answers/", {"answer_style": "quote", "handoff_topics": []}
        )
        assert page.status_code == 403
        api = api_client_as(user).patch(
            f"/api/v1/tenants/{tenant_a.slug}/", {"answer_style": "quote"}, format="json"
        )
        assert api.status_code == 403
    assert _row(tenant_a.tenant) == ("auto", ALL, 1)
    # Agents read the settings but get no form to change them.
    html = client_as(tenant_a.agent).get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert (
        '<dd id="handoff-topics">Bereavement, Fraud and stolen accounts, Vulnerable customers, Legal threats'
        in html
    )
    assert "/answers/" not in html


def test_other_companies_cannot_change_them(tenant_a: Any, tenant_b: Any, client_as: Any) -> None:
    page = client_as(tenant_b.admin).post(f"/staff/{tenant_a.slug}/answers/", {"answer_style": "quote"})
    assert page.status_code == 404
    assert _row(tenant_a.tenant) == ("auto", ALL, 1)


def test_admins_set_them_through_the_api(tenant_a: Any, api_client_as: Any) -> None:
    client = api_client_as(tenant_a.admin)
    url = f"/api/v1/tenants/{tenant_a.slug}/"
    body = client.patch(
        url, {"answer_style": "compose", "handoff_topics": ["legal", "fraud"]}, format="json"
    ).json()
    assert (body["answer_style"], body["handoff_topics"]) == ("compose", ["fraud", "legal"])
    # A bad topic is refused before anything in the request is saved.
    bad = client.patch(url, {"daily_token_budget": 7, "handoff_topics": ["weather"]}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")
    bad = client.patch(url, {"answer_style": "poetry"}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")
    fresh = Tenant.objects.get(id=tenant_a.tenant.id)
    assert (fresh.answer_style, fresh.handoff_topics, fresh.daily_token_budget) == (
        "compose",
        ["fraud", "legal"],
        0,
    )


def test_the_knowledge_epoch_only_moves_forward(make_tenant: Any) -> None:
    tenant = make_tenant()
    services.tenant_knowledge_epoch_bump(tenant_id=tenant.id)
    services.tenant_knowledge_epoch_bump(tenant_id=tenant.id)
    assert _row(tenant)[2] == 3
    # Not a setting anyone edits.
    assert not Tenant._meta.get_field("knowledge_epoch").editable
