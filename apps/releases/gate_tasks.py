"""Celery interface of the publish gate: ids in, one service call (STYLE rule 9)."""

from __future__ import annotations

from celery import shared_task

from apps.releases import gate

# Two golden runs of up to a few dozen questions each; the hard limit stays below the broker's visibility
# timeout (3600 s), so a running check is never redelivered. A redelivered check of a decided change is a
# no-op (gate.change_check).


@shared_task(acks_late=True, soft_time_limit=1500, time_limit=1800)
def gate_check(change_id: str) -> str | None:
    change = gate.change_check(change_id=change_id)
    return change.status if change else None
