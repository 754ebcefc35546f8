"""Celery interfaces of golden runs: ids in, one service call (STYLE rule 9)."""

from __future__ import annotations

from celery import shared_task

from apps.releases.runner import golden_run_execute

# A run of up to a few dozen questions; the hard limit stays below the broker's visibility timeout (3600 s)
# and below runner.RUN_STALE_AFTER, so a live run is never started twice. A redelivered finished run is a
# no-op (golden_run_execute).


@shared_task(acks_late=True, soft_time_limit=1500, time_limit=1800)
def golden_run_task(run_id: str) -> str:
    return str(golden_run_execute(run_id=run_id).status)
