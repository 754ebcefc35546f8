"""Celery interface of retention: celery beat sends `retention_run` every RETENTION_INTERVAL_SECONDS
(CELERY_BEAT_SCHEDULE in settings). No arguments, one service call (STYLE rule 9).

Idempotent by nature: a second delivery finds nothing left to remove. The hard limit stays below the
broker's visibility timeout (1 hour), so a long run is never handed to a second worker while it still
runs; a run cut by the limit has committed whole batches only, and the next run carries on.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.retention.services import retention_apply_all


@shared_task(acks_late=True, soft_time_limit=2700, time_limit=3000)
def retention_run() -> dict[str, int]:
    reports = retention_apply_all(batch=settings.RETENTION_BATCH_SIZE)
    return {"tenants": len(reports), "removed": sum(report.total for report in reports)}
