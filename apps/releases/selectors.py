"""The golden runner's reads: a company's active golden questions. The pages' reads are in golden_reads.py;
the endpoint a run may name is apps.llm.endpoint_selectors.endpoint_named."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import Tenant
from apps.releases.models import GoldenQuestion


def golden_questions_active(tenant: Tenant) -> QuerySet[GoldenQuestion]:
    """The questions a run asks, oldest first (a run's ordinals follow this order)."""
    return GoldenQuestion.objects.for_tenant(tenant).filter(active=True).order_by("created_at", "id")
