"""Changing a company's retention policy (an audited action), and applying it: `retention_apply` deletes
or blanks what expired, in bounded batches (sweeps.py), and records what it did in the audit trail."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from apps.accounts.models import Role, Tenant
from apps.accounts.selectors import user_roles
from apps.audit.actions import Action
from apps.audit.models import AuditEvent
from apps.audit.trail import audit_record
from apps.core.errors import Forbidden
from apps.retention.models import RetentionPolicy
from apps.retention.policy import periods_parse
from apps.retention.selectors import retention_policy_for
from apps.retention.sweeps import KINDS, SWEEPS, sweep_run

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 500


class RetentionPolicyChange(Action[RetentionPolicy]):
    """An admin of the company (or a platform operator, through the Django admin) sets some periods.
    Audited as "settings.retention" with the fields changed and their periods before and after."""

    action = "settings.retention"

    def check(self) -> None:
        actor = self.actor
        if actor is None:
            return  # the system (a management command, a migration of defaults)
        if getattr(actor, "is_superuser", False):
            return
        if Role.ADMIN not in user_roles(user=actor, tenant=self.tenant):
            raise Forbidden("Only an admin of the company can change how long its data is kept.")

    def perform(self) -> RetentionPolicy:
        policy: RetentionPolicy = self.params["policy"]
        changes: dict[str, int | None] = self.params["changes"]
        for name, days in changes.items():
            setattr(policy, name, days)
        if policy._state.adding:
            policy.save(force_insert=True)
        else:
            policy.save(update_fields=[*changes, "updated_at"])
        return policy

    def audit_data(self, result: RetentionPolicy) -> dict[str, Any]:
        before: dict[str, int | None] = self.params["before"]
        changes: dict[str, int | None] = self.params["changes"]
        return {
            "fields": sorted(changes),
            "before": {name: before[name] for name in sorted(changes)},
            "after": {name: changes[name] for name in sorted(changes)},
        }


def retention_policy_set(*, tenant: Tenant, actor: Any, values: Mapping[str, object]) -> RetentionPolicy:
    """Sets the periods named in `values` (days, or None / "" for forever); the others stay as they are.

    Every value is checked before anything is saved: one refused period (zero, negative, over ten years,
    not a whole number, an unknown name) raises `RetentionPolicyInvalid` and changes nothing. Saving the
    periods already in force writes no row and no audit entry."""
    parsed = periods_parse(values)
    policy = retention_policy_for(tenant=tenant)
    before = policy.periods()
    changes = {name: days for name, days in parsed.items() if before[name] != days}
    if not changes:
        RetentionPolicyChange(tenant=tenant, actor=actor).check()
        return policy
    return RetentionPolicyChange(
        tenant=tenant, actor=actor, policy=policy, changes=changes, before=before
    ).execute()


@dataclass(frozen=True)
class RetentionReport:
    """What one run did for one company: rows deleted or blanked, and the batches it took, per kind."""

    tenant_id: uuid.UUID
    counts: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def retention_apply(
    *, tenant: Tenant, now: datetime | None = None, batch: int = DEFAULT_BATCH
) -> RetentionReport:
    """Deletes or blanks everything of `tenant` older than its policy's periods at `now` (the present when
    not given; tests pass a frozen clock), `batch` rows per transaction. A period left empty keeps that kind
    forever. When anything was removed, one audit row ("retention.apply", by the system) records the counts.

    Safe to run again at any time, and concurrently with itself: what is already gone is not found twice.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    now = now or timezone.now()
    periods = retention_policy_for(tenant=tenant).periods()
    counts = dict.fromkeys(KINDS, 0)
    batches = dict.fromkeys(KINDS, 0)
    for sweep in SWEEPS:
        days = periods[sweep.period] if sweep.period else 0
        if days is None:
            continue
        result = sweep_run(sweep, tenant=tenant, cutoff=now - timedelta(days=days), now=now, batch=batch)
        counts[sweep.kind], batches[sweep.kind] = result.count, result.batches
    report = RetentionReport(tenant_id=tenant.id, counts=counts, batches=batches)
    if report.total:
        # After the batches, in a transaction of its own: each batch committed already. A run killed before
        # this line leaves what it removed unrecorded; the next run records only its own removals.
        audit_record(
            tenant_id=tenant.id,
            action="retention.apply",
            actor_kind=AuditEvent.ActorKind.SYSTEM,
            target_type="Tenant",
            target_id=tenant.id,
            data=counts,
        )
    return report


def retention_apply_all(*, now: datetime | None = None, batch: int = DEFAULT_BATCH) -> list[RetentionReport]:
    """`retention_apply` for every company (what celery beat runs). A company whose run fails on the
    database is logged and skipped; the others still run, and it is tried again at the next run."""
    now = now or timezone.now()
    reports = []
    for tenant in Tenant.objects.order_by("slug"):
        try:
            report = retention_apply(tenant=tenant, now=now, batch=batch)
        except DatabaseError:
            logger.exception(
                "retention: the run for tenant %s failed; it is retried at the next run", tenant.slug
            )
            continue
        if report.total:
            logger.info(
                "retention: tenant %s: %s", tenant.slug, {k: n for k, n in report.counts.items() if n}
            )
        reports.append(report)
    return reports
