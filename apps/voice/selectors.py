"""Reads of voice clips: the recording session's own clip, what the widget sees of it, and kept audio."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from apps.accounts.models import Tenant
from apps.conversations.identity import SessionClaims
from apps.core.errors import NotFound
from apps.voice import errors
from apps.voice.models import VoiceClip, VoiceSettings


def access_voice_clip(*, tenant: Tenant, claims: SessionClaims, clip_id: uuid.UUID | str) -> VoiceClip:
    """A clip of this widget session (same tenant, visitor and conversation); anything else, another
    session's or tenant's clip included, is not found. The audio is not loaded."""
    try:
        key = uuid.UUID(str(clip_id))
    except ValueError:
        raise NotFound() from None
    clip = (
        VoiceClip.objects.for_tenant(tenant)
        .filter(id=key, visitor_id=claims.visitor_id, conversation_id=claims.conversation_id)
        .defer("audio")
        .first()
    )
    if clip is None:
        raise NotFound("That voice message doesn't exist, or it belongs to another chat.")
    return clip


def voice_clip_render(clip: VoiceClip) -> dict[str, Any]:
    """What the widget polls: the original words (to the session that spoke them) or why there are none."""
    error = None
    if clip.status == VoiceClip.Status.FAILED:
        error = {
            "code": clip.error_code,
            "message": clip.error_message,
            "retryable": clip.error_code in errors.RETRYABLE_FAILURES,
        }
    return {
        "id": str(clip.id),
        "status": clip.status,
        "transcript": clip.transcript if clip.status == VoiceClip.Status.DONE else None,
        "error": error,
    }


def voice_clips_kept(*, tenant: Tenant) -> QuerySet[VoiceClip]:
    """Clips whose audio is still stored because the tenant keeps audio: the retention list (newest
    first), without loading the audio itself."""
    return (
        VoiceClip.objects.for_tenant(tenant)
        .filter(audio_kept=True, audio__isnull=False)
        .defer("audio")
        .order_by("-created_at")
    )


def voice_settings_for(*, tenant: Tenant) -> VoiceSettings:
    """The company's voice settings; the defaults (unsaved) when it never changed them."""
    found = VoiceSettings.objects.for_tenant(tenant).first()
    return found if found is not None else VoiceSettings(tenant=tenant)


def voice_session_limits(tenant: Tenant) -> dict[str, Any]:
    """The widget session's `limits.voice` (registered with conversations): whether the microphone is
    offered, and how long a recording may be."""
    return {
        "voice": {
            "enabled": voice_settings_for(tenant=tenant).voice_enabled,
            "max_seconds": settings.VOICE_MAX_SECONDS,
        }
    }


def voice_settings_section(*, tenant: Tenant) -> dict[str, Any]:
    """What the company settings page's "Voice messages" section shows (registered with accounts)."""
    return {"voice": voice_settings_for(tenant=tenant), "voice_max_seconds": settings.VOICE_MAX_SECONDS}
