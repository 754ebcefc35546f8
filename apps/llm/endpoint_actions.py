"""Writes on model endpoints as audited actions (apps/audit/actions.py): register, update, delete.

A company's endpoint is written by its admins; the operator's (no company) by staff holding the Django
model permission (the admin site), or by the desk itself (`actor=None`). Audit rows name the endpoint, its
model and host, never its key. The probe (apps/llm/endpoints.py) runs before `execute()`: these actions only
store what it found.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from django.db import IntegrityError
from django.utils import timezone

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.audit.actions import Action
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.core.sealing import seal
from apps.llm.models import Canary, ModelEndpoint, TenantModel

if TYPE_CHECKING:
    from apps.llm.endpoints import EndpointFields

T = TypeVar("T")


def _host(base_url: str) -> str:
    return urlsplit(base_url).netloc


class EndpointAction(Action[T]):
    tenant: Tenant | None
    actor: User | None
    permission = ""  # the Django model permission an operator's write needs

    def check(self) -> None:
        if self.actor is None:
            return
        if self.tenant is not None:
            # The same rule as the models page: a stranger gets NotFound, an agent or editor Forbidden.
            access_tenant(actor=self.actor, slug=self.tenant.slug, roles=[Role.ADMIN])
        elif not (self.actor.is_active and self.actor.has_perm(f"llm.{self.permission}_modelendpoint")):
            raise Forbidden("Only the operator can change the endpoints offered to every company.")

    def _duplicate(self, fields: EndpointFields) -> BadRequest:
        return BadRequest(f"{fields.model} at {fields.base_url} is already registered here.")


class EndpointRegister(EndpointAction[ModelEndpoint]):
    action = "model_endpoint.register"
    target_type = "ModelEndpoint"
    permission = "add"

    def duplicate_check(self) -> None:
        fields: EndpointFields = self.params["fields"]
        if ModelEndpoint.objects.filter(
            tenant=self.tenant, base_url=fields.base_url, model=fields.model
        ).exists():
            raise self._duplicate(fields)

    def perform(self) -> ModelEndpoint:
        fields: EndpointFields = self.params["fields"]
        try:
            return ModelEndpoint.objects.create(
                tenant=self.tenant,
                name=fields.name,
                base_url=fields.base_url,
                model=fields.model,
                api_key_sealed=seal(fields.api_key),
                style=fields.style,
                checked_at=timezone.now(),
                check_report=self.params["report"],
                created_by=self.actor,
            )
        except IntegrityError:
            raise self._duplicate(fields) from None  # registered meanwhile, by another request

    def audit_data(self, result: ModelEndpoint) -> dict[str, Any]:
        return {
            "name": result.name,
            "model": result.model,
            "host": _host(result.base_url),
            "style": result.style,
            "operator": result.tenant_id is None,
            "first_token_ms": result.check_report.get("first_token_ms"),
        }


class EndpointUpdate(EndpointAction[ModelEndpoint]):
    action = "model_endpoint.update"
    target_type = "ModelEndpoint"
    permission = "change"

    def check(self) -> None:
        super().check()
        endpoint: ModelEndpoint = self.params["endpoint"]
        if endpoint.tenant_id != getattr(self.tenant, "pk", None):
            raise NotFound()

    def perform(self) -> ModelEndpoint:
        endpoint: ModelEndpoint = self.params["endpoint"]
        fields: EndpointFields = self.params["fields"]
        endpoint = ModelEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        self.changes = [f for f in ("name", "style") if getattr(endpoint, f) != getattr(fields, f)]
        endpoint.name, endpoint.style = fields.name, fields.style
        update = ["name", "style", "updated_at"]
        if "report" in self.params:
            self.changes.append("api_key")
            endpoint.api_key_sealed = seal(fields.api_key)
            endpoint.check_report = self.params["report"]
            endpoint.checked_at = timezone.now()
            update += ["api_key_sealed", "check_report", "checked_at"]
        if self.changes:
            endpoint.save(update_fields=update)
        return endpoint

    def changed(self, result: ModelEndpoint) -> bool:
        return bool(self.changes)

    def audit_data(self, result: ModelEndpoint) -> dict[str, Any]:
        # Which fields changed (the key as a name only), and the values of those that are not secrets.
        return {"fields": self.changes, "name": result.name, "style": result.style, "model": result.model}


class EndpointDelete(EndpointAction[ModelEndpoint]):
    action = "model_endpoint.delete"
    target_type = "ModelEndpoint"
    permission = "delete"

    def check(self) -> None:
        super().check()
        endpoint: ModelEndpoint = self.params["endpoint"]
        if self.tenant is None:
            if endpoint.tenant_id is not None:
                raise NotFound()
        elif endpoint.tenant_id is None:
            raise Forbidden("Only the operator can remove an endpoint offered to every company.")
        elif endpoint.tenant_id != self.tenant.pk:
            raise NotFound()

    def perform(self) -> ModelEndpoint:
        endpoint: ModelEndpoint = self.params["endpoint"]
        endpoint = ModelEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        self.endpoint_id: uuid.UUID = endpoint.pk
        canaries = Canary.objects.filter(candidate=endpoint) | Canary.objects.filter(current=endpoint)
        if canaries.filter(status__in=Canary.ACTIVE).exists():
            raise BadRequest(f"{endpoint.name} is in a canary now; promote or stop the canary first.")
        if canaries.exists():
            raise BadRequest(f"{endpoint.name} is kept because a past canary's comparison refers to it.")
        users = TenantModel.objects.filter(endpoint=endpoint)
        if self.tenant is not None and users.filter(tenant=self.tenant).exists():
            raise BadRequest(
                f"{endpoint.name} answers this company's conversations now; switch models first."
            )
        if users.exists():
            raise BadRequest(f"{endpoint.name} answers a company's conversations now; it cannot be removed.")
        self.removed = {"name": endpoint.name, "model": endpoint.model, "host": _host(endpoint.base_url)}
        endpoint.delete()
        return endpoint

    def audit_target(self, result: ModelEndpoint) -> tuple[str, str]:
        return self.target_type, str(self.endpoint_id)

    def audit_data(self, result: ModelEndpoint) -> dict[str, Any]:
        return self.removed
