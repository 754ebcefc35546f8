"""Staff pages of the human side: the agent console (its data comes from the API and the console socket)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant


@login_required
@require_GET
def console(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, roles = access_tenant(actor=request.user, slug=slug, roles=[Role.AGENT])
    return render(
        request,
        "handoff/console.html",
        {
            "tenant": tenant,
            "roles": sorted(roles),
            "is_admin": Role.ADMIN in roles,
            "user_id": request.user.pk,
        },
    )
