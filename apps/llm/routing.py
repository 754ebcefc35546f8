"""Which model answers a conversation: its route, decided once when the conversation starts.

A conversation's `model_endpoint` is set only when a canary put it in the candidate arm; otherwise it is
answered by the company's current model (TenantModel), or, when the company has none, by the configured
one (LLM_BASE_URL, LLM_MODEL, LLM_API_KEY). The arm is drawn once, at creation (`canary_assign`), and never
recomputed: a customer keeps talking to one model for the whole conversation even when the canary's share
changes, and conversations that existed before the canary started are never moved onto it.

Every customer turn reads its conversation's route (`conversation_route`) and passes the route's base URL,
model and key to the model call; the route's label ("model@host") names its series at /metrics.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q

from apps.core.rehearsal import rehearsing
from apps.core.sealing import SealBroken, unseal
from apps.llm.models import Canary, ModelEndpoint, TenantModel

logger = logging.getLogger(__name__)

ARM_CURRENT = "current"
ARM_CANDIDATE = "candidate"
STYLES = ("auto", "quote", "compose")


@dataclass(frozen=True)
class Route:
    endpoint_id: uuid.UUID | None  # None: the configured model of the settings
    base_url: str
    model: str
    api_key: str
    label: str  # "model@host": bounded by the endpoints registered, never a request's data
    style: str  # "auto" | "quote" | "compose": the endpoint's own answer style

    def __repr__(self) -> str:
        # The key never reaches a log line or a traceback's locals through this object's repr.
        return f"Route(endpoint_id={self.endpoint_id!r}, label={self.label!r}, style={self.style!r})"


def endpoint_label(base_url: str, model: str) -> str:
    """The series label of a model at an endpoint: "model@host[:port]"."""
    host = urlsplit(base_url.strip()).netloc or base_url.strip().rstrip("/")
    return f"{model.strip()}@{host}"


def route_default() -> Route:
    """The configured model (LLM_BASE_URL, LLM_MODEL, LLM_API_KEY), answer style "auto"."""
    base_url: str = settings.LLM_BASE_URL
    model: str = settings.LLM_MODEL
    return Route(
        endpoint_id=None,
        base_url=base_url,
        model=model,
        api_key=settings.LLM_API_KEY,
        label=endpoint_label(base_url, model),
        style="auto",
    )


def route_for(endpoint: ModelEndpoint | None) -> Route:
    """The route of a registered endpoint, its key unsealed; None: the configured model."""
    if endpoint is None:
        return route_default()
    try:
        api_key = unseal(endpoint.api_key_sealed)
    except SealBroken:
        # The call then goes out without the company's key and the endpoint refuses it (401): the turn
        # answers with the quoted policy and the model's absence noted, as for any endpoint failure.
        logger.error("the key of model endpoint %s cannot be unsealed (SECRET_KEY changed?)", endpoint.id)
        api_key = ""
    return Route(
        endpoint_id=endpoint.id,
        base_url=endpoint.base_url,
        model=endpoint.model,
        api_key=api_key,
        label=endpoint_label(endpoint.base_url, endpoint.model),
        style=endpoint.style if endpoint.style in STYLES else "auto",
    )


def tenant_current_endpoint(tenant_id: uuid.UUID) -> ModelEndpoint | None:
    """The endpoint answering the company's conversations now; None: the configured model."""
    row = TenantModel.objects.filter(tenant_id=tenant_id).select_related("endpoint").first()
    return row.endpoint if row is not None else None


def conversation_route(*, tenant_id: uuid.UUID, endpoint_id: uuid.UUID | None) -> Route:
    """The route of a conversation whose `model_endpoint` is `endpoint_id`: that endpoint if it is still
    the company's or the operator's, else the company's current model."""
    if endpoint_id is not None:
        endpoint = (
            ModelEndpoint.objects.filter(id=endpoint_id)
            .filter(Q(tenant_id=tenant_id) | Q(tenant__isnull=True))
            .first()
        )
        if endpoint is not None:
            return route_for(endpoint)
        logger.warning(
            "conversation endpoint %s is not the company's: answered by its current model", endpoint_id
        )
    return route_for(tenant_current_endpoint(tenant_id))


def canary_assign(*, tenant_id: uuid.UUID) -> tuple[uuid.UUID | None, uuid.UUID | None, str]:
    """The (model_endpoint, canary, canary_arm) of a conversation the company is starting now.

    While a canary of the company runs, the conversation joins its candidate arm with probability
    share/100, else its current arm; with no running canary it joins none. Called once per conversation,
    at creation: the three fields are never recomputed. A rehearsal's conversation (a golden run) joins
    none: the run chooses its model itself."""
    if rehearsing():
        return None, None, ""
    canary = (
        Canary.objects.filter(tenant_id=tenant_id, status=Canary.Status.RUNNING)
        .only("id", "candidate_id", "share")
        .first()
    )
    if canary is None:
        return None, None, ""
    if secrets.randbelow(100) < canary.share:
        return canary.candidate_id, canary.id, ARM_CANDIDATE
    return None, canary.id, ARM_CURRENT
