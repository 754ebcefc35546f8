"""Widget sessions: opening and continuing them, binding a verified customer, and ending them
(docs/architecture/realtime.md, "Sessions and identity").

A session token opens exactly one conversation: the one of its visitor and its contact. Signing in never
hands a guest's conversation to the customer (whoever typed there before, on a shared browser, is not known
to be them) and ends the guest token's access to it. A verified session lives only while the company keeps
vouching: a page without an identity signs the customer out everywhere, and a rotated identity secret or an
expired proof ends it too.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Contact, Tenant
from apps.accounts.services import contact_sessions_revoke, contact_upsert
from apps.audit.models import AuditEvent
from apps.conversations.events import event_append
from apps.conversations.identity import (
    FUTURE_SKEW_SECONDS,
    IdentityCheck,
    IdentityClaim,
    SessionClaims,
    SessionRevoked,
    identity_check,
    identity_expiry,
    identity_revoke_signature,
    session_token_read,
    session_token_sign,
)
from apps.conversations.locks import guest_conversation_lock
from apps.conversations.models import Conversation
from apps.conversations.ownership import transition_locked
from apps.conversations.selectors import session_conversation
from apps.core.errors import Forbidden
from apps.core.sealing import SealBroken

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WidgetSession:
    token: str
    claims: SessionClaims
    identity: IdentityCheck | None
    contact: Contact | None
    # The customer's name and email were sent but not signed, so they were not stored.
    profile_ignored: bool = False
    # Signing in closed the guest conversation this browser had (the widget tells the customer why their
    # earlier messages are not shown).
    guest_closed: bool = False


def widget_session_open(*, tenant: Tenant, token: str | None, claim: IdentityClaim | None) -> WidgetSession:
    """The visitor's session: continues a valid token that still opens its conversation, or starts anew;
    binds a verified customer only on a valid identity signature."""
    claims = session_token_read(token, tenant=tenant) if token else None
    if claims is not None and not session_still_open(tenant=tenant, claims=claims):
        claims = None
    check = identity_check(tenant=tenant, claim=claim) if claim is not None else None
    if (
        check is not None
        and check.status == "verified"
        and claim is not None
        and _proof_predates_sign_out(tenant=tenant, claim=claim)
    ):
        check = IdentityCheck("rejected", "signed_out")
    contact: Contact | None = None
    profile_ignored = guest_closed = False
    if check is not None and check.status == "verified":
        assert claim is not None
        name, email = _signed_profile(claim, check)
        profile_ignored = claim.has_profile and not check.profile_signed
        contact = contact_upsert(tenant=tenant, external_id=claim.external_id, name=name, email=email)
        if claims is not None and not claims.verified:
            guest_closed = _guest_session_end(tenant=tenant, claims=claims, why="signed_in")
        claims = _session_for_contact(
            tenant=tenant, claims=claims, contact=contact, expires_at=identity_expiry(claim=claim)
        )
    elif claims is not None and claims.verified:
        if claim is None:
            # The company's page vouches for nobody any more: the customer signed out on this browser, so
            # every copy of their widget tokens ends (other devices prove themselves again by their page).
            _contact_sign_out(claims)
        # A proof that failed (expired on a page left open, forged) starts over without signing anyone out.
        claims = None
    if claims is None:
        claims = SessionClaims(
            tenant_id=tenant.id, visitor_id=uuid.uuid4(), conversation_id=uuid.uuid4(), contact_id=None
        )
    return WidgetSession(
        token=session_token_sign(claims),
        claims=claims,
        identity=check,
        contact=contact,
        profile_ignored=profile_ignored,
        guest_closed=guest_closed,
    )


def session_still_open(*, tenant: Tenant, claims: SessionClaims) -> bool:
    """Whether a session read from a valid token may still be used: verified epochs and expiry current,
    and its conversation (if created yet) still opened by it."""
    try:
        session_conversation(tenant=tenant, claims=claims)
    except SessionRevoked:
        return False
    return True


def session_resume(*, token: str, tenant: Tenant) -> SessionClaims | None:
    """The claims of a token whose session still stands, or None: a socket's `hello` in one database
    round trip."""
    claims = session_token_read(token, tenant=tenant)
    if claims is None or not session_still_open(tenant=tenant, claims=claims):
        return None
    return claims


def widget_session_end(*, tenant: Tenant, claims: SessionClaims) -> None:
    """The host page says the visitor left (`HelpdeskWidget.logout()`): a customer is signed out on every
    device; a guest's conversation is closed to its token."""
    if claims.verified:
        _contact_sign_out(claims)
    else:
        _guest_session_end(tenant=tenant, claims=claims, why="ended")


def identity_sign_out(*, tenant: Tenant, claim: IdentityClaim) -> None:
    """The company's server signs a customer out of the widget everywhere (the claim's signature is over
    the revoke message, issued within five minutes of now). An unknown customer is a no-op: nothing is
    revealed about who exists."""
    try:
        secret = tenant.identity_secret
    except SealBroken:
        raise Forbidden("This company's identity secret cannot be read; ask the operator.") from None
    expected = identity_revoke_signature(
        secret=secret, external_id=claim.external_id, issued_at=claim.issued_at
    )
    if not hmac.compare_digest(expected.encode(), claim.signature.strip().lower().encode()):
        raise Forbidden("The sign-out is not signed with this company's identity secret.")
    if abs(time.time() - claim.issued_at) > FUTURE_SKEW_SECONDS:
        raise Forbidden("The sign-out's issued_at is more than 5 minutes from now: sign it when you send it.")
    contact = Contact.objects.for_tenant(tenant).filter(external_id=claim.external_id).first()
    if contact is not None:
        contact_sessions_revoke(contact=contact, proofs_too=True)
        logger.info(
            "widget identity signed out everywhere by the company's server for tenant %s", tenant.slug
        )


def _proof_predates_sign_out(*, tenant: Tenant, claim: IdentityClaim) -> bool:
    signed_out_at = (
        Contact.objects.for_tenant(tenant)
        .filter(external_id=claim.external_id)
        .values_list("signed_out_at", flat=True)
        .first()
    )
    return signed_out_at is not None and claim.issued_at <= signed_out_at.timestamp()


def _signed_profile(claim: IdentityClaim, check: IdentityCheck) -> tuple[str | None, str | None]:
    """The name and email to store: only what the company signed, and only a well-formed email."""
    if not check.profile_signed:
        return None, None
    email: str | None = claim.email.strip() or None
    if email is not None:
        try:
            validate_email(email)
        except ValidationError:
            logger.warning("widget identity: the signed email is not an address; it is not stored")
            email = None
    return claim.name.strip() or None, email


def _session_for_contact(
    *, tenant: Tenant, claims: SessionClaims | None, contact: Contact, expires_at: int
) -> SessionClaims:
    def bound(visitor_id: uuid.UUID, conversation_id: uuid.UUID) -> SessionClaims:
        return SessionClaims(
            tenant_id=tenant.id,
            visitor_id=visitor_id,
            conversation_id=conversation_id,
            contact_id=contact.id,
            identity_epoch=tenant.identity_epoch,
            contact_epoch=contact.session_epoch,
            expires_at=expires_at,
        )

    if claims is not None and claims.contact_id == contact.id:
        return bound(claims.visitor_id, claims.conversation_id)
    if claims is not None and claims.verified:
        # Another customer's session on this browser: they are no longer signed in here.
        _contact_sign_out(claims)
        contact.refresh_from_db(fields=["session_epoch"])
    # The customer's own latest open conversation (another device's, say), or a new one.
    latest = (
        Conversation.objects.for_tenant(tenant)
        .filter(contact=contact, channel=Conversation.Channel.WIDGET, visitor_ended_at__isnull=True)
        .exclude(status=Conversation.Status.RESOLVED)
        .order_by("-created_at")
        .first()
    )
    if latest is not None:
        return bound(latest.visitor_id, latest.id)
    return bound(uuid.uuid4(), uuid.uuid4())


def _guest_session_end(*, tenant: Tenant, claims: SessionClaims, why: str) -> bool:
    """Closes a guest's conversation to its token, so a copy of the token reads nothing more; False when
    there was none (no message yet). Staff see why in the timeline; a person the guest was waiting for is
    no longer asked for (nobody would read the answer)."""
    with transaction.atomic():
        conversation = guest_conversation_lock(
            tenant_id=tenant.id, conversation_id=claims.conversation_id, visitor_id=claims.visitor_id
        )
        if conversation is None:
            return False
        if conversation.status == Conversation.Status.WAITING:
            transition_locked(conversation, to=Conversation.Status.ASSISTANT, event="handoff.cancelled")
        conversation.visitor_ended_at = timezone.now()
        conversation.save(update_fields=["visitor_ended_at", "updated_at"])
        event_append(conversation, "session.ended", data={"why": why})
    logger.info("widget guest session ended (%s) for tenant %s", why, tenant.slug)
    return True


def _contact_sign_out(claims: SessionClaims) -> None:
    if claims.contact_id is None:
        return
    contact = Contact.objects.filter(id=claims.contact_id, tenant_id=claims.tenant_id).first()
    if contact is not None:
        contact_sessions_revoke(contact=contact, actor_kind=AuditEvent.ActorKind.CUSTOMER)
