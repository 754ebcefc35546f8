"""Reads of retention policies, and what the company settings page's "Data retention" section shows."""

from __future__ import annotations

from typing import Any

from apps.accounts.models import Tenant
from apps.retention.models import MAX_DAYS, RetentionPolicy
from apps.retention.policy import PERIODS


def retention_policy_for(*, tenant: Tenant) -> RetentionPolicy:
    """The company's policy; an unsaved one keeping everything forever when no admin ever set one."""
    found = RetentionPolicy.objects.for_tenant(tenant).first()
    return found if found is not None else RetentionPolicy(tenant=tenant)


def retention_form_fields(
    *, policy: RetentionPolicy, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One entry per period for the form: its label and help, the value to show (what was typed, when a
    refused form is shown again, else what is saved) and the sentence refusing it, if any."""
    saved = policy.periods()
    values, errors = values or {}, errors or {}
    fields = []
    for name, period in PERIODS.items():
        value = values[name] if name in values else saved[name]
        fields.append(
            {
                "name": name,
                "label": period.label,
                "help": period.help,
                "saved": saved[name],
                "value": "" if value is None else value,
                "error": errors.get(name, ""),
            }
        )
    return fields


def retention_settings_section(*, tenant: Tenant) -> dict[str, Any]:
    """What the "Data retention" section of the settings page shows (registered with accounts)."""
    policy = retention_policy_for(tenant=tenant)
    return {"retention_fields": retention_form_fields(policy=policy), "retention_max_days": MAX_DAYS}
