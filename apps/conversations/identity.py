"""Who a widget visitor is: signed session tokens, and the company's HMAC vouching for a logged-in customer.

The company computes, on its own server,
    signature = hex(HMAC-SHA256(identity_secret, f"{external_id}:{issued_at}"))
and passes external_id, issued_at and signature to the widget. We recompute and compare in constant time.
Nothing here trusts the browser: a token is only ever accepted if we signed it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.core import signing
from pydantic import BaseModel, Field

from apps.accounts.models import Tenant

logger = logging.getLogger(__name__)

TOKEN_SALT = "widget.session"  # noqa: S105 (a signing namespace, not a secret)
FUTURE_SKEW_SECONDS = 300


class IdentityClaim(BaseModel):
    """What the host page passes for a logged-in customer (validated before any HMAC is computed)."""

    external_id: str = Field(min_length=1, max_length=128)
    issued_at: int
    signature: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=254)


@dataclass(frozen=True)
class IdentityCheck:
    status: Literal["verified", "rejected"]
    reason: str = ""  # rejected: "bad_signature" | "expired" | "issued_in_future"


@dataclass(frozen=True)
class SessionClaims:
    tenant_id: uuid.UUID
    visitor_id: uuid.UUID
    conversation_id: uuid.UUID
    contact_id: uuid.UUID | None  # set only for a verified customer

    @property
    def verified(self) -> bool:
        return self.contact_id is not None


def identity_signature(*, secret: str, external_id: str, issued_at: int) -> str:
    """The signature a company computes; exposed for documentation examples, tests and `manage.py ask`."""
    message = f"{external_id}:{issued_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def identity_check(*, tenant: Tenant, claim: IdentityClaim, now: float | None = None) -> IdentityCheck:
    """Verifies a claim against the tenant's identity secret. The signature is compared in constant time
    before the timestamp is looked at, so timing reveals nothing about which part was wrong."""
    expected = identity_signature(
        secret=tenant.identity_secret, external_id=claim.external_id, issued_at=claim.issued_at
    )
    signature_ok = hmac.compare_digest(expected.encode(), claim.signature.strip().lower().encode())
    current = time.time() if now is None else now
    if not signature_ok:
        result = IdentityCheck("rejected", "bad_signature")
    elif claim.issued_at > current + FUTURE_SKEW_SECONDS:
        result = IdentityCheck("rejected", "issued_in_future")
    elif current - claim.issued_at > settings.WIDGET_IDENTITY_MAX_AGE:
        result = IdentityCheck("rejected", "expired")
    else:
        result = IdentityCheck("verified")
    if result.status == "rejected":
        # Neither the id nor the signature is logged: both are the customer's or the company's secrets.
        logger.warning("widget identity rejected for tenant %s: %s", tenant.slug, result.reason)
    return result


def session_token_sign(claims: SessionClaims) -> str:
    payload: dict[str, Any] = {
        "t": str(claims.tenant_id),
        "v": str(claims.visitor_id),
        "c": str(claims.conversation_id),
        "k": str(claims.contact_id) if claims.contact_id else None,
    }
    return signing.dumps(payload, salt=TOKEN_SALT, compress=True)


def _token_claims(token: str) -> SessionClaims | None:
    """The claims of an unexpired token we signed; None for anything else."""
    if not token or len(token) > 1024:
        return None
    try:
        payload = signing.loads(token, salt=TOKEN_SALT, max_age=settings.WIDGET_SESSION_MAX_AGE)
        return SessionClaims(
            tenant_id=uuid.UUID(payload["t"]),
            visitor_id=uuid.UUID(payload["v"]),
            conversation_id=uuid.UUID(payload["c"]),
            contact_id=uuid.UUID(payload["k"]) if payload.get("k") else None,
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def session_token_read(token: str, *, tenant: Tenant) -> SessionClaims | None:
    """The claims of a token we signed for this tenant and that has not expired; None otherwise."""
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
