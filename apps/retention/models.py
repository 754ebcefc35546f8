"""How long a company keeps each kind of data (docs/architecture/retention.md).

One row per company, created the first time an admin saves the policy. Every period is a number of days,
and empty (NULL) means "keep forever", which is also what a company without a row gets: nothing is ever
deleted unless an admin chose a period. The database refuses a period outside 1..MAX_DAYS, so no code path
(the admin, a shell, a bulk update) can store a zero that would delete data as soon as it is written.
"""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.accounts.models import Tenant, TenantScopedModel

# Ten years: longer than any statutory retention duty we know of, short enough to catch a typo (36500).
MAX_DAYS = 3650

# The periods, in the order the settings page and the API show them.
PERIOD_FIELDS: tuple[str, ...] = (
    "conversations_days",
    "messages_days",
    "audio_days",
    "tool_runs_days",
    "case_files_days",
    "traces_days",
    "knowledge_gaps_days",
)


def _days(help_text: str) -> models.PositiveIntegerField[int | None, int | None]:
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DAYS)],
        help_text=help_text,
    )


class RetentionPolicy(TenantScopedModel):
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="retention_policy")
    conversations_days = _days("Closed conversations, deleted whole (messages, events, case files, tickets).")
    messages_days = _days("Words of messages in conversations that are kept, replaced after this long.")
    audio_days = _days("Kept voice recordings; the transcript stays with its message.")
    tool_runs_days = _days("Arguments and results of finished tool runs; the run row stays.")
    case_files_days = _days("Case files of closed handoffs; the handoff row stays for reports.")
    traces_days = _days("What the assistant saw for each reply (prompts, passages, checks).")
    knowledge_gaps_days = _days("Questions the assistant could not answer.")

    FIELDS: ClassVar[tuple[str, ...]] = PERIOD_FIELDS

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(**{f"{name}__isnull": True})
                | models.Q(**{f"{name}__gte": 1, f"{name}__lte": MAX_DAYS}),
                name=f"retention_{name}_range",
            )
            for name in PERIOD_FIELDS
        ]

    def __str__(self) -> str:
        return f"retention policy of {self.tenant_id}"

    def periods(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in self.FIELDS}
