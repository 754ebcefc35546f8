"""The voice errors a customer can meet, with stable codes (CONTRACTS.md §1: extend, never rename).

Refusals at upload are raised (HTTP 4xx, nothing stored or queued); failures found by the worker are
stored on the clip as `error_code` + `error_message` and shown by the widget when it polls.
"""

from __future__ import annotations

from apps.core.errors import BadRequest, Forbidden, HelpdeskError


class VoiceTooLarge(HelpdeskError):
    code = "voice_too_large"
    http_status = 413
    default_message = "That recording is too large to transcribe."


class VoiceTooLong(HelpdeskError):
    code = "voice_too_long"
    http_status = 413
    default_message = "That recording is too long to transcribe."


class VoiceFormat(HelpdeskError):
    code = "voice_format"
    http_status = 415
    default_message = (
        "That file is not a recording we can transcribe (WAV, WebM, Ogg, MP4/M4A or MP3). "
        "Please record your message again."
    )


class VoiceEmpty(BadRequest):
    code = "voice_empty"
    default_message = "The recording is empty. Please record your message again."


class VoiceDisabled(Forbidden):
    code = "voice_disabled"
    default_message = "Voice messages are turned off for this chat. Please type your message instead."


# Failures the worker stores on a clip: code -> the sentence the customer sees, and whether trying again
# may help.
SILENT = "voice_silent"
DECODE = "voice_decode"
TOO_LONG = "voice_too_long"
ENGINE_UNAVAILABLE = "voice_engine_unavailable"

FAILURE_SENTENCES = {
    SILENT: "We couldn't hear anything in that recording. Please try again closer to the microphone.",
    DECODE: "We couldn't play that recording. Please record your message again.",
    ENGINE_UNAVAILABLE: "Voice messages can't be transcribed right now. Please type your message instead.",
}
RETRYABLE_FAILURES = frozenset({ENGINE_UNAVAILABLE})


def too_long_sentence(*, seconds: float, limit: int) -> str:
    unit = "second" if limit == 1 else "seconds"
    return f"Voice messages can be up to {limit} {unit} long; this recording is {_length(seconds)}."


def too_large_sentence(*, size: int, limit: int) -> str:
    return f"Voice messages can be up to {_megabytes(limit)}; this recording is {_megabytes(size)}."


def _length(seconds: float) -> str:
    if seconds < 120:
        return f"{round(seconds)} seconds long"
    return f"{round(seconds / 60)} minutes long"


def _megabytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"
