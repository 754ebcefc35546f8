"""The admins' canary decisions as audited actions (apps/audit/actions.py): start, promote, cancel. Each
checks the actor is an admin of the company, makes the change and writes its audit row in one transaction;
the services of apps/releases/canary.py run them."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Role, Tenant
from apps.accounts.selectors import access_tenant
from apps.audit.actions import Action
from apps.core.errors import BadRequest, Conflict, NotFound
from apps.llm.endpoint_selectors import access_endpoint
from apps.llm.models import Canary, ModelEndpoint, TenantModel
from apps.releases.canary_selectors import GUARDRAILS

Status = Canary.Status
DEFAULT_BOUNDS: dict[str, float] = {"abstention": 10, "unsupported": 5, "error": 5}
MIN_CONVERSATIONS_MAX = 100_000
CHECK_TASK = "apps.releases.canary_tasks.canary_check_task"


def _number(value: Any, *, what: str, low: float, high: float, whole: bool = True) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise BadRequest(f"The {what} must be a number from {low:g} to {high:g}.") from None
    if number != number or number < low or number > high or (whole and number != int(number)):
        kind = "a whole number" if whole else "a number"
        raise BadRequest(f"The {what} must be {kind} from {low:g} to {high:g}.")
    return number


def bounds_clean(bounds: dict[str, Any] | None) -> dict[str, float]:
    """The guardrail bounds in percentage points, each 0..100, defaults for those not given."""
    clean = dict(DEFAULT_BOUNDS)
    for key, value in (bounds or {}).items():
        if key not in GUARDRAILS:
            raise BadRequest(f"{key!r} is not a guardrail indicator: use abstention, unsupported or error.")
        if value in (None, ""):
            continue
        clean[key] = _number(value, what=f"{key} bound", low=0, high=100, whole=False)
    return clean


def _candidate_of(tenant: Tenant, candidate: ModelEndpoint | uuid.UUID | str | None) -> ModelEndpoint:
    if candidate in (None, ""):
        raise BadRequest("Choose a registered model endpoint as the candidate.")
    key = candidate.pk if isinstance(candidate, ModelEndpoint) else candidate
    try:
        return access_endpoint(tenant=tenant, endpoint_id=str(key))
    except NotFound:
        raise NotFound("That model endpoint is not one this company can use.") from None


class CanaryStart(Action[Canary]):
    action = "canary.start"

    def check(self) -> None:
        access_tenant(actor=self.actor, slug=self.tenant.slug, roles=[Role.ADMIN])

    def perform(self) -> Canary:
        tenant: Tenant = self.tenant
        share = int(_number(self.params["share"], what="share", low=1, high=100))
        minimum = int(
            _number(
                self.params["min_conversations"],
                what="minimum of conversations",
                low=1,
                high=MIN_CONVERSATIONS_MAX,
            )
        )
        bounds = bounds_clean(self.params.get("bounds"))
        from apps.llm.routing import tenant_current_endpoint

        candidate = _candidate_of(tenant, self.params["candidate"])
        current = tenant_current_endpoint(tenant.id)
        if current is not None and current.pk == candidate.pk:
            raise BadRequest("That endpoint is already the company's current model.")
        if Canary.objects.filter(tenant=tenant, status__in=Canary.ACTIVE).exists():
            raise Conflict("A canary is already checking or running for this company: stop it first.")
        try:
            with transaction.atomic():
                canary = Canary.objects.create(
                    tenant=tenant,
                    candidate=candidate,
                    current=current,
                    share=share,
                    min_conversations=minimum,
                    bounds=bounds,
                    started_by=self.actor,
                )
        except IntegrityError:
            raise Conflict(
                "A canary is already checking or running for this company: stop it first."
            ) from None
        canary_id = canary.id
        transaction.on_commit(lambda: _check_enqueue(canary_id))
        return canary

    def audit_data(self, result: Canary) -> dict[str, Any]:
        return {
            "candidate_id": result.candidate_id,
            "current_id": result.current_id,
            "share": result.share,
            "min_conversations": result.min_conversations,
            "bounds": result.bounds,
        }


def _check_enqueue(canary_id: uuid.UUID) -> None:
    from celery import current_app

    current_app.send_task(CHECK_TASK, args=[str(canary_id)])


class _CanaryDecision(Action[Canary]):
    target_type = "Canary"

    def check(self) -> None:
        access_tenant(actor=self.actor, slug=self.tenant.slug, roles=[Role.ADMIN])
        canary: Canary = self.params["canary"]
        if canary.tenant_id != self.tenant.pk:
            raise NotFound()

    def audit_data(self, result: Canary) -> dict[str, Any]:
        return {"candidate_id": result.candidate_id, "share": result.share}


class CanaryPromote(_CanaryDecision):
    action = "canary.promote"

    def perform(self) -> Canary:
        canary: Canary = self.params["canary"]
        now = timezone.now()
        won = Canary.objects.filter(pk=canary.pk, status=Status.RUNNING).update(
            status=Status.PROMOTED, ended_by=self.actor, ended_at=now, updated_at=now
        )
        if not won:
            raise Conflict("Only a running canary can be promoted.")
        TenantModel.objects.update_or_create(tenant=self.tenant, defaults={"endpoint": canary.candidate})
        canary.refresh_from_db()
        return canary

    def audit_data(self, result: Canary) -> dict[str, Any]:
        return {**super().audit_data(result), "previous_id": result.current_id}


class CanaryCancel(_CanaryDecision):
    action = "canary.cancel"

    def perform(self) -> Canary:
        canary: Canary = self.params["canary"]
        now = timezone.now()
        won = Canary.objects.filter(pk=canary.pk, status__in=Canary.ACTIVE).update(
            status=Status.CANCELLED, ended_by=self.actor, ended_at=now, updated_at=now
        )
        if not won:
            raise Conflict("This canary has already ended.")
        canary.refresh_from_db()
        return canary
