"""Who a widget visitor is: signed session tokens, and the company's HMAC vouching for a logged-in customer.

The company computes, on its own server,
    signature = hex(HMAC-SHA256(identity_secret, f"{external_id}:{issued_at}"))
and passes external_id, issued_at and signature to the widget. To have the customer's name and email
stored too (ticket replies go to that email), it signs them with the id instead:
    signature = hex(HMAC-SHA256(identity_secret, f"{external_id}\\n{issued_at}\\n{email}\\n{name}"))
No field may hold a control character, so neither message can be read as the other or split two ways.
We recompute and compare in constant time. Nothing here trusts the browser: a token is only ever accepted
if we signed it, and a verified one only while the company's epoch and the customer's are the ones it
carries and its expiry (at most WIDGET_IDENTITY_MAX_AGE after the proof) has not passed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.core import signing
from pydantic import BaseModel, Field, field_validator

from apps.accounts.models import Contact, Tenant
from apps.core.errors import Unauthorized
from apps.core.sealing import SealBroken

logger = logging.getLogger(__name__)

TOKEN_SALT = "widget.session"  # noqa: S105 (a signing namespace, not a secret)
FUTURE_SKEW_SECONDS = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SessionRevoked(Unauthorized):
    """The token was good once, but its session has ended (sign-in, sign-out, a rotated secret, expiry)."""

    default_message = "Your chat session has ended. Reload the page to start again."


class IdentityClaim(BaseModel):
    """What the host page passes for a logged-in customer (validated before any HMAC is computed)."""

    external_id: str = Field(min_length=1, max_length=128)
    issued_at: int
    signature: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=254)

    @field_validator("external_id", "name", "email")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    @property
    def has_profile(self) -> bool:
        return bool(self.name or self.email)


@dataclass(frozen=True)
class IdentityCheck:
    status: Literal["verified", "rejected"]
    # rejected: "bad_signature" | "expired" | "issued_in_future" | "unavailable" | "signed_out"
    reason: str = ""
    # Verified over name and email too: only then may they be stored on the contact.
    profile_signed: bool = False


@dataclass(frozen=True)
class SessionClaims:
    tenant_id: uuid.UUID
    visitor_id: uuid.UUID
    conversation_id: uuid.UUID
    contact_id: uuid.UUID | None  # set only for a verified customer
    # Verified sessions only: the company's and the customer's epochs when it was signed, and when the
    # proof it rests on runs out (unix seconds).
    identity_epoch: int = 0
    contact_epoch: int = 0
    expires_at: int = 0

    @property
    def verified(self) -> bool:
        return self.contact_id is not None


def identity_signature(*, secret: str, external_id: str, issued_at: int) -> str:
    """The signature a company computes; exposed for documentation examples, tests and `manage.py ask`."""
    message = f"{external_id}:{issued_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def identity_profile_signature(
    *, secret: str, external_id: str, issued_at: int, email: str, name: str
) -> str:
    """The signature that vouches for the customer's name and email as well as their id."""
    message = f"{external_id}\n{issued_at}\n{email}\n{name}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def identity_revoke_signature(*, secret: str, external_id: str, issued_at: int) -> str:
    """What the company's server signs to sign a customer out of the widget everywhere. Its own message,
    so a page's identity proof can never be replayed as a sign-out (nor the reverse)."""
    message = f"revoke\n{external_id}\n{issued_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def identity_check(*, tenant: Tenant, claim: IdentityClaim, now: float | None = None) -> IdentityCheck:
    """Verifies a claim against the tenant's identity secret. Signatures are compared in constant time
    before the timestamp is looked at, so timing reveals nothing about which part was wrong."""
    try:
        secret = tenant.identity_secret
    except SealBroken:
        logger.error(
            "identity secret of tenant %s cannot be unsealed: SECRET_KEY changed without the old key in "
            "SECRET_KEY_FALLBACKS; every customer is treated as anonymous until it is fixed",
            tenant.slug,
        )
        return IdentityCheck("rejected", "unavailable")
    presented = claim.signature.strip().lower().encode()
    profile_ok = False
    if claim.has_profile:
        profile = identity_profile_signature(
            secret=secret,
            external_id=claim.external_id,
            issued_at=claim.issued_at,
            email=claim.email,
            name=claim.name,
        )
        profile_ok = hmac.compare_digest(profile.encode(), presented)
    plain = identity_signature(secret=secret, external_id=claim.external_id, issued_at=claim.issued_at)
    signature_ok = hmac.compare_digest(plain.encode(), presented) or profile_ok
    current = time.time() if now is None else now
    if not signature_ok:
        result = IdentityCheck("rejected", "bad_signature")
    elif claim.issued_at > current + FUTURE_SKEW_SECONDS:
        result = IdentityCheck("rejected", "issued_in_future")
    elif current - claim.issued_at > settings.WIDGET_IDENTITY_MAX_AGE:
        result = IdentityCheck("rejected", "expired")
    else:
        result = IdentityCheck("verified", profile_signed=profile_ok)
    if result.status == "rejected":
        # Neither the id nor the signature is logged: both are the customer's or the company's secrets.
        logger.warning("widget identity rejected for tenant %s: %s", tenant.slug, result.reason)
    elif claim.has_profile and not profile_ok:
        logger.info("widget identity for tenant %s: unsigned name/email ignored", tenant.slug)
    return result


def identity_expiry(*, claim: IdentityClaim, now: float | None = None) -> int:
    """When a session verified by `claim` must prove itself again: WIDGET_IDENTITY_MAX_AGE after the proof
    (a proof dated in the future counts from now)."""
    current = int(time.time() if now is None else now)
    return min(claim.issued_at, current) + settings.WIDGET_IDENTITY_MAX_AGE


def session_token_sign(claims: SessionClaims) -> str:
    payload: dict[str, Any] = {
        "t": str(claims.tenant_id),
        "v": str(claims.visitor_id),
        "c": str(claims.conversation_id),
        "k": str(claims.contact_id) if claims.contact_id else None,
    }
    if claims.verified:
        payload.update({"e": claims.identity_epoch, "ce": claims.contact_epoch, "x": claims.expires_at})
    return signing.dumps(payload, salt=TOKEN_SALT, compress=True)


def _token_claims(token: str) -> SessionClaims | None:
    """The claims of an unexpired token we signed; None for anything else."""
    if not token or len(token) > 1024:
        return None
    try:
        payload = signing.loads(token, salt=TOKEN_SALT, max_age=settings.WIDGET_SESSION_MAX_AGE)
        claims = SessionClaims(
            tenant_id=uuid.UUID(payload["t"]),
            visitor_id=uuid.UUID(payload["v"]),
            conversation_id=uuid.UUID(payload["c"]),
            contact_id=uuid.UUID(payload["k"]) if payload.get("k") else None,
            identity_epoch=int(payload.get("e", 0)),
            contact_epoch=int(payload.get("ce", 0)),
            expires_at=int(payload.get("x", 0)),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if claims.verified and claims.expires_at <= time.time():
        return None  # the proof it rests on ran out (a token from before epochs carries none: 0)
    return claims


def verified_claims_current(claims: SessionClaims) -> bool:
    """A verified session's epochs are still the company's and the customer's (one indexed query)."""
    if claims.contact_id is None:
        return True
    if claims.expires_at <= time.time():
        return False
    row = (
        Contact.objects.filter(id=claims.contact_id, tenant_id=claims.tenant_id, tenant__is_active=True)
        .values_list("session_epoch", "tenant__identity_epoch")
        .first()
    )
    return row is not None and row == (claims.contact_epoch, claims.identity_epoch)


def session_token_read(token: str, *, tenant: Tenant) -> SessionClaims | None:
    """The claims of a token we signed for this tenant and that has not expired; None otherwise. Whether
    its session still stands (epochs, the conversation it opens) is `selectors.session_conversation`'s,
    which every read and write of the widget goes through, in the same database round trip as its work."""
    claims = _token_claims(token)
    if claims is None:
        return None
    if claims.tenant_id != tenant.id:
        return None
    return claims


def session_token_tenant(token: str) -> Tenant | None:
    """The active tenant a token we signed belongs to (then checked in full by `session_token_read`)."""
    claims = _token_claims(token)
    if claims is None:
        return None
    return Tenant.objects.filter(id=claims.tenant_id, is_active=True).first()
