"""encoded_payload: hidden or encoded text (Unicode tag characters, base64, hex, ROT13, reversed) decoded
and checked once more."""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
import unicodedata
from collections.abc import Callable, Iterable

from .normalise import _TAGS, _views
from .reasons import INJECTION_REASONS

_Findings = Callable[[str, str], set[str]]

_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX_BLOB = re.compile(r"(?:[0-9a-fA-F]{2}:?){16,}")
# Substrings of the markup view: a false hit ("hexagon") only costs one more check.
_DECODE_WORDS = (
    "decode",
    "base64",
    "b64",
    "rot13",
    "rot-13",
    "rot 13",
    "hex",
    "decipher",
    "decrypt",
    "unscramble",
)
_REVERSE_WORDS = ("reverse", "backward")
_ACT_ON_IT = re.compile(r"\b(?:follow|obey|execute|carry out|comply with|act on|do what|do as)\b")


def _encoded_findings(text: str, markup: str, words: str, findings: _Findings) -> set[str]:
    """Hidden or encoded text is decoded and checked once more; what is found there is reported with
    "encoded_payload". Abuse inside an encoding is not looked for. `findings` is the detector itself."""
    long_tokens = [token for token in text.split() if len(token) >= 24]
    payloads = []
    if not text.isascii():
        payloads.append(_hidden_tag_text(text))
    asked_to_decode = any(word in markup for word in _DECODE_WORDS)
    if asked_to_decode:
        payloads.append(codecs.decode(words, "rot13"))
    if any(word in markup for word in _REVERSE_WORDS):
        payloads.append(words[::-1])
    payloads += _decoded_blobs(long_tokens)
    inner: set[str] = set()
    for payload in filter(None, payloads):
        inner |= findings(*_views(payload)) & set(INJECTION_REASONS)
    told_to_act = asked_to_decode and long_tokens and _ACT_ON_IT.search(words)
    return inner | {"encoded_payload"} if inner or told_to_act else set()


def _hidden_tag_text(text: str) -> str:
    """ASCII spelled with Unicode tag characters, except the tags that follow a flag's black flag."""
    runs = [m for m in _TAGS.finditer(text) if not text[: m.start()].endswith("\U0001f3f4")]
    return " ".join("".join(chr(ord(c) - 0xE0000) for c in m.group()) for m in runs)


def _decoded_blobs(tokens: Iterable[str]) -> list[str]:
    decoded: list[str] = []
    for token in tokens:
        token = unicodedata.normalize("NFKC", token)
        for match in _BASE64_BLOB.finditer(token):
            blob = match.group().rstrip("=").replace("-", "+").replace("_", "/")
            with contextlib.suppress(binascii.Error, ValueError):  # ValueError covers bad UTF-8
                decoded.append(base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8"))
        for match in _HEX_BLOB.finditer(token):
            with contextlib.suppress(ValueError):
                decoded.append(bytes.fromhex(match.group().replace(":", "")).decode("utf-8"))
    return [d for d in decoded if sum(c.isprintable() or c.isspace() for c in d) >= 0.9 * len(d)]
