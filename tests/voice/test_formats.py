"""Format sniffing by magic bytes and the length a container declares (apps/voice/formats.py)."""

from __future__ import annotations

import os
import struct

import pytest

from apps.voice.formats import AudioFormat, audio_format_sniff, header_duration_seconds
from tests.voice.conftest import encode, wav_bytes, wav_samples

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(200)


def test_each_supported_container_is_recognised_and_its_length_read(spoken_wav, spoken_webm):
    samples, rate = wav_samples(spoken_wav)
    seconds = len(samples) / rate
    ogg = encode(samples, rate, container="ogg")
    assert audio_format_sniff(spoken_wav) is AudioFormat.WAV
    assert audio_format_sniff(spoken_webm) is AudioFormat.WEBM
    assert audio_format_sniff(ogg) is AudioFormat.OGG
    assert header_duration_seconds(spoken_wav, AudioFormat.WAV) == pytest.approx(seconds, abs=0.01)
    assert header_duration_seconds(spoken_webm, AudioFormat.WEBM) == pytest.approx(seconds, abs=0.1)
    assert header_duration_seconds(ogg, AudioFormat.OGG) == pytest.approx(seconds, abs=0.1)


def test_mp4_and_mp3_are_recognised_by_their_magic_bytes():
    ftyp = struct.pack(">I4s4sI", 20, b"ftyp", b"M4A ", 0) + b"isom"
    mvhd_body = bytes(4) + struct.pack(">IIII", 0, 0, 1000, 6500) + bytes(80)
    moov = struct.pack(">I4s", 8 + 8 + len(mvhd_body), b"moov") + struct.pack(
        ">I4s", 8 + len(mvhd_body), b"mvhd"
    )
    m4a = ftyp + moov + mvhd_body
    assert audio_format_sniff(m4a) is AudioFormat.MP4
    assert header_duration_seconds(m4a, AudioFormat.MP4) == 6.5
    assert audio_format_sniff(b"ID3\x04\x00" + bytes(100)) is AudioFormat.MP3
    assert audio_format_sniff(b"\xff\xfb\x90\x64" + bytes(100)) is AudioFormat.MP3  # MPEG-1 layer III
    assert header_duration_seconds(b"\xff\xfb\x90\x64" + bytes(100), AudioFormat.MP3) is None


@pytest.mark.parametrize(
    "data",
    [
        PNG,
        os.urandom(4096),
        b"%PDF-1.7\n" + bytes(100),
        b"PK\x03\x04" + bytes(100),
        b"",
        b"RIFF\x00\x00\x00\x00AVI ",
    ],
    ids=["png", "random", "pdf", "zip", "empty", "riff-avi"],
)
def test_anything_else_is_not_audio_whatever_it_is_called(data):
    assert audio_format_sniff(data) is None


def test_a_webm_without_a_declared_duration_is_measured_by_its_last_block(twenty_minutes_webm):
    """Chromium's MediaRecorder writes no Duration (and unknown sizes): the last block's timestamp says."""
    assert header_duration_seconds(twenty_minutes_webm, AudioFormat.WEBM) == pytest.approx(1200, abs=1)
    at = twenty_minutes_webm.index(b"\x44\x89\x88")  # Duration, an 8-byte float
    undeclared = twenty_minutes_webm[:at] + b"\x44\x61\x88" + twenty_minutes_webm[at + 3 :]  # -> DateUTC
    assert header_duration_seconds(undeclared, AudioFormat.WEBM) == pytest.approx(1200, abs=1)


def test_a_wav_header_is_believed_and_a_streamed_one_measured():
    one_second = wav_bytes(bytes_to_samples(16000), 16000)
    assert header_duration_seconds(one_second, AudioFormat.WAV) == pytest.approx(1.0)
    claims_20_minutes = claim_length(one_second, seconds=1200)
    assert header_duration_seconds(claims_20_minutes, AudioFormat.WAV) == pytest.approx(1200)
    streamed = one_second[:40] + struct.pack("<I", 0xFFFFFFFF) + one_second[44:]
    assert header_duration_seconds(streamed, AudioFormat.WAV) == pytest.approx(1.0)


def test_a_truncated_header_declares_nothing():
    assert header_duration_seconds(b"RIFF\x10\x00\x00\x00WAVEfmt ", AudioFormat.WAV) is None
    assert header_duration_seconds(b"OggS" + bytes(10), AudioFormat.OGG) is None
    assert header_duration_seconds(b"\x1a\x45\xdf\xa3\x9f", AudioFormat.WEBM) is None


def bytes_to_samples(count: int):
    import numpy as np

    return np.zeros(count, dtype=np.float32)


def claim_length(wav: bytes, *, seconds: int) -> bytes:
    """The same WAV whose data chunk claims `seconds` of 16 kHz 16-bit mono audio."""
    at = wav.index(b"data")
    return wav[: at + 4] + struct.pack("<I", seconds * 32000) + wav[at + 8 :]
