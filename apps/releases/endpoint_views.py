"""The models page (/staff/<slug>/models/, admins): the company's current model, the endpoints it may use,
registering and removing its own, and the canary section (apps/releases/canary_selectors.py).

A refused registration is shown again on the page, its sentence next to the form and the values kept,
except the key, which is never sent back to a browser."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest
from apps.llm.endpoint_selectors import access_endpoint, current_model_view, endpoint_views
from apps.llm.endpoints import STYLES, endpoint_delete, endpoint_register
from apps.llm.profiles import min_support
from apps.releases.canary_selectors import canary_section

STYLE_HELP = {
    "auto": "Auto: compose when this model's measured profile says it can, else quote",
    "quote": "Quote: answer with the policy's own sentences",
    "compose": "Compose: let the model word the answer (unsupported sentences are still removed)",
}
FORM_FIELDS = ("name", "base_url", "model", "style")


def _admin(request: HttpRequest, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    assert isinstance(request.user, User)
    return tenant, request.user


def _page(
    request: HttpRequest,
    tenant: Tenant,
    user: User,
    *,
    values: dict[str, str],
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context: dict[str, Any] = {
        "tenant": tenant,
        "current": current_model_view(tenant),
        "endpoints": endpoint_views(tenant),
        "styles": [(style, STYLE_HELP[style]) for style in STYLES],
        "min_support_pct": f"{min_support() * 100:.0f}%",
        "values": values,
        "error": error,
        **canary_section(tenant, user),
    }
    return render(request, "releases/models.html", context, status=status)


@login_required
@require_GET
def models_page(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, user = _admin(request, slug)
    return _page(request, tenant, user, values={"style": "auto"})


@login_required
@require_POST
def model_endpoint_register(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, user = _admin(request, slug)
    values = {name: request.POST.get(name, "") for name in FORM_FIELDS}
    try:
        endpoint = endpoint_register(
            tenant=tenant,
            name=values["name"],
            base_url=values["base_url"],
            model=values["model"],
            api_key=request.POST.get("api_key", ""),
            style=values["style"] or "auto",
            actor=user,
        )
    except BadRequest as exc:
        return _page(request, tenant, user, values=values, error=exc.message, status=400)
    messages.success(
        request, f"{endpoint.name} is registered: it streamed its first token in {_ms(endpoint)}."
    )
    return redirect(reverse("releases-models", args=[tenant.slug]) + "#endpoints-h")


@login_required
@require_POST
def model_endpoint_delete(request: HttpRequest, slug: str, endpoint_id: uuid.UUID) -> HttpResponse:
    tenant, user = _admin(request, slug)
    endpoint = access_endpoint(tenant=tenant, endpoint_id=endpoint_id)
    try:
        endpoint_delete(tenant=tenant, endpoint=endpoint, actor=user)
    except BadRequest as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{endpoint.name} is removed.")
    return redirect(reverse("releases-models", args=[tenant.slug]) + "#endpoints-h")


def _ms(endpoint: Any) -> str:
    first = endpoint.check_report.get("first_token_ms")
    return f"{first:.0f} ms" if isinstance(first, int | float) else "an unmeasured time"
