"""Celery interfaces of the knowledge base: ids in, one service call (STYLE rule 9)."""

from __future__ import annotations

from celery import shared_task

from apps.knowledge import ingestion

# Hard limits stay below the broker's visibility timeout (3600 s), so a running task is never redelivered.


@shared_task(acks_late=True, soft_time_limit=900, time_limit=1200)
def version_ingest(version_id: str) -> str | None:
    version = ingestion.version_ingest(version_id=version_id)
    return version.status if version else None


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=2400)
def chunks_reembed() -> int:
    return ingestion.chunks_reembed()
