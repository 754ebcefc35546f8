"""Kept audio is listed for retention in the Django admin (platform operators), without the original
words; voice settings are changed through the service."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from apps.voice import services
from apps.voice.models import VoiceClip, VoiceSettings

pytestmark = pytest.mark.django_db


def clip(tenant, *, audio: bytes | None, kept: bool, words: str) -> VoiceClip:
    return VoiceClip.objects.create(
        tenant=tenant,
        conversation_id=uuid.uuid4(),
        visitor_id=uuid.uuid4(),
        status="done",
        audio_format="wav",
        size_bytes=4,
        audio=audio,
        audio_kept=kept,
        transcript=words,
        transcript_redacted="My number is <PHONE_NUMBER>",
    )


def test_the_admin_lists_clips_whose_audio_is_kept_and_never_shows_the_original_words(
    voice_tenant, make_user
):
    operator = make_user()
    operator.is_staff = operator.is_superuser = True
    operator.save(update_fields=["is_staff", "is_superuser"])
    kept = clip(voice_tenant, audio=b"RIFF", kept=True, words="My number is 07700 900123")
    deleted = clip(voice_tenant, audio=None, kept=False, words="My number is 07700 900123")
    client = Client()
    client.force_login(operator)

    listing = client.get("/admin/voice/voiceclip/?audio_stored=yes")
    assert listing.status_code == 200
    assert str(kept.id) in listing.content.decode()
    assert str(deleted.id) not in listing.content.decode()

    page = client.get(f"/admin/voice/voiceclip/{kept.id}/change/")
    assert page.status_code == 200
    assert "07700 900123" not in page.content.decode()
    assert "&lt;PHONE_NUMBER&gt;" in page.content.decode()


def test_voice_settings_start_at_the_defaults_and_change_through_the_service(voice_tenant):
    assert VoiceSettings.objects.count() == 0
    changed = services.voice_settings_update(tenant=voice_tenant, voice_keep_audio=True)
    assert (changed.voice_enabled, changed.voice_keep_audio) == (True, True)
    again = services.voice_settings_update(tenant=voice_tenant, voice_enabled=False)
    assert (again.id, again.voice_enabled, again.voice_keep_audio) == (changed.id, False, True)
