"""Staff writes on tools as audited actions (apps/audit/actions.py): choosing a company's tools, connecting
its business system (and rotating the secret it is called with), and deciding a run that waits for approval.

`check()` says who may: a company admin configures (or the platform operator in the Django admin, whose
permission the admin site checks, with `as_operator=True`); an agent or admin decides a run waiting for an
agent; only the customer confirms a run waiting for the customer. `execute()` writes the change and its
audit row in one transaction, so a refused write leaves neither. `actor=None` with no customer is the desk
acting on its own (the demo seed, test setup): the row says "system".

Rows name fields that changed, never their values' secrets: the secret rotation row says only that the
secret was replaced or cleared. A run's rows carry its tool, id, attempt and error code, never its
arguments (they may name the customer).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from django.utils import timezone

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.audit.actions import Action
from apps.audit.trail import audit_record
from apps.core.errors import BadRequest, Conflict, Forbidden, NotFound
from apps.core.sealing import seal
from apps.tools import services
from apps.tools.connections import base_url_allowed
from apps.tools.hooks import run_changed
from apps.tools.models import AdapterKind, Approval, RunStatus, TenantTool, ToolConnection, ToolRun
from apps.tools.registry import tool_spec

T = TypeVar("T")
ADMINS = (Role.ADMIN,)
DECIDERS = (Role.AGENT,)  # admins hold every role (access_tenant)
CONNECTION_FIELDS = ("adapter", "base_url", "timeout_seconds", "allowed_hosts")


class ToolsAction(Action[T]):
    tenant: Tenant
    actor: User | None
    roles: tuple[str, ...] = ADMINS

    def check(self) -> None:
        if self.actor is None:
            return
        if self.params.get("as_operator"):
            if not (self.actor.is_active and self.actor.is_staff):
                raise Forbidden()
            return
        access_tenant(actor=self.actor, slug=self.tenant.slug, roles=self.roles)


class ToolConfigure(ToolsAction[TenantTool]):
    """Turns a tool on or off for the company and chooses who approves it. `examples`: the company's own
    example requests for the tool (None keeps the stored ones)."""

    action = "tool.configure"
    target_type = "TenantTool"
    fields_changed: list[str]
    created = False

    def check(self) -> None:
        super().check()
        self._approval()

    def _approval(self) -> str:
        """Who approves the tool's runs: as chosen, or by default an agent for a tool that changes data."""
        name: str = self.params["name"]
        spec = tool_spec(name)
        if spec is None:
            raise BadRequest(f"There is no tool named {name!r}.")
        approval = self.params.get("approval")
        if approval is None:
            approval = Approval.AGENT if spec.changes_data else Approval.NONE
        if approval not in Approval.values:
            raise BadRequest(f"Approval must be one of {', '.join(Approval.values)}.")
        if spec.changes_data and approval == Approval.NONE:
            raise BadRequest(
                f"{spec.label or spec.name} changes data: an agent or the customer must confirm it."
            )
        return str(approval)

    def perform(self) -> TenantTool:
        defaults: dict[str, Any] = {"enabled": self.params["enabled"], "approval": self._approval()}
        examples = self.params.get("examples")
        if examples is not None:
            defaults["examples"] = services._examples_clean(examples)
        name = self.params["name"]
        before = TenantTool.objects.for_tenant(self.tenant).filter(name=name).values(*defaults).first()
        tool, self.created = TenantTool.objects.update_or_create(
            tenant=self.tenant, name=name, defaults=defaults
        )
        self.fields_changed = sorted(k for k, v in defaults.items() if before is None or before[k] != v)
        return tool

    def audit_data(self, result: TenantTool) -> dict[str, Any]:
        return {"tool": result.name, "fields": self.fields_changed, "created": self.created}


class ToolConnectionConfigure(ToolsAction[ToolConnection]):
    """How the company's business system is reached. `auth_secret=None` keeps the stored secret (forms never
    render it back); a new one, or "" to clear it, also writes a `secret.rotate` row."""

    action = "tool_connection.configure"
    target_type = "ToolConnection"
    fields_changed: list[str]

    def check(self) -> None:
        super().check()
        adapter: str = self.params["adapter"]
        base_url: str = self.params.get("base_url", "")
        timeout = self.params.get("timeout_seconds", 10.0)
        secret: str | None = self.params.get("auth_secret")
        if adapter not in AdapterKind.values:
            raise BadRequest(f"The adapter must be one of {', '.join(AdapterKind.values)}.")
        if adapter == AdapterKind.HTTP and not base_url:
            raise BadRequest("An HTTP adapter needs the base URL of the company's API.")
        if adapter == AdapterKind.HTTP and urlsplit(base_url).scheme not in ("http", "https"):
            raise BadRequest("The base URL must start with https:// (or http:// for a local test server).")
        if not 0 < timeout <= 60:
            raise BadRequest("The timeout must be between 0 and 60 seconds.")
        if secret is not None and len(secret) > services.MAX_SECRET_CHARS:
            raise BadRequest(f"The secret may be at most {services.MAX_SECRET_CHARS} characters long.")

    def perform(self) -> ToolConnection:
        adapter: str = self.params["adapter"]
        base_url: str = self.params.get("base_url", "")
        secret: str | None = self.params.get("auth_secret")
        allowed_hosts: list[str] | None = self.params.get("allowed_hosts")
        connection = ToolConnection.objects.filter(tenant=self.tenant).first() or ToolConnection(
            tenant=self.tenant
        )
        before = {name: getattr(connection, name) for name in CONNECTION_FIELDS}
        if (
            allowed_hosts is not None
        ):  # the platform operator's choice (Django admin), never a company admin's
            connection.allowed_hosts = services._allowed_hosts_normalise(allowed_hosts)
        if adapter == AdapterKind.HTTP and not base_url_allowed(connection, base_url):
            # Checked before anything is saved: a refused connection leaves no row and changes nothing.
            raise BadRequest(
                "That host is not on the list of hosts this installation may call. "
                "Ask the platform operator to allow it."
            )
        connection.adapter = adapter
        connection.base_url = base_url if adapter == AdapterKind.HTTP else ""
        if secret is not None:
            connection.auth_secret = seal(secret)  # never stored as given (apps/core/sealing.py)
        connection.timeout_seconds = self.params.get("timeout_seconds", 10.0)
        created = connection._state.adding
        connection.save()
        self.fields_changed = [
            name for name in CONNECTION_FIELDS if created or getattr(connection, name) != before[name]
        ]
        if secret is not None:
            audit_record(
                tenant_id=self.tenant.id,
                action="secret.rotate",
                actor=self.actor,
                actor_kind=self.actor_kind,
                target=connection,
                data={"field": "auth_secret", "cleared": secret == ""},
            )
        return connection

    def audit_data(self, result: ToolConnection) -> dict[str, Any]:
        return {"fields": self.fields_changed, "adapter": result.adapter}


class ToolRunDecide(ToolsAction[ToolRun]):
    """An agent's approval or rejection, or the customer's confirmation, of a run waiting for it. Exactly
    one decision counts: the second gets Conflict and writes nothing. Run `ToolRunApprove` or
    `ToolRunReject`."""

    target_type = "ToolRun"
    roles = DECIDERS
    approve: ClassVar[bool]

    def check(self) -> None:
        run: ToolRun = self.params["run"]
        by_customer = bool(self.params.get("by_customer"))
        if run.tenant_id != self.tenant.id:
            raise NotFound()
        if by_customer:
            # The caller proved the customer is the one the run acts for (conversations.tool_services).
            if run.approval != Approval.CUSTOMER:
                raise Forbidden("This request needs an agent's approval.")
            return
        if self.actor is None or run.approval != Approval.AGENT:
            # The customer's own confirmation is theirs to give: an agent cannot give it for them.
            raise Forbidden("This request is waiting for the customer's confirmation.")
        super().check()

    def perform(self) -> ToolRun:
        run: ToolRun = self.params["run"]
        approve = self.approve
        by_customer = bool(self.params.get("by_customer"))
        now = timezone.now()
        updated = ToolRun.objects.filter(id=run.id, status=RunStatus.AWAITING_APPROVAL).update(
            status=RunStatus.QUEUED if approve else RunStatus.REJECTED,
            decided_by=self.actor,
            decided_by_customer=by_customer,
            decided_at=now,
            queued_at=now if approve else None,
            finished_at=None if approve else now,
            error_message=str(self.params.get("note", ""))[:300],
            summary=""
            if approve
            else (services.CANCELLED_BY_CUSTOMER if by_customer else services.DECLINED_BY_AGENT),
            updated_at=now,
        )
        if not updated:
            raise Conflict("This request was already decided.")
        run.refresh_from_db()
        if approve:
            services.run_enqueue(run)
        else:
            services.run_count(run)
        run_changed(run)
        return run

    def audit_data(self, result: ToolRun) -> dict[str, Any]:
        return services.run_audit_data(result)


class ToolRunApprove(ToolRunDecide):
    action = "tool_run.approve"
    approve = True


class ToolRunReject(ToolRunDecide):
    action = "tool_run.reject"
    approve = False
