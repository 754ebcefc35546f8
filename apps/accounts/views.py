"""Staff pages: sign-in lands on the companies a person works for; admins manage their company's widget."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts import hooks, selectors, services
from apps.accounts.models import AnswerStyle, Role, User
from apps.core.errors import BadRequest, HelpdeskError

# One line each on the settings page, in the order the choices are shown.
ANSWER_STYLE_HELP: dict[str, str] = {
    AnswerStyle.AUTO.value: "Auto: chosen from the configured model's measured profile.",
    AnswerStyle.QUOTE.value: (
        "Quote: the customer sees the policy's own sentences under a short lead-in; nothing generated."
    ),
    AnswerStyle.COMPOSE.value: (
        "Compose: the model writes up to three sentences from those sentences, each checked before it is "
        "shown."
    ),
}


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def staff_home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    tenants = [
        {"tenant": t, "roles": sorted(selectors.user_roles(user=user, tenant=t))}
        for t in selectors.tenants_for_user(user=user)
    ]
    return render(request, "accounts/staff_home.html", {"tenants": tenants})


@login_required
@require_http_methods(["GET"])
def tenant_settings(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, roles = selectors.access_tenant(actor=request.user, slug=slug)
    topics = [
        {"key": t.key, "label": t.label, "description": t.description, "on": t.key in tenant.handoff_topics}
        for t in hooks.handoff_topics()
    ]
    context = {
        "tenant": tenant,
        "roles": sorted(roles),
        "is_admin": Role.ADMIN in roles,
        "origins": selectors.tenant_origins(tenant=tenant),
        "memberships": selectors.tenant_memberships(tenant=tenant) if Role.ADMIN in roles else [],
        "script_src": request.build_absolute_uri("/widget.js"),
        "default_threshold": settings.KB_ABSTAIN_SIMILARITY,
        "answer_styles": list(ANSWER_STYLE_HELP.items()),
        "auto_style": hooks.auto_style_resolve(),
        "handoff_topics": topics,
        "handoff_topics_on": [t["label"] for t in topics if t["on"]],
        # Sections higher apps own (voice): each renders its own template and posts to its own view.
        "settings_sections": hooks.settings_sections(tenant=tenant),
    }
    return render(request, "accounts/tenant_settings.html", context)


@login_required
@require_POST
def tenant_origin_add(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    try:
        added = services.allowed_origin_add(
            tenant=tenant, origin=request.POST.get("origin", ""), actor=_user(request)
        )
    except HelpdeskError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{added.origin} can now embed the widget.")
    return redirect("tenant-settings", slug=tenant.slug)


@login_required
@require_POST
def tenant_origin_remove(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    origin = request.POST.get("origin", "")
    try:
        removed = services.allowed_origin_remove(tenant=tenant, origin=origin, actor=_user(request))
    except HelpdeskError as exc:
        messages.error(request, exc.message)
    else:
        if removed:
            messages.success(request, f"{origin} can no longer embed the widget.")
        else:
            messages.error(request, f"{origin} was not an allowed origin.")
    return redirect("tenant-settings", slug=tenant.slug)


@login_required
@require_POST
def tenant_secret_rotate(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    services.tenant_identity_secret_rotate(tenant=tenant, actor=_user(request))
    messages.warning(request, "New identity secret issued: update your website's signing code now.")
    return redirect("tenant-settings", slug=tenant.slug)


@login_required
@require_POST
def tenant_assistant(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    raw_threshold = request.POST.get("abstain_threshold", "").strip()
    raw_budget = request.POST.get("daily_token_budget", "0").strip() or "0"
    try:
        try:
            threshold = float(raw_threshold) if raw_threshold else None
            budget = int(raw_budget)
        except ValueError:
            raise BadRequest(
                "Use a number such as 0.40 for the threshold and a whole number for the budget."
            ) from None
        services.tenant_assistant_configure(
            tenant=tenant, abstain_threshold=threshold, daily_token_budget=budget, actor=_user(request)
        )
    except HelpdeskError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The assistant's settings are saved.")
    return redirect("tenant-settings", slug=tenant.slug)


@login_required
@require_POST
def tenant_answers(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    try:
        services.tenant_answers_configure(
            tenant=tenant,
            actor=_user(request),
            answer_style=request.POST.get("answer_style", ""),
            # Unticked boxes are not sent: the form always sends the whole set, so none ticked means none.
            handoff_topics=request.POST.getlist("handoff_topics"),
        )
    except HelpdeskError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "How the assistant answers is saved.")
    return redirect("tenant-settings", slug=tenant.slug)


@login_required
@require_POST
def tenant_email(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    try:
        services.tenant_email_configure(
            tenant=tenant,
            actor=_user(request),
            support_email=request.POST.get("support_email", ""),
            # An unticked box is not sent: the form always sends the address, so absent means off.
            email_assistant_enabled=request.POST.get("email_assistant_enabled") == "on",
        )
    except HelpdeskError as exc:
        tenant.refresh_from_db(fields=["support_email", "email_assistant_enabled"])
        messages.error(request, exc.message)
    else:
        messages.success(request, "Email settings are saved.")
    return redirect("tenant-settings", slug=tenant.slug)
