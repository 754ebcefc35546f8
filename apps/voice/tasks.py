"""Celery interfaces of the voice app: ids in, one service call (STYLE rule 9). Routed to the `voice`
queue, served by a worker of its own (concurrency 1: the model uses both cores), so a transcription
never waits behind an ingestion and never delays a tool run."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from apps.voice import services


@shared_task(
    acks_late=True,
    soft_time_limit=settings.VOICE_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.VOICE_TASK_TIME_LIMIT,
)
def voice_clip_transcribe(tenant_id: str, clip_id: str) -> str | None:
    try:
        clip = services.voice_clip_transcribe(tenant_id=tenant_id, clip_id=clip_id)
    except SoftTimeLimitExceeded:
        # The customer is polling: tell them now rather than leave the clip transcribing forever.
        clip = services.voice_clip_abandon(tenant_id=tenant_id, clip_id=clip_id)
    return clip.status if clip is not None else None
