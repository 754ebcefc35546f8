"""Voice fixtures: real recordings (espeak-ng speech, PyAV-encoded WebM/Opus, low noise, 20 minutes of
near-silence), a company whose widget is embedded at ORIGIN, and widget sessions opened over HTTP."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.accounts.models import Tenant
from apps.llm.breaker import reset_breakers
from tests.voice.fake_transcribe import FakeTranscriber

ORIGIN = "https://shop.example"
SESSION = "/api/widget/v1/session"
VOICE = "/api/widget/v1/voice"
SPOKEN = "Can I return a phone?"


@pytest.fixture(scope="session")
def voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voice")


@pytest.fixture(scope="session")
def spoken_wav(voice_dir: Path) -> bytes:
    """The question as espeak-ng says it (22.05 kHz 16-bit mono PCM WAV)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`.ci/run` installs the Debian package)")
    path = voice_dir / "spoken.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), SPOKEN], check=True, capture_output=True)
    return path.read_bytes()


def encode(samples: np.ndarray, rate: int, *, container: str = "webm", bit_rate: int = 64000) -> bytes:
    """Mono float samples encoded as Opus in WebM or Ogg (Chromium's MediaRecorder uses a similar rate)."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream = muxer.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48000)
        step = rate  # one second per frame
        for start in range(0, len(samples), step):
            chunk = samples[start : start + step].astype(np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = rate
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as reader:
        rate = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0, rate


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return out.getvalue()


@pytest.fixture(scope="session")
def spoken_webm(spoken_wav: bytes) -> bytes:
    samples, rate = wav_samples(spoken_wav)
    return encode(samples, rate)


@pytest.fixture(scope="session")
def quiet_wav() -> bytes:
    """Three seconds of faint noise: a microphone in a quiet room, nobody speaking."""
    rng = np.random.default_rng(7)
    return wav_bytes(rng.standard_normal(3 * 16000) * 0.001, 16000)


@pytest.fixture(scope="session")
def twenty_minutes_webm() -> bytes:
    """A real 20-minute WebM/Opus recording of near-silence (under a megabyte, about 2 s to make)."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="webm") as muxer:
        options = {"compression_level": "0", "frame_duration": "60", "application": "lowdelay"}
        stream = muxer.add_stream("libopus", rate=48000, options=options)
        stream.layout = "mono"
        stream.bit_rate = 6000
        second = np.zeros((1, 48000), dtype=np.float32)
        for i in range(20 * 60):
            frame = av.AudioFrame.from_ndarray(second, format="flt", layout="mono")
            frame.sample_rate = 48000
            frame.pts = i * 48000
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()


@pytest.fixture
def voice_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant(origins=[ORIGIN])


def open_session(tenant: Tenant) -> str:
    response = Client().post(
        SESSION,
        {"widget_key": tenant.widget_key},
        content_type="application/json",
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


@pytest.fixture
def session_token(voice_tenant: Tenant) -> str:
    return open_session(voice_tenant)


def upload(
    token: str | None,
    data: bytes,
    *,
    name: str = "voice.webm",
    content_type: str = "audio/webm",
    origin: str = ORIGIN,
) -> Any:
    headers = {"Origin": origin}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return Client().post(VOICE, {"audio": SimpleUploadedFile(name, data, content_type)}, headers=headers)


def poll(token: str, clip_id: str, *, origin: str = ORIGIN) -> Any:
    headers = {"Origin": origin, "Authorization": f"Bearer {token}"}
    return Client().get(f"{VOICE}/{clip_id}", headers=headers)


@pytest.fixture
def fake_transcriber(settings: Any) -> Iterator[FakeTranscriber]:
    with FakeTranscriber() as fake:
        settings.TRANSCRIBE_BASE_URL = fake.base_url
        settings.TRANSCRIBE_API_KEY = "sk-test-voice"
        settings.TRANSCRIBE_MODEL = "whisper-test"
        reset_breakers()
        yield fake
        reset_breakers()


@pytest.fixture(autouse=True)
def _address_limit_out_of_the_way(settings: Any) -> None:
    """Every test client comes from 127.0.0.1: the per-address budget would be shared by the whole run."""
    settings.VOICE_RATE_IP = 100_000
