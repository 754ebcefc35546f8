"""The company settings page's "Data retention" form posts here (admins only). A refused period is shown
again on this page, next to its field, with what was typed; a saved policy returns to the settings page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant
from apps.retention.models import MAX_DAYS, PERIOD_FIELDS
from apps.retention.policy import RetentionPolicyInvalid
from apps.retention.selectors import retention_form_fields, retention_policy_for
from apps.retention.services import retention_policy_set


@login_required
@require_http_methods(["GET", "POST"])
def retention_settings(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    context = {"tenant": tenant, "max_days": MAX_DAYS, "error_summary": ""}
    if request.method == "GET":
        fields = retention_form_fields(policy=retention_policy_for(tenant=tenant))
        return render(request, "retention/settings_page.html", {**context, "fields": fields})
    # A field the form did not send stays as it is; one sent empty means "keep forever".
    values = {name: request.POST[name] for name in PERIOD_FIELDS if name in request.POST}
    try:
        retention_policy_set(tenant=tenant, actor=request.user, values=values)
    except RetentionPolicyInvalid as exc:
        fields = retention_form_fields(
            policy=retention_policy_for(tenant=tenant), values=values, errors=exc.fields
        )
        context.update(fields=fields, error_summary=exc.message)
        return render(request, "retention/settings_page.html", context, status=400)
    messages.success(request, "Data retention is saved.")
    return redirect(reverse("tenant-settings", args=[tenant.slug]) + "#retention-h")
