"""The canary forms of the models page (/staff/<slug>/models/, admins): start, promote, stop. Each posts,
calls one service and redirects back to the page's canary section; a refusal comes back as one sentence
next to the start form, with what the admin typed kept in the address (nothing secret is in it)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import HelpdeskError
from apps.releases.canary import canary_cancel, canary_promote, canary_start
from apps.releases.canary_selectors import access_canary

START_FIELDS = ("candidate", "share", "min_conversations", "abstention", "unsupported", "error")


def _admin(request: HttpRequest, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    assert isinstance(request.user, User)
    return tenant, request.user


def _back(tenant: Tenant, anchor: str = "canary-h", query: dict[str, str] | None = None) -> HttpResponse:
    url = reverse("releases-models", args=[tenant.slug])
    return redirect(f"{url}{'?' + urlencode(query) if query else ''}#{anchor}")


@login_required
@require_POST
def canary_start_view(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, user = _admin(request, slug)
    values = {f: request.POST.get(f, "").strip()[:100] for f in START_FIELDS}
    try:
        canary = canary_start(
            tenant=tenant,
            candidate=values["candidate"],
            share=values["share"],
            min_conversations=values["min_conversations"],
            bounds={k: values[k] for k in ("abstention", "unsupported", "error")},
            actor=user,
        )
    except HelpdeskError as exc:
        if exc.http_status not in (400, 404, 409):
            raise
        messages.error(request, f"The canary was not started: {exc.message}", extra_tags="canary")
        return _back(tenant, "canary-start-h", {f"canary_{k}": v for k, v in values.items()})
    messages.success(
        request,
        f"Checking {canary.candidate.name} against the golden answers; it starts on "
        f"{canary.share} % of new conversations if it passes.",
    )
    return _back(tenant)


@login_required
@require_POST
def canary_promote_view(request: HttpRequest, slug: str, canary_id: str) -> HttpResponse:
    tenant, user = _admin(request, slug)
    canary = access_canary(tenant=tenant, canary_id=canary_id)
    try:
        canary = canary_promote(tenant=tenant, canary=canary, actor=user)
    except HelpdeskError as exc:
        if exc.http_status != 409:
            raise
        messages.error(request, exc.message)
        return _back(tenant)
    messages.success(request, f"{canary.candidate.name} is now the company's model.")
    return _back(tenant, "current-h")


@login_required
@require_POST
def canary_cancel_view(request: HttpRequest, slug: str, canary_id: str) -> HttpResponse:
    tenant, user = _admin(request, slug)
    canary = access_canary(tenant=tenant, canary_id=canary_id)
    try:
        canary_cancel(tenant=tenant, canary=canary, actor=user)
    except HelpdeskError as exc:
        if exc.http_status != 409:
            raise
        messages.error(request, exc.message)
        return _back(tenant)
    messages.success(request, "The canary was stopped; its conversations are back on the current model.")
    return _back(tenant)
