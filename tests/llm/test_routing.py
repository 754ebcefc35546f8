"""Routing (apps/llm/routing.py): which model answers a conversation, with which key, in which answer style,
and the arm of a running canary a new conversation joins."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from apps.accounts.models import Tenant
from apps.audit import metrics
from apps.core.rehearsal import rehearsal
from apps.core.sealing import seal
from apps.llm import profiles
from apps.llm.models import Canary, ModelEndpoint, TenantModel
from apps.llm.routing import (
    Route,
    canary_assign,
    conversation_route,
    endpoint_label,
    route_default,
    route_for,
    tenant_current_endpoint,
)
from apps.llm.streaming import ChatMessage, chat_stream
from tests.audit.exposition import parse
from tests.fakes.openai_server import FakeOpenAI
from tests.llm.conftest import run

pytestmark = pytest.mark.django_db

CONFIGURED = "http://llm.internal:8080/v1"


@pytest.fixture(autouse=True)
def _configured(settings: Settings) -> None:
    settings.LLM_BASE_URL = CONFIGURED
    settings.LLM_MODEL = "configured-model"
    settings.LLM_API_KEY = "configured-key"
    profiles.profile_cache_clear()


def _endpoint(
    tenant: Tenant | None, *, model: str = "candidate-7b", key: str = "sk-candidate", **kw: Any
) -> ModelEndpoint:
    values: dict[str, Any] = {
        "name": f"{model} endpoint",
        "base_url": "https://models.example.com:8443/v1",
        "model": model,
        "api_key_sealed": seal(key),
        "style": "auto",
    }
    return ModelEndpoint.objects.create(tenant=tenant, **{**values, **kw})


def _canary(
    tenant: Tenant, candidate: ModelEndpoint, *, share: int, status: str = Canary.Status.RUNNING
) -> Canary:
    return Canary.objects.create(tenant=tenant, candidate=candidate, share=share, status=status)


def test_the_default_route_is_the_configured_model_with_its_key() -> None:
    route = route_default()
    assert route == Route(
        endpoint_id=None,
        base_url=CONFIGURED,
        model="configured-model",
        api_key="configured-key",
        label="configured-model@llm.internal:8080",
        style="auto",
    )
    assert route_for(None) == route


def test_an_endpoint_route_unseals_its_key_and_never_shows_it(make_tenant: Any) -> None:
    endpoint = _endpoint(make_tenant(), style="compose")
    assert endpoint.api_key_sealed.startswith("sealed:v1:")  # at rest, the key is not readable
    route = route_for(endpoint)
    assert (route.endpoint_id, route.base_url, route.model, route.api_key, route.style) == (
        endpoint.id,
        "https://models.example.com:8443/v1",
        "candidate-7b",
        "sk-candidate",
        "compose",
    )
    assert route.label == "candidate-7b@models.example.com:8443"
    assert "sk-candidate" not in repr(route)
    assert "sk-candidate" not in str(route)
    assert endpoint_label("http://127.0.0.1:9000/v1/", " m ") == "m@127.0.0.1:9000"


def test_a_key_no_configured_secret_opens_goes_out_empty(make_tenant: Any, settings: Settings) -> None:
    endpoint = _endpoint(make_tenant())
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40  # rotated without keeping the old one
    assert route_for(endpoint).api_key == ""


def test_a_conversation_is_answered_by_its_endpoint_else_the_company_model_else_the_configured_one(
    make_tenant: Any,
) -> None:
    tenant, other = make_tenant(), make_tenant()
    own = _endpoint(tenant, model="own-model")
    operators = _endpoint(None, model="operator-model")
    others = _endpoint(other, model="other-company-model")
    assert tenant_current_endpoint(tenant.id) is None
    assert conversation_route(tenant_id=tenant.id, endpoint_id=None) == route_default()
    assert conversation_route(tenant_id=tenant.id, endpoint_id=own.id).model == "own-model"
    assert conversation_route(tenant_id=tenant.id, endpoint_id=operators.id).model == "operator-model"
    # Another company's endpoint never answers this company's conversation, nor one that is gone.
    assert conversation_route(tenant_id=tenant.id, endpoint_id=others.id) == route_default()
    assert conversation_route(tenant_id=tenant.id, endpoint_id=uuid.uuid4()) == route_default()

    TenantModel.objects.create(tenant=tenant, endpoint=operators)
    assert tenant_current_endpoint(tenant.id) == operators
    assert tenant_current_endpoint(other.id) is None
    assert conversation_route(tenant_id=tenant.id, endpoint_id=None).model == "operator-model"
    assert conversation_route(tenant_id=tenant.id, endpoint_id=others.id).model == "operator-model"
    assert conversation_route(tenant_id=tenant.id, endpoint_id=own.id).model == "own-model"
    assert conversation_route(tenant_id=other.id, endpoint_id=None) == route_default()


def test_only_a_running_canary_of_the_company_assigns_arms(make_tenant: Any) -> None:
    tenant, other = make_tenant(), make_tenant()
    candidate = _endpoint(tenant)
    assert canary_assign(tenant_id=tenant.id) == (None, None, "")
    checking = _canary(tenant, candidate, share=100, status=Canary.Status.CHECKING)
    assert canary_assign(tenant_id=tenant.id) == (None, None, "")
    checking.status = Canary.Status.REFUSED
    checking.save(update_fields=["status"])
    everyone = _canary(tenant, candidate, share=100)
    assert [canary_assign(tenant_id=tenant.id) for _ in range(20)] == [
        (candidate.id, everyone.id, "candidate")
    ] * 20
    assert canary_assign(tenant_id=other.id) == (None, None, "")
    with rehearsal():  # a golden run's conversation picks its model itself
        assert canary_assign(tenant_id=tenant.id) == (None, None, "")
    everyone.share = 1
    everyone.save(update_fields=["share"])
    arms = [canary_assign(tenant_id=tenant.id) for _ in range(400)]
    assert {arm for _, _, arm in arms} <= {"current", "candidate"}
    assert all(canary == everyone.id for _, canary, _ in arms)
    assert all(endpoint is None for endpoint, _, arm in arms if arm == "current")
    # 1 %: P(more than 20 of 400) is below 1e-7.
    assert sum(arm == "candidate" for _, _, arm in arms) <= 20
    everyone.status = Canary.Status.STOPPED
    everyone.save(update_fields=["status"])
    assert canary_assign(tenant_id=tenant.id) == (None, None, "")


def test_the_answer_style_follows_the_company_then_the_endpoint_then_the_routes_profile(
    make_tenant: Any,
) -> None:
    from tests.conversations.conftest import answers_configure

    tenant = make_tenant()
    endpoint = _endpoint(tenant, model="profiled-model")
    quoting = _endpoint(tenant, model="quoting-model", style="quote")
    composing = _endpoint(tenant, model="composing-model", style="compose")
    routed = route_for(endpoint)
    label = "profiled-model@models.example.com:8443"
    assert profiles.style_for(tenant, routed) == (
        "quote",
        f"{label} has not been profiled; run manage.py model_profile against it",
    )
    profiles.profile_record(
        base_url="https://models.example.com:8443/v1/",
        model="profiled-model",
        questions=40,
        composed=100,
        supported=99,
        first_token_p50_ms=None,
        complete_p50_ms=None,
    )
    assert profiles.style_for(tenant, routed)[0] == "compose"
    # The configured model was never profiled: its conversations quote.
    assert profiles.style_for(tenant, route_default()) == ("quote", profiles.NOT_PROFILED)
    assert profiles.style_for(tenant) == ("quote", profiles.NOT_PROFILED)
    assert profiles.style_for(tenant, route_for(quoting)) == (
        "quote",
        "the endpoint quoting-model@models.example.com:8443 is set to quote answers",
    )
    assert profiles.style_for(tenant, route_for(composing))[0] == "compose"
    tenant = answers_configure(tenant, style="quote")
    assert profiles.style_for(tenant, route_for(composing)) == (
        "quote",
        "the company chose to quote answers in its settings",
    )


def test_chat_stream_sends_the_routes_key_to_the_routes_endpoint(
    make_tenant: Any, settings: Settings
) -> None:
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    seen: list[str | None] = []

    class KeyedFake(FakeOpenAI):
        def _handler(self) -> Any:
            base = super()._handler()

            class Recording(base):  # type: ignore[misc, valid-type]
                def do_POST(self) -> None:
                    seen.append(self.headers.get("Authorization"))
                    super().do_POST()

            return Recording

    with KeyedFake(models=["candidate-7b"]) as fake:
        endpoint = _endpoint(make_tenant(), base_url=fake.base_url, key="sk-routed")
        route = route_for(endpoint)
        pieces: list[str] = []

        async def collect(piece: str) -> None:
            pieces.append(piece)

        outcome = run(
            chat_stream(
                [ChatMessage(role="user", content="Hello?")],
                on_delta=collect,
                max_tokens=64,
                model=route.model,
                base_url=route.base_url,
                api_key=route.api_key,
            )
        )
    assert seen == ["Bearer sk-routed"]
    assert (outcome.model, outcome.endpoint) == ("candidate-7b", fake.base_url)
    assert fake.chat_requests[0]["model"] == "candidate-7b"
    assert "".join(pieces) == fake.reply_text


def test_per_endpoint_series_render_with_bounded_labels() -> None:
    metrics.metrics_reset()
    metrics.model_reply_observe(
        endpoint="a@h:1", status="complete", ttft_seconds=0.3, shown=2, dropped=1, error_code=""
    )
    metrics.model_reply_observe(endpoint="a@h:1", status="abstained", ttft_seconds=0.1, abstained=True)
    metrics.model_reply_observe(
        endpoint="b@h:2", status="made-up", ttft_seconds=None, error_code="not-a-code"
    )
    shown = parse(metrics.metrics_render())
    assert shown.value("helpdesk_model_replies_total", endpoint="a@h:1", status="complete") == 1
    assert shown.value("helpdesk_model_replies_total", endpoint="a@h:1", status="abstained") == 1
    assert shown.value("helpdesk_model_replies_total", endpoint="b@h:2", status="other") == 1
    assert shown.series("helpdesk_model_abstentions_total") == [{"endpoint": "a@h:1"}]
    assert shown.series("helpdesk_model_errors_total") == [{"endpoint": "b@h:2", "code": "other"}]
    assert shown.value("helpdesk_model_composed_sentences_total", endpoint="a@h:1", result="shown") == 2
    assert shown.value("helpdesk_model_composed_sentences_total", endpoint="a@h:1", result="dropped") == 1
    assert shown.series("helpdesk_model_time_to_first_content_seconds_count") == [{"endpoint": "a@h:1"}]
    assert shown.value("helpdesk_model_time_to_first_content_seconds_count", endpoint="a@h:1") == 2
    assert shown.value("helpdesk_model_time_to_first_content_seconds_bucket", endpoint="a@h:1", le="0.1") == 1
    assert shown.types["helpdesk_model_time_to_first_content_seconds"] == "histogram"
