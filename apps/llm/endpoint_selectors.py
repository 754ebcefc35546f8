"""Reads on model endpoints: which a company may use, and what "auto" means for each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.accounts.models import Tenant
from apps.core.errors import BadRequest, NotFound
from apps.llm.models import ModelEndpoint
from apps.llm.profiles import style_auto
from apps.llm.routing import route_for, tenant_current_endpoint


def endpoints_for(tenant: Tenant) -> QuerySet[ModelEndpoint]:
    """The company's own endpoints and the operator's (offered to every company)."""
    return ModelEndpoint.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True)).order_by(
        "name", "created_at"
    )


def access_endpoint(*, tenant: Tenant, endpoint_id: uuid.UUID | str) -> ModelEndpoint:
    """One of `endpoints_for(tenant)`; another company's, or none, is NotFound."""
    try:
        endpoint_id = uuid.UUID(str(endpoint_id))
    except ValueError:
        raise NotFound() from None
    endpoint = endpoints_for(tenant).filter(id=endpoint_id).first()
    if endpoint is None:
        raise NotFound()
    return endpoint


def endpoint_named(*, tenant: Tenant, name: str) -> ModelEndpoint:
    """The endpoint whose name or model is `name` among the company's own and the operator's; the
    company's own first, then an exact name before a model. BadRequest, in one sentence, when none is or
    when two are equally good."""
    wanted = name.strip()
    if not wanted:
        raise BadRequest("Name the model endpoint to run against.")
    candidates = list(
        ModelEndpoint.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True)).filter(
            Q(name=wanted) | Q(model=wanted)
        )
    )
    if not candidates:
        raise BadRequest(f"No model endpoint of this company or the operator is named {wanted!r}.")

    def rank(endpoint: ModelEndpoint) -> tuple[int, int]:
        return (0 if endpoint.tenant_id is not None else 1, 0 if endpoint.name == wanted else 1)

    candidates.sort(key=rank)
    if len(candidates) > 1 and rank(candidates[0]) == rank(candidates[1]):
        raise BadRequest(f"{wanted!r} names more than one model endpoint: use its registered name.")
    return candidates[0]


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as the models page shows it: what "auto" resolves to for it, from its measured profile."""

    endpoint: ModelEndpoint | None  # None: the configured model (LLM_BASE_URL, LLM_MODEL)
    label: str  # "model@host"
    auto_style: str  # "quote" | "compose"
    auto_reason: str  # one sentence

    @property
    def own(self) -> bool:
        return self.endpoint is not None and self.endpoint.tenant_id is not None


def _view(endpoint: ModelEndpoint | None) -> EndpointView:
    route = route_for(endpoint)
    style, reason = style_auto(route)
    return EndpointView(endpoint=endpoint, label=route.label, auto_style=style, auto_reason=reason)


def endpoint_views(tenant: Tenant) -> list[EndpointView]:
    return [_view(endpoint) for endpoint in endpoints_for(tenant)]


def current_model_view(tenant: Tenant) -> EndpointView:
    """The model answering the company's conversations now (its TenantModel, else the configured one)."""
    return _view(tenant_current_endpoint(tenant.id))
