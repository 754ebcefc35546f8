"""Webhook signatures of the messaging provider contract, and the phone numbers they vouch for.

The provider signs each webhook with the company's inbound secret: `X-Messaging-Signature` is the hex
HMAC-SHA256 of `X-Messaging-Timestamp + "." + raw body`. The timestamp is inside the signature, so a
captured request cannot be replayed later with a fresh one; requests older (or newer) than the replay window
are refused even when the signature is good. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from apps.core.errors import Unauthorized

TIMESTAMP_HEADER = "X-Messaging-Timestamp"
SIGNATURE_HEADER = "X-Messaging-Signature"
REPLAY_WINDOW_SECONDS = 300

_HEX = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# E.164: a plus, then up to 15 digits, the first not zero.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def signature_compute(*, secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_verify(
    *, secrets: list[str], timestamp: str, signature: str, body: bytes, now: float | None = None
) -> None:
    """Raises Unauthorized unless one of `secrets` signed `body` at `timestamp`, within the replay window.
    Every secret is checked (no early exit), so timing does not tell which one came close."""
    now = time.time() if now is None else now
    if not _TIMESTAMP.fullmatch(timestamp or "") or not _HEX.fullmatch((signature or "").lower()):
        raise Unauthorized("The webhook signature or timestamp is missing or malformed.")
    matched = False
    for secret in secrets:
        expected = signature_compute(secret=secret, timestamp=timestamp, body=body)
        matched |= hmac.compare_digest(expected, signature.lower())
    if not matched:
        raise Unauthorized("The webhook signature does not match.")
    if abs(now - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        raise Unauthorized("The webhook timestamp is outside the replay window; send a fresh request.")


def phone_normalize(raw: str) -> str | None:
    """The number in E.164 (`+447700900123`), or None if it is not one. Spaces, dashes, dots and
    brackets are dropped; a `whatsapp:` prefix (how some providers write the sender) too."""
    text = (raw or "").strip().lower().removeprefix("whatsapp:")
    text = re.sub(r"[\s\-().]", "", text)
    if text.startswith("00"):
        text = "+" + text[2:]
    return text if _E164.fullmatch(text) else None


def phone_masked(phone: str) -> str:
    """What staff without the pii_viewer role see of a number: the country code's first digits and the
    last two (`+44 ••• ••• ••23`)."""
    if len(phone) < 6:
        return "•••"
    return f"{phone[:3]} •••• ••{phone[-2:]}"
