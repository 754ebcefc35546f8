"""Reads on tools (STYLE rule 1)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import NotFound
from apps.tools.connections import connection_allowed_hosts
from apps.tools.models import AdapterKind, Approval, RunStatus, TenantTool, ToolConnection, ToolRun
from apps.tools.registry import ToolSpec, tool_spec, tool_specs


def tool_connection(*, tenant: Tenant) -> ToolConnection | None:
    return ToolConnection.objects.filter(tenant=tenant).first()


def tools_available(*, tenant: Tenant, verified: bool) -> list[ToolSpec]:
    """The tools offered to the model for this customer: enabled by the company, with a business system
    connected, and (for tools that act on an account) only when the customer's identity is verified."""
    if not ToolConnection.objects.filter(tenant=tenant).exclude(adapter=AdapterKind.NONE).exists():
        return []
    names = TenantTool.objects.for_tenant(tenant).filter(enabled=True).values_list("name", flat=True)
    specs = [spec for spec in (tool_spec(name) for name in names) if spec is not None]
    return [spec for spec in specs if verified or not spec.needs_identity]


def tool_examples(*, tenant: Tenant) -> dict[str, list[str]]:
    """The company's own example requests, by tool name (apps/tools/choice.py adds them to the built-in
    ones for this company only)."""
    rows = TenantTool.objects.for_tenant(tenant).exclude(examples=[]).values_list("name", "examples")
    return {name: list(examples) for name, examples in rows}


def tool_settings(*, tenant: Tenant) -> list[tuple[ToolSpec, TenantTool | None]]:
    """Every registered tool with the company's choice for it (None: never configured, so disabled)."""
    chosen = {tool.name: tool for tool in TenantTool.objects.for_tenant(tenant)}
    return [(spec, chosen.get(spec.name)) for spec in tool_specs()]


def run_proposal(run: ToolRun) -> str:
    spec = tool_spec(run.tool)
    if spec is None:
        return run.tool
    if spec.describe is not None:
        return spec.describe(run.arguments)
    return (spec.label or spec.name).lower()


def tool_runs_for_conversation(*, tenant: Tenant, conversation_id: uuid.UUID) -> list[ToolRun]:
    return list(
        ToolRun.objects.for_tenant(tenant).filter(conversation_ref=conversation_id).order_by("created_at")
    )


def tool_runs(
    *, tenant: Tenant, status: str | None = None, conversation_id: uuid.UUID | None = None
) -> QuerySet[ToolRun]:
    runs = ToolRun.objects.for_tenant(tenant).select_related("decided_by").order_by("-created_at")
    if status:
        runs = runs.filter(status=status)
    if conversation_id:
        runs = runs.filter(conversation_ref=conversation_id)
    return runs


def tool_runs_awaiting_agent(*, tenant: Tenant) -> QuerySet[ToolRun]:
    return tool_runs(tenant=tenant, status=RunStatus.AWAITING_APPROVAL).filter(approval=Approval.AGENT)


def access_tool_run(*, actor: User, slug: str, run_id: uuid.UUID | str) -> ToolRun:
    """A run of a company the actor works for as an agent or admin; anything else is not found."""
    tenant, _ = access_tenant(actor=actor, slug=slug, roles=[Role.AGENT, Role.ADMIN])
    try:
        return ToolRun.objects.for_tenant(tenant).select_related("tenant").get(id=run_id)
    except (ToolRun.DoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound() from None


@dataclass(frozen=True)
class ToolSetting:
    """A registered tool with the company's choice for it, as the settings pages and API show it."""

    spec: ToolSpec
    enabled: bool
    approval: str
    configured: bool  # False: the company never chose, so the tool is off
    examples: list[str]  # the company's own example requests, beside the tool's built-in ones


def tool_setting_rows(*, tenant: Tenant) -> list[ToolSetting]:
    rows = []
    for spec, chosen in tool_settings(tenant=tenant):
        if chosen is None:
            # What enabling it without choosing would store (tool_configure's default).
            default = Approval.AGENT if spec.changes_data else Approval.NONE
            rows.append(
                ToolSetting(spec=spec, enabled=False, approval=default, configured=False, examples=[])
            )
        else:
            rows.append(
                ToolSetting(
                    spec=spec,
                    enabled=chosen.enabled,
                    approval=chosen.approval,
                    configured=True,
                    examples=list(chosen.examples),
                )
            )
    return rows


@dataclass(frozen=True)
class ConnectionSettings:
    """A company's connection as people may see it: whether a secret is stored, never the secret."""

    adapter: str
    base_url: str
    timeout_seconds: float
    has_secret: bool
    # Every host and port the adapter may reach (`host`, `host:port`, `[v6]:port`): the installation's
    # list and the operator's list for this company.
    allowed_hosts: list[str]


def tool_connection_settings(*, tenant: Tenant) -> ConnectionSettings:
    connection = tool_connection(tenant=tenant) or ToolConnection(tenant=tenant)
    return ConnectionSettings(
        adapter=connection.adapter,
        base_url=connection.base_url,
        timeout_seconds=connection.timeout_seconds,
        has_secret=bool(connection.auth_secret),
        allowed_hosts=sorted(connection_allowed_hosts(connection)),
    )


def run_label(run: ToolRun) -> str:
    spec = tool_spec(run.tool)
    return (spec.label or spec.name) if spec is not None else run.tool
