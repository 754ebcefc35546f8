"""Voice clips: accepting a recording within the bounds, and transcribing it in the `voice` queue
(docs/architecture/voice.md)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Tenant
from apps.conversations.identity import SessionClaims
from apps.conversations.services import message_prepare
from apps.core.errors import HelpdeskError
from apps.voice import engine, errors
from apps.voice.formats import AudioFormat, audio_format_sniff, header_duration_seconds
from apps.voice.models import VoiceClip, VoiceSettings
from apps.voice.selectors import voice_settings_for

logger = logging.getLogger(__name__)

TRANSCRIBE_TASK = "apps.voice.tasks.voice_clip_transcribe"


def voice_clip_create(*, tenant: Tenant, claims: SessionClaims, data: bytes) -> VoiceClip:
    """Stores a recording and queues its transcription, or refuses it (nothing stored, nothing queued):
    voice turned off, empty, over VOICE_MAX_BYTES, not audio by its magic bytes, or a container that
    declares more than VOICE_MAX_SECONDS."""
    voice = voice_settings_for(tenant=tenant)
    if not voice.voice_enabled:
        raise errors.VoiceDisabled()
    if not data:
        raise errors.VoiceEmpty()
    voice_size_check(size=len(data))
    audio_format = audio_format_sniff(data)
    if audio_format is None:
        raise errors.VoiceFormat()
    duration = header_duration_seconds(data, audio_format)
    if duration is not None and duration > settings.VOICE_MAX_SECONDS:
        raise errors.VoiceTooLong(
            errors.too_long_sentence(seconds=duration, limit=settings.VOICE_MAX_SECONDS)
        )
    with transaction.atomic():
        clip = VoiceClip.objects.create(
            tenant=tenant,
            conversation_id=claims.conversation_id,
            visitor_id=claims.visitor_id,
            contact_id=claims.contact_id,
            audio_format=audio_format.value,
            size_bytes=len(data),
            duration_s=duration,
            audio=data,
            audio_kept=voice.voice_keep_audio,
        )
        args = [str(tenant.id), str(clip.id)]
        transaction.on_commit(lambda: current_app.send_task(TRANSCRIBE_TASK, args=args))
    logger.info(
        "voice clip %s accepted for tenant %s: %s, %d bytes, declared %s s",
        clip.id,
        tenant.slug,
        audio_format.value,
        len(data),
        f"{duration:.1f}" if duration is not None else "unknown",
    )
    return clip


def voice_size_check(*, size: int) -> None:
    if size > settings.VOICE_MAX_BYTES:
        raise errors.VoiceTooLarge(errors.too_large_sentence(size=size, limit=settings.VOICE_MAX_BYTES))


def voice_clip_transcribe(*, tenant_id: uuid.UUID | str, clip_id: uuid.UUID | str) -> VoiceClip | None:
    """Transcribes a clip once: a clip already done or failed is returned as it is, one another worker is
    transcribing is left to it (unless that worker died: after the task's hard time limit it is taken
    over). The transcript is redacted like a typed message; the audio is deleted unless the tenant keeps
    it. Never sends anything into the conversation."""
    clip, claimed = _clip_claim(tenant_id=tenant_id, clip_id=clip_id)
    if clip is None or not claimed:
        return clip
    if clip.audio is None:  # taken over from a worker that died after deleting it: nothing left to hear
        return _clip_fail(clip, engine.TranscriptionFailed(errors.DECODE, detail="audio gone"))
    try:
        result = engine.transcribe(data=bytes(clip.audio), audio_format=AudioFormat(clip.audio_format))
    except engine.TranscriptionFailed as exc:
        return _clip_fail(clip, exc)
    try:
        prepared = message_prepare(text=result.text)
    except HelpdeskError as exc:  # PII detection down (fails closed), or an impossible length
        logger.warning("voice clip %s: transcript not redacted (%s)", clip.id, exc.code)
        return _clip_fail(clip, engine.TranscriptionFailed(errors.ENGINE_UNAVAILABLE, detail=exc.code))
    clip.status = VoiceClip.Status.DONE
    clip.transcript = prepared.body
    clip.transcript_redacted = str(prepared.redacted)
    clip.engine = result.engine
    clip.transcribe_seconds = result.seconds
    if result.duration_s is not None:
        clip.duration_s = result.duration_s
    _clip_finish(clip, ["transcript", "transcript_redacted", "engine", "transcribe_seconds", "duration_s"])
    logger.info(
        "voice clip %s transcribed by %s: %.1f s of audio in %.2f s",
        clip.id,
        result.engine,
        clip.duration_s or 0.0,
        result.seconds,
    )
    return clip


def _clip_claim(*, tenant_id: uuid.UUID | str, clip_id: uuid.UUID | str) -> tuple[VoiceClip | None, bool]:
    """The clip, and whether this worker now holds it (pending, or transcribing by a worker that died)."""
    stale = timezone.now() - timedelta(seconds=settings.VOICE_TASK_TIME_LIMIT)
    with transaction.atomic():
        clip = VoiceClip.objects.select_for_update().filter(id=clip_id, tenant_id=tenant_id).first()
        if clip is None or clip.status in (VoiceClip.Status.DONE, VoiceClip.Status.FAILED):
            return clip, False
        if clip.status == VoiceClip.Status.TRANSCRIBING and clip.updated_at > stale:
            return clip, False
        clip.status = VoiceClip.Status.TRANSCRIBING
        clip.save(update_fields=["status", "updated_at"])
    return clip, True


def _clip_fail(clip: VoiceClip, failure: engine.TranscriptionFailed) -> VoiceClip:
    clip.status = VoiceClip.Status.FAILED
    clip.error_code = failure.code
    if failure.code == errors.TOO_LONG:
        seconds = failure.seconds or float(settings.VOICE_MAX_SECONDS)
        clip.error_message = errors.too_long_sentence(seconds=seconds, limit=settings.VOICE_MAX_SECONDS)
    else:
        clip.error_message = errors.FAILURE_SENTENCES[failure.code]
    clip.engine = engine.engine_name()
    if failure.seconds is not None:
        clip.duration_s = failure.seconds
    _clip_finish(clip, ["error_code", "error_message", "engine", "duration_s"])
    logger.info("voice clip %s failed: %s (%s)", clip.id, failure.code, failure.detail)
    return clip


def _clip_finish(clip: VoiceClip, fields: list[str]) -> None:
    clip.finished_at = timezone.now()
    fields = [*fields, "status", "finished_at", "updated_at"]
    if not clip.audio_kept:
        clip.audio = None
        clip.audio_deleted_at = clip.finished_at
        fields += ["audio", "audio_deleted_at"]
    with transaction.atomic():
        # Only while the clip is still being transcribed: a late duplicate never overwrites an outcome.
        still = (
            VoiceClip.objects.select_for_update()
            .filter(id=clip.id, status=VoiceClip.Status.TRANSCRIBING)
            .values_list("id", flat=True)
            .first()
        )
        if still is not None:
            clip.save(update_fields=fields)


def voice_clip_abandon(*, tenant_id: uuid.UUID | str, clip_id: uuid.UUID | str) -> VoiceClip | None:
    """A transcription that ran out of time: the clip fails (the engine is too slow or stuck just now)."""
    clip = VoiceClip.objects.filter(id=clip_id, tenant_id=tenant_id).defer("audio").first()
    if clip is None or clip.status != VoiceClip.Status.TRANSCRIBING:
        return clip
    return _clip_fail(clip, engine.TranscriptionFailed(errors.ENGINE_UNAVAILABLE, detail="time limit"))


def voice_settings_update(
    *, tenant: Tenant, voice_enabled: bool | None = None, voice_keep_audio: bool | None = None
) -> VoiceSettings:
    """Changes a company's voice settings (creating the row on first change). Keeping audio applies to
    recordings uploaded from now on; turning it off does not delete audio already kept (retention does)."""
    with transaction.atomic():
        settings_row, _ = VoiceSettings.objects.select_for_update().get_or_create(tenant=tenant)
        if voice_enabled is not None:
            settings_row.voice_enabled = voice_enabled
        if voice_keep_audio is not None:
            settings_row.voice_keep_audio = voice_keep_audio
        settings_row.save(update_fields=["voice_enabled", "voice_keep_audio", "updated_at"])
    return settings_row
