"""The change page: a knowledge change being checked against the company's golden answers, or held.

It shows the check's progress (polled as JSON by static/js/change-progress.js; without JavaScript the
editor reloads), the answers that would turn wrong with their before and after, and the decision forms,
which post back here and work without JavaScript.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import HelpdeskError
from apps.releases import gate
from apps.releases.models import GatedChange

EDITORS = [Role.EDITOR]
ANYWAY = {
    GatedChange.Kind.PUBLISH: "Publish anyway",
    GatedChange.Kind.ROLLBACK: "Roll back anyway",
    GatedChange.Kind.UNPUBLISH: "Unpublish anyway",
    GatedChange.Kind.DELETE: "Delete anyway",
}


def _editor(request: HttpRequest, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=EDITORS)
    assert isinstance(request.user, User)
    return tenant, request.user


def _applied_message(change: GatedChange) -> str:
    return f"{gate.change_title(change)}: done. Customers get the change now."


@login_required
@require_http_methods(["GET", "POST"])
def change_page(request: HttpRequest, slug: str, change_id: str) -> HttpResponse:
    tenant, user = _editor(request, slug)
    change = gate.access_change(tenant=tenant, change_id=change_id)
    here = reverse("kb-change", kwargs={"slug": tenant.slug, "change_id": change.id})

    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "confirm":
                change = gate.change_confirm(change=change, actor=user)
                messages.success(request, _applied_message(change))
            elif action == "cancel":
                gate.change_cancel(change=change, actor=user)
                messages.success(request, f"{gate.change_title(change)}: cancelled. Nothing was changed.")
            else:
                messages.error(request, "That action isn't available on this page.")
        except HelpdeskError as exc:
            messages.error(request, exc.message)
        return redirect(here)

    document_url = (
        reverse("kb-document", kwargs={"slug": tenant.slug, "document_id": change.document_id})
        if change.document_id
        else None
    )
    return render(
        request,
        "releases/change.html",
        {
            "tenant": tenant,
            "change": change,
            "title": gate.change_title(change),
            "progress": gate.change_progress(change),
            "anyway": ANYWAY.get(GatedChange.Kind(change.kind), "Apply anyway"),
            "document_url": document_url,
            "Status": GatedChange.Status,
        },
    )


@require_GET
def change_progress_json(request: HttpRequest, slug: str, change_id: str) -> JsonResponse:
    """Errors (signed out, not an editor, another company's change) answer as JSON through the error
    middleware: the poller asks with `Accept: application/json`."""
    tenant, _ = _editor(request, slug)
    change = gate.access_change(tenant=tenant, change_id=change_id)
    return JsonResponse(gate.change_progress(change))
