"""Celery interfaces of tools: ids in, one service call (STYLE rule 9).

Time limits are set per call from the tool's timeout (services._limits), far below the broker's
visibility timeout. Retries: only transient failures and runs another worker still holds.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.tools import execution


@shared_task(bind=True, acks_late=True, max_retries=12)
def tool_run_execute(self: Any, run_id: str) -> str:
    try:
        run = execution.tool_run_execute(run_id=run_id)
    except execution.RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from None
    return str(run.status)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def tool_runs_recover() -> int:
    return execution.tool_runs_recover()
