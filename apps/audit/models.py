"""The audit trail: one append-only row per staff action, guardrail decision, tool-run change and handoff.

Rows are chained per company: each holds the hash of the previous row of its chain and its own hash over
its content, so an edited, removed or inserted row is found by `manage.py audit_verify`
(`apps.audit.trail.chain_verify`). The model refuses updates; deleting is only a company's own deletion.
Nothing in a row names a customer or quotes them: `data` passes through `apps.audit.trail.audit_data_clean`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class AuditEvent(BaseModel):
    class ActorKind(models.TextChoices):
        STAFF = "staff", "Staff member"
        CUSTOMER = "customer", "Customer"
        ASSISTANT = "assistant", "Assistant"
        SYSTEM = "system", "System"

    # By name, not by import: the audit app sits below accounts in the layers.
    tenant = models.ForeignKey(
        "accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # Position in the company's chain (the chain of rows without a company is its own).
    seq = models.PositiveBigIntegerField()
    at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    # Kept as written when the user is deleted (no database constraint, nothing cascades): `actor_id` is
    # part of the hash, so nulling it would make every row that person wrote fail `audit_verify`.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # The staff member's username when the row was written: the row still says who after the user is gone.
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    # Fields the hash covers, in order (apps.audit.trail.row_hash).
    HASHED: ClassVar[tuple[str, ...]] = (
        "tenant_id",
        "seq",
        "at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "data",
        "trace_id",
        "prev_hash",
    )

    class Meta:
        ordering = ["tenant", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "seq"], name="uniq_audit_chain_seq"),
            models.UniqueConstraint(
                fields=["seq"], condition=models.Q(tenant__isnull=True), name="uniq_audit_system_chain_seq"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "-at"], name="audit_tenant_at")]

    def __str__(self) -> str:
        return f"{self.action} #{self.seq}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("Audit events are append-only: a written row is never changed.")
        super().save(*args, **kwargs)
