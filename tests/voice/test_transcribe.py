"""Transcription: the real Whisper model (faster-whisper, the bundled tiny.en) on real espeak-ng speech,
in a real Celery worker on the `voice` queue; the bounds the worker enforces before the model runs; the
remote OpenAI-compatible engine against a fake server (an external boundary)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.voice import engine, services
from apps.voice.models import VoiceClip
from apps.voice.selectors import voice_clips_kept
from tests.conftest import celery_worker_in_process
from tests.voice.conftest import ORIGIN, open_session, poll, upload, wav_bytes, wav_samples

COULD_NOT_HEAR = "We couldn't hear anything in that recording. Please try again closer to the microphone."


def heard(text: str) -> set[str]:
    return {word.strip(".,?!").lower() for word in text.split()}


def stored(tenant: Any, data: bytes, fmt: str, *, kept: bool = False) -> VoiceClip:
    """A clip as the upload stores it (the upload's own checks are tests/voice/test_upload.py's)."""
    return VoiceClip.objects.create(
        tenant=tenant,
        conversation_id=uuid.uuid4(),
        visitor_id=uuid.uuid4(),
        audio_format=fmt,
        size_bytes=len(data),
        audio=data,
        audio_kept=kept,
    )


@pytest.mark.django_db(transaction=True)
def test_a_spoken_question_is_transcribed_by_the_voice_worker_and_its_audio_deleted(voice_tenant, spoken_wav):
    token = open_session(voice_tenant)
    with celery_worker_in_process(queues=("voice",)):
        response = upload(token, spoken_wav, name="question.wav", content_type="audio/wav")
        assert response.status_code == 202, response.content
        clip_id = response.json()["id"]
        deadline = time.monotonic() + 60
        body = poll(token, clip_id).json()
        while body["status"] in ("pending", "transcribing") and time.monotonic() < deadline:
            time.sleep(0.25)
            body = poll(token, clip_id).json()
    assert body["status"] == "done", body
    assert body["error"] is None
    assert {"return", "phone"} <= heard(body["transcript"])
    clip = VoiceClip.objects.get(id=clip_id)
    assert clip.transcript == body["transcript"]
    assert clip.audio is None
    assert clip.audio_deleted_at is not None
    assert clip.engine == "local:faster-whisper"
    assert clip.duration_s == pytest.approx(len(wav_samples(spoken_wav)[0]) / 22050, abs=0.2)
    assert poll(token, clip_id).headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.django_db
def test_a_webm_opus_recording_is_transcribed(voice_tenant, spoken_webm):
    clip = stored(voice_tenant, spoken_webm, "webm")
    done = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert done is not None
    assert done.status == "done", done.error_code
    assert {"return", "phone"} <= heard(done.transcript)


@pytest.mark.django_db
def test_silence_fails_with_its_sentence_and_the_model_never_runs(voice_tenant, quiet_wav, monkeypatch):
    def model_must_not_run(samples: Any) -> str:
        raise AssertionError("the model ran on a recording without speech")

    monkeypatch.setattr(engine, "_local_transcribe", model_must_not_run)
    clip = stored(voice_tenant, quiet_wav, "wav")
    failed = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert failed is not None
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "voice_silent",
        COULD_NOT_HEAR,
    )
    assert failed.transcript == ""
    assert failed.audio is None


@pytest.mark.django_db
def test_a_recording_that_decodes_longer_than_the_cap_fails_before_the_model(
    voice_tenant, spoken_wav, settings, monkeypatch
):
    """A container that declares no length (an MP3, a fragmented MP4) is measured while decoding."""
    monkeypatch.setattr(engine, "_local_transcribe", lambda samples: pytest.fail("the model ran"))
    settings.VOICE_MAX_SECONDS = 1  # the question is 1.7 s long
    clip = stored(voice_tenant, spoken_wav, "wav")
    failed = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert failed is not None
    assert (failed.status, failed.error_code) == ("failed", "voice_too_long")
    assert failed.error_message.startswith("Voice messages can be up to 1 second long; this recording is ")


@pytest.mark.django_db
def test_an_undecodable_recording_fails_with_its_sentence(voice_tenant):
    clip = stored(voice_tenant, b"OggS" + bytes(range(256)) * 40, "ogg")
    failed = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert failed is not None
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "voice_decode",
        "We couldn't play that recording. Please record your message again.",
    )


@pytest.mark.django_db
def test_a_company_that_keeps_audio_has_it_listed_for_retention(voice_tenant, spoken_wav, make_tenant):
    services.voice_settings_update(tenant=voice_tenant, voice_keep_audio=True)
    token = open_session(voice_tenant)
    clip_id = upload(token, spoken_wav, name="q.wav").json()["id"]
    done = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip_id)
    assert done is not None
    assert done.status == "done"
    kept = VoiceClip.objects.get(id=clip_id).audio
    assert kept is not None
    assert bytes(kept) == spoken_wav
    assert [c.id for c in voice_clips_kept(tenant=voice_tenant)] == [done.id]
    assert list(voice_clips_kept(tenant=make_tenant())) == []


@pytest.mark.django_db
def test_the_remote_engine_is_used_when_configured_and_its_transcript_redacted(
    voice_tenant, spoken_webm, fake_transcriber
):
    fake_transcriber.text = "My email is maria.lopez@example.com, can I return my phone?"
    clip = stored(voice_tenant, spoken_webm, "webm")
    done = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert done is not None
    assert done.status == "done", done.error_code
    assert done.transcript == "My email is maria.lopez@example.com, can I return my phone?"
    assert done.transcript_redacted == "My email is <EMAIL_ADDRESS>, can I return my phone?"
    assert done.engine == "remote:whisper-test"
    [request] = fake_transcriber.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.authorization == "Bearer sk-test-voice"
    assert request.fields["model"] == "whisper-test"
    assert request.fields["language"] == "en"
    assert (request.file_name, request.file_type, request.file_bytes) == (
        "audio.webm",
        "audio/webm",
        spoken_webm,
    )

    again = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)  # a duplicated task
    assert again is not None
    assert again.status == "done"
    assert len(fake_transcriber.requests) == 1


@pytest.mark.django_db
def test_a_remote_engine_that_is_down_fails_the_clip_with_its_sentence(
    voice_tenant, spoken_webm, quiet_wav, fake_transcriber
):
    fake_transcriber.status = 503
    clip = stored(voice_tenant, spoken_webm, "webm")
    failed = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert failed is not None
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "voice_engine_unavailable",
        "Voice messages can't be transcribed right now. Please type your message instead.",
    )
    # Silence is still caught before anything is sent to the server.
    silent = stored(voice_tenant, quiet_wav, "wav")
    outcome = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=silent.id)
    assert outcome is not None
    assert outcome.error_code == "voice_silent"
    assert len(fake_transcriber.requests) == 1


@pytest.mark.django_db
def test_a_failed_clip_is_shown_to_its_session_with_the_sentence(voice_tenant, quiet_wav):
    token = open_session(voice_tenant)
    clip_id = upload(token, quiet_wav, name="q.wav").json()["id"]
    services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip_id)
    assert poll(token, clip_id).json() == {
        "id": clip_id,
        "status": "failed",
        "transcript": None,
        "error": {"code": "voice_silent", "message": COULD_NOT_HEAR, "retryable": False},
    }


def test_the_model_is_loaded_once_per_process():
    assert engine.whisper_model() is engine.whisper_model()


def test_decoding_stops_at_the_cap(spoken_wav):
    with pytest.raises(engine.TranscriptionFailed) as failure:
        engine.audio_decode(spoken_wav, max_seconds=1)
    assert failure.value.code == "voice_too_long"
    assert failure.value.seconds is not None
    assert failure.value.seconds < 3
    samples = engine.audio_decode(wav_bytes(wav_samples(spoken_wav)[0], 22050), max_seconds=60)
    assert len(samples) / engine.SAMPLE_RATE == pytest.approx(
        len(wav_samples(spoken_wav)[0]) / 22050, abs=0.05
    )


@pytest.mark.django_db
def test_a_clip_another_worker_is_transcribing_is_left_to_it_unless_that_worker_died(
    voice_tenant, spoken_webm, fake_transcriber, settings
):
    clip = stored(voice_tenant, spoken_webm, "webm")
    VoiceClip.objects.filter(id=clip.id).update(status="transcribing")
    busy = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert busy is not None
    assert busy.status == "transcribing"
    assert fake_transcriber.requests == []

    died_at = timezone.now() - timedelta(seconds=settings.VOICE_TASK_TIME_LIMIT + 1)
    VoiceClip.objects.filter(id=clip.id).update(updated_at=died_at)
    taken_over = services.voice_clip_transcribe(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert taken_over is not None
    assert taken_over.status == "done"
    assert len(fake_transcriber.requests) == 1


@pytest.mark.django_db
def test_a_transcription_out_of_time_fails_so_the_customer_is_told(voice_tenant, spoken_webm):
    clip = stored(voice_tenant, spoken_webm, "webm")
    VoiceClip.objects.filter(id=clip.id).update(status="transcribing")
    failed = services.voice_clip_abandon(tenant_id=voice_tenant.id, clip_id=clip.id)
    assert failed is not None
    assert (failed.status, failed.error_code) == ("failed", "voice_engine_unavailable")
    assert VoiceClip.objects.get(id=clip.id).audio is None
    other_tenant_call = services.voice_clip_transcribe(tenant_id=uuid.uuid4(), clip_id=clip.id)
    assert other_tenant_call is None  # tenant-scoped: another tenant's id finds nothing
