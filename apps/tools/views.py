"""The tools page: admins choose the tools and connect the business system; agents approve or reject what
the assistant proposes and watch recent runs.

Like the knowledge pages, every form posts back here with an `action` field, works without JavaScript, and
the outcome comes back as a message after a redirect, so a reload never repeats a decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.accounts.models import Role, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest, Forbidden, HelpdeskError, NotFound
from apps.tools import selectors, services
from apps.tools.models import AdapterKind, Approval, RunStatus, ToolRun
from apps.tools.registry import tool_spec

DECIDERS = [Role.AGENT, Role.ADMIN]
ADMIN_ACTIONS = frozenset({"tool", "connection"})
MAX_WAITING = 100
MAX_RECENT = 50
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.REFUSED, RunStatus.REJECTED})


@dataclass(frozen=True)
class RunRow:
    run: ToolRun
    label: str
    proposal: str


def _rows(runs: list[ToolRun]) -> list[RunRow]:
    return [RunRow(run=r, label=selectors.run_label(r), proposal=selectors.run_proposal(r)) for r in runs]


def _timeout(raw: str) -> float:
    try:
        return float(raw.strip() or "10")
    except ValueError:
        raise BadRequest("The timeout must be a number of seconds, such as 10.") from None


def _run_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound() from None


def _dispatch(request: HttpRequest, handlers: dict[str, Callable[[], str]], back: str) -> HttpResponse:
    """Runs the handler the form's `action` names and redirects back with what happened."""
    handler = handlers.get(request.POST.get("action", ""))
    if handler is None:
        messages.error(request, "That action isn't available on this page.")
        return redirect(back)
    try:
        done = handler()
    except HelpdeskError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect(back)


@login_required
@require_http_methods(["GET", "POST"])
def tools_page(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, roles = access_tenant(actor=request.user, slug=slug, roles=DECIDERS)
    assert isinstance(request.user, User)
    user = request.user
    is_admin = Role.ADMIN in roles
    here = reverse("tools-home", kwargs={"slug": tenant.slug})

    if request.method == "POST":
        if request.POST.get("action") in ADMIN_ACTIONS and not is_admin:
            raise Forbidden()

        def configure_tool() -> str:
            tool = services.tool_configure(
                tenant=tenant,
                name=request.POST.get("name", ""),
                enabled=request.POST.get("enabled") == "on",
                approval=request.POST.get("approval") or None,
                actor=user,
            )
            spec = tool_spec(tool.name)
            label = (spec.label if spec else "") or tool.name
            if not tool.enabled:
                return f"{label} is off: the assistant no longer offers it."
            return f"{label} is on ({Approval(tool.approval).label.lower()})."

        def configure_connection() -> str:
            secret = request.POST.get("auth_secret", "")
            connection = services.tool_connection_configure(
                tenant=tenant,
                adapter=request.POST.get("adapter", ""),
                base_url=request.POST.get("base_url", "").strip(),
                # An empty field keeps the stored secret: the page never shows it, so it can't send it back.
                auth_secret="" if request.POST.get("clear_secret") == "on" else (secret or None),
                timeout_seconds=_timeout(request.POST.get("timeout_seconds", "")),
                allowed_hosts=None,  # the platform operator's choice, in the Django admin
                actor=user,
            )
            return f"The connection is saved: {connection.get_adapter_display()}."

        def decide() -> str:
            run = selectors.access_tool_run(
                actor=user, slug=slug, run_id=_run_id(request.POST.get("run", ""))
            )
            decision = request.POST.get("decision")
            if decision not in ("approve", "reject"):
                raise BadRequest("Choose Approve or Reject.")
            run = services.tool_run_decide(
                run=run, approve=decision == "approve", actor=user, note=request.POST.get("note", "")
            )
            proposal = selectors.run_proposal(run)
            if run.status == RunStatus.QUEUED:
                return f"Approved “{proposal}” for {run.customer or 'the customer'}. It runs now."
            return f"Rejected “{proposal}”. The customer is told nothing was changed."

        return _dispatch(
            request,
            {"tool": configure_tool, "connection": configure_connection, "decide": decide},
            here,
        )

    context = {
        "tenant": tenant,
        "is_admin": is_admin,
        "waiting": _rows(list(selectors.tool_runs_awaiting_agent(tenant=tenant)[:MAX_WAITING])),
        "recent": _rows(list(selectors.tool_runs(tenant=tenant)[:MAX_RECENT])),
        "failed_statuses": FAILED_STATUSES,
    }
    if is_admin:
        context |= {
            "tools": selectors.tool_setting_rows(tenant=tenant),
            "connection": selectors.tool_connection_settings(tenant=tenant),
            "adapters": AdapterKind.choices,
            "approvals": Approval.choices,
        }
    return render(request, "tools/home.html", context)
