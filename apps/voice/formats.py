"""What a recording is (by its magic bytes, never its name or content type) and how long its container says
it is, read from the bytes in pure Python, so a 20-minute recording is refused at upload without decoding
it and without the decoder installed in the web process.

Durations are the container's own claim: a WAV's data size over its byte rate, the last Ogg page's
granule position, a Matroska/WebM `Duration` or its last block's timestamp (Chromium's MediaRecorder
writes no `Duration`), an MP4 `mvhd` duration. None when the container does not say (MP3, a fragmented
MP4): the worker measures those while decoding, before the model sees them.
"""

from __future__ import annotations

import struct
from enum import StrEnum


class AudioFormat(StrEnum):
    WAV = "wav"
    WEBM = "webm"
    OGG = "ogg"
    MP4 = "mp4"
    MP3 = "mp3"


# The file name and content type a transcription server is given for each format.
FILE_NAMES = {
    AudioFormat.WAV: ("audio.wav", "audio/wav"),
    AudioFormat.WEBM: ("audio.webm", "audio/webm"),
    AudioFormat.OGG: ("audio.ogg", "audio/ogg"),
    AudioFormat.MP4: ("audio.m4a", "audio/mp4"),
    AudioFormat.MP3: ("audio.mp3", "audio/mpeg"),
}


def audio_format_sniff(data: bytes) -> AudioFormat | None:
    """The format by magic bytes; None for anything else (a picture renamed x.webm, random bytes)."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return AudioFormat.WAV
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return AudioFormat.WEBM
    if data[:4] == b"OggS":
        return AudioFormat.OGG
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return AudioFormat.MP4
    if data[:3] == b"ID3":
        return AudioFormat.MP3
    # An MPEG audio frame header: 11 sync bits, then a version and a layer that are not "reserved"
    # (layer bits 00 would be ADTS AAC, not MP3).
    if len(data) >= 4 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        version, layer = (data[1] >> 3) & 0x03, (data[1] >> 1) & 0x03
        if version != 0x01 and layer != 0x00 and data[2] & 0xF0 != 0xF0:
            return AudioFormat.MP3
    return None


def header_duration_seconds(data: bytes, audio_format: AudioFormat) -> float | None:
    """The length the container declares, or None when it does not say or cannot be read (the decoder
    decides then)."""
    try:
        if audio_format is AudioFormat.WAV:
            return _wav_duration(data)
        if audio_format is AudioFormat.OGG:
            return _ogg_duration(data)
        if audio_format is AudioFormat.WEBM:
            return _matroska_duration(data)
        if audio_format is AudioFormat.MP4:
            return _mp4_duration(data)
    except (struct.error, IndexError, ValueError, ZeroDivisionError):
        return None
    return None


def _wav_duration(data: bytes) -> float | None:
    position, byte_rate = 12, 0
    while position + 8 <= len(data):
        chunk_id, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk_id == b"fmt ":
            byte_rate = struct.unpack_from("<I", data, body + 8)[0]
        elif chunk_id == b"data":
            if not byte_rate:
                return None
            if size in (0, 0xFFFFFFFF):  # a streamed WAV whose writer never went back to fill the size in
                size = len(data) - body
            return size / byte_rate
        position = body + size + (size & 1)
    return None


def _ogg_duration(data: bytes) -> float | None:
    # The first page carries the codec's identification header; the last page's granule position is
    # the number of samples (at 48 kHz for Opus, at the stream's rate for Vorbis).
    head = data[:512]
    if b"OpusHead" in head:
        at = head.index(b"OpusHead")
        rate, pre_skip = 48000, struct.unpack_from("<H", head, at + 10)[0]
    elif b"\x01vorbis" in head:
        at = head.index(b"\x01vorbis")
        rate, pre_skip = struct.unpack_from("<I", head, at + 12)[0], 0
    else:
        return None
    last = data.rfind(b"OggS", max(0, len(data) - 65536))
    if last < 0 or last + 14 > len(data):
        return None
    granule = struct.unpack_from("<q", data, last + 6)[0]
    if granule < 0 or not rate:
        return None
    return max(0, granule - pre_skip) / rate


# Matroska element ids (with their length marker bits, as they appear in the file).
_SEGMENT, _INFO, _CLUSTER, _BLOCK_GROUP = 0x18538067, 0x1549A966, 0x1F43B675, 0xA0
_TIMECODE_SCALE, _DURATION, _CLUSTER_TIMECODE = 0x2AD7B1, 0x4489, 0xE7
_SIMPLE_BLOCK, _BLOCK = 0xA3, 0xA1
_MASTERS = frozenset({_SEGMENT, _INFO, _CLUSTER, _BLOCK_GROUP})


def _ebml_id(data: bytes, position: int) -> tuple[int, int]:
    first = data[position]
    length = 1
    while length <= 4 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 4:
        raise ValueError("bad element id")
    return int.from_bytes(data[position : position + length], "big"), position + length


def _ebml_size(data: bytes, position: int) -> tuple[int | None, int]:
    first = data[position]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad element size")
    value = first & (0xFF >> length)
    for byte in data[position + 1 : position + length]:
        value = (value << 8) | byte
    unknown = value == (1 << (7 * length)) - 1  # all ones: "until the parent ends" (live recordings)
    return (None if unknown else value), position + length


def _matroska_duration(data: bytes) -> float | None:
    """Walks the elements in order, entering Segment, Info, Cluster and BlockGroup (so unknown sizes, as
    MediaRecorder writes them, need no end) and skipping everything else."""
    scale, declared, cluster_time, latest = 1_000_000, None, 0, None
    position = 0
    while position < len(data):
        element, position = _ebml_id(data, position)
        size, position = _ebml_size(data, position)
        if element in _MASTERS:
            continue
        if size is None or position + size > len(data):
            break  # a truncated last element: what was read so far stands
        body = data[position : position + size]
        if element == _TIMECODE_SCALE:
            scale = int.from_bytes(body, "big")
        elif element == _DURATION:
            declared = struct.unpack(">f" if size == 4 else ">d", body)[0]
        elif element == _CLUSTER_TIMECODE:
            cluster_time = int.from_bytes(body, "big")
        elif element in (_SIMPLE_BLOCK, _BLOCK):
            _, after_track = _ebml_size(body, 0)  # the track number is a size-coded integer
            relative = struct.unpack_from(">h", body, after_track)[0]
            at = cluster_time + relative
            latest = at if latest is None else max(latest, at)
        position += size
    if declared is not None and declared > 0:
        return declared * scale / 1e9
    return latest * scale / 1e9 if latest is not None else None


def _mp4_duration(data: bytes) -> float | None:
    def boxes(start: int, end: int) -> list[tuple[bytes, int, int]]:
        found, position = [], start
        while position + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, position)
            header = 8
            if size == 1:
                size, header = struct.unpack_from(">Q", data, position + 8)[0], 16
            elif size == 0:
                size = end - position
            if size < header:
                break
            found.append((kind, position + header, min(end, position + size)))
            position += size
        return found

    for kind, start, end in boxes(0, len(data)):
        if kind != b"moov":
            continue
        for inner, body, _ in boxes(start, end):
            if inner == b"mvhd":
                if data[body] == 1:
                    timescale, duration = struct.unpack_from(">IQ", data, body + 20)
                else:
                    timescale, duration = struct.unpack_from(">II", data, body + 12)
                # A fragmented MP4 (Safari's MediaRecorder) declares 0 here: the decoder measures it.
                return duration / timescale if duration and timescale else None
    return None
