"""Starting a run of a company's golden set from the pages and the API: the run is stored queued, with
its total, and handed to a worker once the transaction commits (the run page polls its progress)."""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Tenant, User
from apps.core.errors import BadRequest
from apps.releases import selectors
from apps.releases.models import GoldenRun
from apps.releases.runner import golden_run_create
from apps.releases.tasks import golden_run_task

# A run still queued or running after this long has lost its worker: "Run now" starts another.
UNFINISHED_FOR = datetime.timedelta(hours=1)


def golden_run_start(*, tenant: Tenant, actor: User) -> GoldenRun:
    """A run of the company's golden set on its current model, queued for a worker once committed. While
    one started by hand is still queued or running, pressing "Run now" again shows that one."""
    if not selectors.golden_questions_active(tenant).exists():
        raise BadRequest("Add a golden question before running the set.")
    unfinished = (
        GoldenRun.objects.for_tenant(tenant)
        .filter(
            kind=GoldenRun.Kind.MANUAL,
            status__in=(GoldenRun.Status.QUEUED, GoldenRun.Status.RUNNING),
            created_at__gte=timezone.now() - UNFINISHED_FOR,
        )
        .order_by("-created_at")
        .first()
    )
    if unfinished is not None:
        return unfinished
    run = golden_run_create(tenant=tenant, kind=GoldenRun.Kind.MANUAL, requested_by=actor)
    run_id = str(run.id)
    transaction.on_commit(lambda: golden_run_task.delay(run_id), robust=True)
    return run
