"""Model profiles: how far the configured model can be trusted to compose answers, measured, not assumed.

`manage.py model_profile` asks the model a fixed set of questions with their evidence and records, per
(endpoint, model), how many sentences it composed, how many of those the checker found supported by the
evidence, and its latency (`profile_record`). The "auto" answer style (Tenant.answer_style) reads the
profile of the configured model on every customer turn (`style_for`): it composes only with a model whose
support rate reached ANSWER_COMPOSE_MIN_SUPPORT over at least MIN_SENTENCES sentences, and otherwise
quotes the policy's own sentences, which needs no trust in the model at all.

`profile_current` is cached per process for MODEL_PROFILE_CACHE_SECONDS (5 s by default): a new
measurement reaches every process within that time, and a turn costs no query for it.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from apps.accounts import hooks
from apps.accounts.models import AnswerStyle
from apps.core.errors import BadRequest
from apps.llm.models import ModelProfile

if TYPE_CHECKING:
    from apps.accounts.models import Tenant
    from apps.llm.routing import Route

# Below this many composed sentences a support rate says too little (one slip in 19 is already 95%).
MIN_SENTENCES = 20
DEFAULT_MIN_SUPPORT = 0.95
DEFAULT_CACHE_SECONDS = 5.0
NOT_PROFILED = "the configured model has not been profiled; run manage.py model_profile"

_cache: dict[tuple[str, str], tuple[float, ModelProfile | None]] = {}
_cache_lock = threading.Lock()


def min_support() -> float:
    return float(getattr(settings, "ANSWER_COMPOSE_MIN_SUPPORT", DEFAULT_MIN_SUPPORT))


def profile_passes(*, composed: int, supported: int) -> bool:
    """Enough sentences measured, and enough of them supported, to let this model compose answers."""
    return composed >= MIN_SENTENCES and supported / composed >= min_support()


def _endpoint(base_url: str) -> str:
    # "http://host/v1/" and "http://host/v1" are one endpoint.
    return base_url.strip().rstrip("/")


def profile_record(
    *,
    base_url: str,
    model: str,
    questions: int,
    composed: int,
    supported: int,
    first_token_p50_ms: float | None,
    complete_p50_ms: float | None,
) -> ModelProfile:
    """Stores a new measurement of `model` at `base_url`, replacing the previous one."""
    if not base_url.strip() or not model.strip():
        raise BadRequest("A profile needs the endpoint's base URL and the model's name.")
    if min(questions, composed, supported) < 0:
        raise BadRequest("Counts of questions and sentences cannot be negative.")
    if supported > composed:
        raise BadRequest(f"{supported} supported sentences out of {composed} composed is impossible.")
    for name, value in (("first_token_p50_ms", first_token_p50_ms), ("complete_p50_ms", complete_p50_ms)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise BadRequest(f"{name} must be a non-negative number of milliseconds, or None.")
    profile, _ = ModelProfile.objects.update_or_create(
        base_url=_endpoint(base_url),
        model=model.strip(),
        defaults={
            "measured_at": timezone.now(),
            "questions": questions,
            "composed": composed,
            "supported": supported,
            "support_rate": supported / composed if composed else 0.0,
            "first_token_p50_ms": first_token_p50_ms,
            "complete_p50_ms": complete_p50_ms,
            "passes": profile_passes(composed=composed, supported=supported),
        },
    )
    profile_cache_clear()
    return profile


def profile_current() -> ModelProfile | None:
    """The profile of the configured model (LLM_BASE_URL, LLM_MODEL), or None when it was never measured."""
    return profile_of(base_url=settings.LLM_BASE_URL, model=settings.LLM_MODEL)


def profile_of(*, base_url: str, model: str) -> ModelProfile | None:
    """The profile of `model` at `base_url` (a registered endpoint's, or the configured one), or None."""
    key = (_endpoint(base_url), model.strip())
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    profile = ModelProfile.objects.filter(base_url=key[0], model=key[1]).first()
    ttl = float(getattr(settings, "MODEL_PROFILE_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))
    with _cache_lock:
        _cache[key] = (now + ttl, profile)
    return profile


def profile_cache_clear() -> None:
    """Forget this process's cached profiles (a new measurement; tests)."""
    with _cache_lock:
        _cache.clear()


def style_auto(route: Route | None = None) -> tuple[str, str]:
    """What the "auto" answer style means right now for the model of `route` (None: the configured
    model): ("compose" | "quote", the reason in one sentence)."""
    if route is None or route.endpoint_id is None:
        profile = profile_current()
        not_profiled = NOT_PROFILED
    else:
        profile = profile_of(base_url=route.base_url, model=route.model)
        not_profiled = f"{route.label} has not been profiled; run manage.py model_profile against it"
    if profile is None:
        return AnswerStyle.QUOTE.value, not_profiled
    rate = f"{profile.support_rate * 100:.1f}%"
    needed = f"{min_support() * 100:.1f}%"
    when = f"measured {profile.measured_at:%Y-%m-%d}"
    if profile.composed < MIN_SENTENCES:
        return AnswerStyle.QUOTE.value, (
            f"{profile.model} composed only {profile.composed} sentences when {when}; composing needs a "
            f"measurement of at least {MIN_SENTENCES}"
        )
    if not profile_passes(composed=profile.composed, supported=profile.supported):
        return AnswerStyle.QUOTE.value, (
            f"only {rate} of the {profile.composed} sentences {profile.model} composed were supported by "
            f"the evidence ({when}); composing needs at least {needed}"
        )
    return AnswerStyle.COMPOSE.value, (
        f"{rate} of the {profile.composed} sentences {profile.model} composed were supported by the "
        f"evidence ({when}), at least the {needed} composing needs"
    )


def style_for(tenant: Tenant, route: Route | None = None) -> tuple[str, str]:
    """How to word this company's answers when `route` answers (None: the configured model):
    ("quote" | "compose", the reason in one sentence). The company's own choice wins; under "auto", the
    endpoint's own quote or compose, else the profile of the route's model."""
    if tenant.answer_style in (AnswerStyle.QUOTE, AnswerStyle.COMPOSE):
        style = str(tenant.answer_style)
        return style, f"the company chose to {style} answers in its settings"
    if route is not None and route.style in (AnswerStyle.QUOTE, AnswerStyle.COMPOSE):
        return route.style, f"the endpoint {route.label} is set to {route.style} answers"
    return style_auto(route)


def register_auto_style() -> None:
    """Lets the company settings page (accounts, a lower app) show what "auto" means right now."""
    hooks.auto_style_resolver_set(style_auto)
