"""Model profiles (apps/llm/profiles.py): what `manage.py model_profile` records per endpoint and model, and
what the "auto" answer style makes of it."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import Tenant
from apps.core.errors import BadRequest
from apps.llm import profiles
from apps.llm.models import ModelProfile

pytestmark = pytest.mark.django_db

URL = "http://llm.internal:8080/v1"


@pytest.fixture(autouse=True)
def _configured(settings: Any) -> None:
    settings.LLM_BASE_URL = URL
    settings.LLM_MODEL = "qwen2.5-3b-instruct"
    profiles.profile_cache_clear()


def _record(composed: int = 100, supported: int = 97, **kwargs: Any) -> ModelProfile:
    values: dict[str, Any] = {
        "base_url": URL,
        "model": "qwen2.5-3b-instruct",
        "questions": 40,
        "composed": composed,
        "supported": supported,
        "first_token_p50_ms": 310.5,
        "complete_p50_ms": 2450.0,
    }
    return profiles.profile_record(**{**values, **kwargs})


def test_a_measurement_is_stored_per_endpoint_and_model_and_replaced_by_the_next() -> None:
    first = _record(composed=100, supported=97)
    assert (first.support_rate, first.passes, first.questions) == (0.97, True, 40)
    second = _record(base_url=URL + "/", composed=50, supported=40, first_token_p50_ms=None)
    assert second.id == first.id  # a trailing slash names the same endpoint
    assert (second.support_rate, second.passes, second.first_token_p50_ms) == (0.8, False, None)
    other = _record(model="smollm2-135m-instruct", composed=0, supported=0)
    assert (other.support_rate, other.passes) == (0.0, False)
    assert ModelProfile.objects.count() == 2


@pytest.mark.parametrize(
    ("composed", "supported", "passes"),
    [
        (20, 19, True),  # 95% of the minimum number of sentences
        (19, 19, False),  # every sentence supported, but too few measured
        (100, 94, False),
        (100, 95, True),
    ],
)
def test_passing_needs_the_support_rate_over_enough_sentences(
    composed: int, supported: int, passes: bool
) -> None:
    assert _record(composed=composed, supported=supported).passes is passes


def test_the_bar_is_a_setting(settings: Any) -> None:
    settings.ANSWER_COMPOSE_MIN_SUPPORT = 0.99
    assert _record(composed=100, supported=97).passes is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"supported": 101}, "101 supported sentences out of 100 composed is impossible."),
        ({"questions": -1}, "Counts of questions and sentences cannot be negative."),
        ({"complete_p50_ms": float("nan")}, "complete_p50_ms must be a non-negative number"),
        ({"model": " "}, "A profile needs the endpoint's base URL and the model's name."),
    ],
)
def test_impossible_measurements_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as refused:
        _record(**changes)
    assert refused.value.message.startswith(message)
    assert ModelProfile.objects.count() == 0


def test_the_current_profile_is_the_configured_models_and_cached_briefly(
    settings: Any, monkeypatch: Any
) -> None:
    assert profiles.profile_current() is None
    stored = _record()
    # Recording clears this process's cache: the new measurement is seen at once here.
    assert profiles.profile_current() == stored
    clock = [1000.0]
    monkeypatch.setattr(profiles.time, "monotonic", lambda: clock[0])
    profiles.profile_cache_clear()
    assert profiles.profile_current() == stored
    ModelProfile.objects.all().delete()  # as another process's change would look from here
    with CaptureQueriesContext(connection) as queries:
        assert profiles.profile_current() == stored
    assert len(queries) == 0
    clock[0] += profiles.DEFAULT_CACHE_SECONDS + 0.01
    assert profiles.profile_current() is None
    # Another configured model is another profile.
    settings.LLM_MODEL = "smollm2-135m-instruct"
    assert profiles.profile_current() is None


def _tenant(style: str) -> Tenant:
    return Tenant(slug="t", name="T", answer_style=style)


def test_style_for_a_company_that_chose_keeps_its_choice() -> None:
    _record(composed=100, supported=10)
    assert profiles.style_for(_tenant("compose")) == (
        "compose",
        "the company chose to compose answers in its settings",
    )
    assert profiles.style_for(_tenant("quote")) == (
        "quote",
        "the company chose to quote answers in its settings",
    )


def test_auto_quotes_until_the_configured_model_is_profiled_and_passes() -> None:
    assert profiles.style_for(_tenant("auto")) == (
        "quote",
        "the configured model has not been profiled; run manage.py model_profile",
    )
    measured = _record(composed=12, supported=12).measured_at
    day = f"{measured:%Y-%m-%d}"
    assert profiles.style_for(_tenant("auto")) == (
        "quote",
        f"qwen2.5-3b-instruct composed only 12 sentences when measured {day}; composing needs a measurement "
        "of at least 20",
    )
    _record(composed=100, supported=90)
    assert profiles.style_for(_tenant("auto")) == (
        "quote",
        "only 90.0% of the 100 sentences qwen2.5-3b-instruct composed were supported by the evidence "
        f"(measured {day}); composing needs at least 95.0%",
    )
    _record(composed=100, supported=97)
    assert profiles.style_for(_tenant("auto")) == (
        "compose",
        "97.0% of the 100 sentences qwen2.5-3b-instruct composed were supported by the evidence "
        f"(measured {day}), at least the 95.0% composing needs",
    )


def test_operators_see_profiles_in_the_admin_but_cannot_change_them(admin_client: Any) -> None:
    profile = _record()
    listing = admin_client.get("/admin/llm/modelprofile/")
    assert listing.status_code == 200
    assert "qwen2.5-3b-instruct" in listing.content.decode()
    assert admin_client.get("/admin/llm/modelprofile/add/").status_code == 403
    detail = admin_client.get(f"/admin/llm/modelprofile/{profile.id}/change/")
    assert detail.status_code == 200  # a view-only page
    assert 'name="_save"' not in detail.content.decode()
    assert (
        admin_client.post(f"/admin/llm/modelprofile/{profile.id}/delete/", {"post": "yes"}).status_code == 403
    )
    assert ModelProfile.objects.count() == 1
