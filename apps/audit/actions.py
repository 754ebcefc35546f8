"""Staff writes as actions: a separate permission check, the change, and its audit row in one transaction.

    class ClaimHandoff(Action[Handoff]):
        action = "handoff.claim"

        def check(self) -> None:           # may the actor do this at all? raises Forbidden / NotFound
            ...
        def perform(self) -> Handoff:      # the change itself
            ...
        def audit_data(self, result) -> dict[str, Any]:  # counts, ids, reasons; never a customer's words
            ...

    ClaimHandoff(tenant=tenant, actor=agent, handoff_id=...).execute()

`check()` can also be called alone (a page asks whether to show a button). `execute()` runs check, perform
and the audit write inside one `transaction.atomic()`: a refused or failed action writes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

from django.db import transaction

from apps.audit.trail import audit_record

T = TypeVar("T")


class Action(Generic[T]):
    action: ClassVar[str]
    # What the row names as its target: set `target_type` or override `audit_target`.
    target_type: ClassVar[str] = ""

    def __init__(
        self, *, tenant: Any, actor: Any = None, actor_kind: str | None = None, **params: Any
    ) -> None:
        self.tenant = tenant
        self.actor = actor
        self.actor_kind = actor_kind
        self.params = params

    def check(self) -> None:
        """Raise if the actor may not do this. The default allows: override it."""

    def perform(self) -> T:
        raise NotImplementedError

    def audit_target(self, result: T) -> tuple[str, str]:
        target_id = getattr(result, "pk", None)
        return (self.target_type or (type(result).__name__ if target_id else ""), str(target_id or ""))

    def audit_data(self, result: T) -> dict[str, Any]:
        return {}

    def tenant_id(self) -> uuid.UUID | None:
        return getattr(self.tenant, "pk", self.tenant)

    def changed(self, result: T) -> bool:
        """Whether `perform` changed anything. An execution that changed nothing (a setting saved as it was,
        a role already held) writes no row; the default says it did."""
        return True

    def execute(self) -> T:
        with transaction.atomic():
            self.check()
            result = self.perform()
            if not self.changed(result):
                return result
            target_type, target_id = self.audit_target(result)
            audit_record(
                tenant_id=self.tenant_id(),
                action=self.action,
                actor=self.actor,
                actor_kind=self.actor_kind,
                target_type=target_type,
                target_id=target_id,
                data=self.audit_data(result),
            )
        return result
