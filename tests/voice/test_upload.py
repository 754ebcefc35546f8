"""The widget's voice upload and status endpoints: the same session, origin and CORS checks as the other
widget APIs, and every bound refused with its sentence before anything is stored or queued."""

from __future__ import annotations

import os
import uuid

import pytest
from django.test import Client

from apps.voice import services
from apps.voice.models import VoiceClip
from apps.voice.selectors import voice_settings_for
from tests.voice.conftest import ORIGIN, VOICE, open_session, poll, upload, wav_samples
from tests.voice.test_formats import PNG, claim_length

pytestmark = pytest.mark.django_db


def assert_refused(response, status: int, code: str, message: str, callbacks) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["code"], body["message"], body["retryable"]) == (code, message, False)
    assert response["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read the sentence
    assert VoiceClip.objects.count() == 0
    assert callbacks == []  # nothing queued for the model


def test_a_recording_is_stored_and_one_transcription_queued(
    session_token, spoken_wav, spoken_webm, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, spoken_webm)
    assert response.status_code == 202, response.content
    clip = VoiceClip.objects.get()
    assert response.json() == {"id": str(clip.id), "status": "pending"}
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert clip.audio is not None
    assert (clip.audio_format, clip.size_bytes, bytes(clip.audio)) == ("webm", len(spoken_webm), spoken_webm)
    samples, rate = wav_samples(spoken_wav)
    assert clip.duration_s == pytest.approx(len(samples) / rate, abs=0.1)  # what the WebM declares
    assert clip.audio_kept is False
    assert len(callbacks) == 1
    status = poll(session_token, str(clip.id))
    assert status.status_code == 200
    assert status.json() == {"id": str(clip.id), "status": "pending", "transcript": None, "error": None}


def test_a_renamed_picture_is_refused_whatever_its_name_and_type(
    session_token, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, PNG, name="x.webm", content_type="audio/webm")
    assert_refused(
        response,
        415,
        "voice_format",
        "That file is not a recording we can transcribe (WAV, WebM, Ogg, MP4/M4A or MP3). "
        "Please record your message again.",
        callbacks,
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, os.urandom(50_000), name="voice.ogg", content_type="audio/ogg")
    assert_refused(response, 415, "voice_format", response.json()["message"], callbacks)


def test_an_oversized_recording_is_refused(
    session_token, spoken_wav, settings, django_capture_on_commit_callbacks
):
    settings.VOICE_MAX_BYTES = 20 * 1024
    assert len(spoken_wav) > 30 * 1024
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, spoken_wav, name="voice.wav", content_type="audio/wav")
    size = round(len(spoken_wav) / 1024)
    assert_refused(
        response,
        413,
        "voice_too_large",
        f"Voice messages can be up to 20 KB; this recording is {size} KB.",
        callbacks,
    )


def test_an_upload_far_over_the_cap_is_refused_on_its_declared_length(
    session_token, settings, django_capture_on_commit_callbacks
):
    settings.VOICE_MAX_BYTES = 100 * 1024
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, b"RIFF" + os.urandom(400_000))
    assert_refused(response, 413, "voice_too_large", response.json()["message"], callbacks)
    # Refused on the request's declared length (less the multipart allowance), before the body is parsed.
    assert response.json()["message"] == "Voice messages can be up to 100 KB; this recording is 327 KB."


def test_a_twenty_minute_recording_is_refused_before_transcription(
    session_token, twenty_minutes_webm, django_capture_on_commit_callbacks
):
    assert len(twenty_minutes_webm) < 5 * 1024 * 1024  # within the size cap: the length is what refuses it
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, twenty_minutes_webm)
    assert_refused(
        response,
        413,
        "voice_too_long",
        "Voice messages can be up to 60 seconds long; this recording is 20 minutes long.",
        callbacks,
    )


def test_a_wav_whose_header_claims_twenty_minutes_is_refused(
    session_token, quiet_wav, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, claim_length(quiet_wav, seconds=1200), name="v.wav")
    assert_refused(
        response,
        413,
        "voice_too_long",
        "Voice messages can be up to 60 seconds long; this recording is 20 minutes long.",
        callbacks,
    )


def test_an_empty_or_missing_recording_is_refused(session_token, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        empty = upload(session_token, b"")
        missing = Client().post(
            VOICE, {"note": "hi"}, headers={"Origin": ORIGIN, "Authorization": f"Bearer {session_token}"}
        )
    assert_refused(
        empty, 400, "voice_empty", "The recording is empty. Please record your message again.", callbacks
    )
    assert_refused(
        missing, 400, "voice_empty", "Attach the recording as the multipart field `audio`.", callbacks
    )


def test_a_company_that_turned_voice_off_refuses_recordings(
    voice_tenant, session_token, spoken_webm, django_capture_on_commit_callbacks
):
    services.voice_settings_update(tenant=voice_tenant, voice_enabled=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(session_token, spoken_webm)
    assert_refused(
        response,
        403,
        "voice_disabled",
        "Voice messages are turned off for this chat. Please type your message instead.",
        callbacks,
    )
    assert voice_settings_for(tenant=voice_tenant).voice_enabled is False


def test_no_session_or_another_site_is_refused(session_token, spoken_webm):
    no_token = upload(None, spoken_webm)
    assert no_token.status_code == 401
    assert no_token.json()["code"] == "unauthorized"
    forged = upload(session_token + "x", spoken_webm)
    assert forged.status_code == 401
    elsewhere = upload(session_token, spoken_webm, origin="https://evil.example")
    assert elsewhere.status_code == 403
    assert elsewhere.json()["code"] == "forbidden"
    assert "Access-Control-Allow-Origin" not in elsewhere
    assert VoiceClip.objects.count() == 0


def test_the_preflight_is_answered_for_an_allowed_origin_only(voice_tenant):
    allowed = Client().options(VOICE, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    other = Client().options(VOICE, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other


def test_only_the_session_that_recorded_a_clip_reads_it(
    voice_tenant, session_token, spoken_webm, make_tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        clip_id = upload(session_token, spoken_webm).json()["id"]
    VoiceClip.objects.filter(id=clip_id).update(status="done", transcript="Can I return a phone?")
    mine = poll(session_token, clip_id)
    assert mine.json()["transcript"] == "Can I return a phone?"

    another_visitor = open_session(voice_tenant)
    other_tenant = make_tenant(origins=[ORIGIN])
    another_company = open_session(other_tenant)
    for token in (another_visitor, another_company):
        response = poll(token, clip_id)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert "transcript" not in response.json()
    assert poll(session_token, str(uuid.uuid4())).status_code == 404
    assert poll(session_token, "not-a-uuid").status_code == 404
    assert poll(session_token, clip_id, origin="https://evil.example").status_code == 403


def test_uploads_are_rate_limited_per_visitor(
    session_token, quiet_wav, settings, django_capture_on_commit_callbacks
):
    settings.VOICE_RATE_VISITOR = 2
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        statuses = [upload(session_token, quiet_wav, name="v.wav").status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    assert VoiceClip.objects.count() == 2
    assert len(callbacks) == 2
