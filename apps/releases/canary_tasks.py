"""Celery interfaces of canaries: ids in, one service call (STYLE rule 9). Registered by
ReleasesConfig.ready (autodiscovery finds only `tasks` modules)."""

from __future__ import annotations

from celery import shared_task

from apps.releases import canary


@shared_task(
    name="apps.releases.canary_tasks.canary_check_task", acks_late=True, soft_time_limit=1500, time_limit=1800
)
def canary_check_task(canary_id: str) -> str:
    """The golden set through both models (two runs of the company's golden questions)."""
    result = canary.canary_check(canary_id=canary_id)
    return str(result.status) if result is not None else "missing"


@shared_task(
    name="apps.releases.canary_tasks.canaries_evaluate_task",
    acks_late=True,
    soft_time_limit=25,
    time_limit=29,
)
def canaries_evaluate_task() -> int:
    """Every 30 s (CELERY_BEAT_SCHEDULE): running canaries compared, stragglers of stopped ones sent back."""
    return canary.canaries_evaluate()
