"""Writes on tenants and people. Keyword-only, typed, transactional (STYLE rules 1, 2, 5).

Admins' changes to a company (settings, secret, origins, roles, customers' sessions) are audited actions
(apps.accounts.actions); these functions keep their names and take the acting `actor` (None: the system).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.accounts import actions
from apps.accounts.models import AllowedOrigin, Contact, Membership, Tenant, User

# normalize_origin and validate_slug are also the admin's and the widget's: they import them from here.
from apps.accounts.validation import normalize_origin, validate_slug
from apps.core.errors import BadRequest, Conflict


@transaction.atomic
def tenant_create(*, slug: str, name: str, origins: list[str] | None = None) -> Tenant:
    validate_slug(slug)
    if not name.strip():
        raise BadRequest("A company needs a name.")
    normalized = sorted({normalize_origin(o) for o in origins or []})
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"A company with the slug {slug!r} already exists.")
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=slug, name=name.strip())
    except IntegrityError:
        raise Conflict(f"A company with the slug {slug!r} already exists.") from None
    AllowedOrigin.objects.bulk_create([AllowedOrigin(tenant=tenant, origin=o) for o in normalized])
    return tenant


def tenant_update(*, tenant: Tenant, name: str, actor: User | None = None) -> Tenant:
    return actions.TenantConfigure(tenant=tenant, actor=actor, name=name).execute()


def tenant_identity_secret_rotate(*, tenant: Tenant, actor: User | None = None) -> Tenant:
    """A new secret at once: customers signed with the old one are treated as anonymous from now on, and
    every widget session verified before the rotation ends (the secret may have leaked)."""
    return actions.IdentitySecretRotate(tenant=tenant, actor=actor).execute()


def allowed_origin_add(*, tenant: Tenant, origin: str, actor: User | None = None) -> AllowedOrigin:
    return actions.AllowedOriginAdd(tenant=tenant, actor=actor, origin=origin).execute()


def allowed_origin_remove(*, tenant: Tenant, origin: str, actor: User | None = None) -> int:
    """How many were removed: 0 when the tenant had no such origin (other tenants' are untouchable)."""
    return actions.AllowedOriginRemove(tenant=tenant, actor=actor, origin=origin).execute()


def user_create(*, username: str, email: str, password: str | None, first_name: str = "") -> User:
    if User.objects.filter(username=username).exists():
        raise Conflict(f"The username {username!r} is taken.")
    return User.objects.create_user(username=username, email=email, password=password, first_name=first_name)


def membership_grant(*, tenant: Tenant, user: User, role: str, actor: User | None = None) -> Membership:
    return actions.MembershipGrant(tenant=tenant, actor=actor, user=user, role=role).execute()


def membership_revoke(*, tenant: Tenant, user: User, role: str, actor: User | None = None) -> int:
    return actions.MembershipRevoke(tenant=tenant, actor=actor, user=user, role=role).execute()


def contact_upsert(
    *, tenant: Tenant, external_id: str, name: str | None = None, email: str | None = None
) -> Contact:
    """The contact with the company's id; `name` and `email` are written only when given (None keeps what
    is stored: only what the company signed may change where ticket replies go)."""
    profile = {key: value for key, value in (("name", name), ("email", email)) if value is not None}
    contact, _ = Contact.objects.update_or_create(tenant=tenant, external_id=external_id, defaults=profile)
    return contact


def contact_sessions_revoke(
    *, contact: Contact, proofs_too: bool = False, actor: User | None = None, actor_kind: str | None = None
) -> Contact:
    """Ends every widget session verified for this customer, on every device: the next use of any such
    token is refused, and the widget starts over (pages that still vouch for them sign them in again).
    `proofs_too` (the company's server or staff signing them out everywhere) also refuses every identity
    proof issued until now, so a page left open cannot sign them back in. `actor_kind` "customer" when they
    sign themselves out."""
    return actions.ContactSessionsRevoke(
        tenant=contact.tenant, actor=actor, actor_kind=actor_kind, contact=contact, proofs_too=proofs_too
    ).execute()


def tenant_configure(
    *, tenant: Tenant, name: str | None = None, origins: list[str] | None = None, actor: User | None = None
) -> Tenant:
    """Rename and/or replace the allowed origins in one step: every origin is validated before any change."""
    return actions.TenantConfigure(tenant=tenant, actor=actor, name=name, origins=origins).execute()


def tenant_assistant_configure(
    *,
    tenant: Tenant,
    abstain_threshold: float | object | None = ...,
    daily_token_budget: int | None = None,
    actor: User | None = None,
) -> Tenant:
    """The assistant's per-company policy: how sure retrieval must be before it answers (empty: the
    deployment default) and how many LLM tokens a day it may spend (0: no limit)."""
    return actions.TenantAssistantConfigure(
        tenant=tenant, actor=actor, abstain_threshold=abstain_threshold, daily_token_budget=daily_token_budget
    ).execute()


def tenant_answers_configure(
    *,
    tenant: Tenant,
    answer_style: str | None = None,
    handoff_topics: Iterable[str] | None = None,
    actor: User | None = None,
) -> Tenant:
    """How the assistant words answers (quote, compose, or auto: the configured model's profile decides)
    and which sensitive topics hand a turn to a person. None leaves a setting as it is."""
    return actions.TenantAnswersConfigure(
        tenant=tenant, actor=actor, answer_style=answer_style, handoff_topics=handoff_topics
    ).execute()


def tenant_email_configure(
    *,
    tenant: Tenant,
    support_email: str | None = None,
    email_assistant_enabled: bool | None = None,
    actor: User | None = None,
) -> Tenant:
    """The company's support address (mail the inbound provider forwards for it) and whether the
    assistant answers mail to it (docs/architecture/channels.md, "Email"). None leaves a setting as it is;
    the assistant cannot be switched on without an address."""
    return actions.TenantEmailConfigure(
        tenant=tenant,
        actor=actor,
        support_email=support_email,
        email_assistant_enabled=email_assistant_enabled,
    ).execute()


def tenant_knowledge_epoch_bump(*, tenant_id: uuid.UUID) -> None:
    """What the company's published knowledge says has changed: answers cached under an older epoch are
    never served again. Call it inside the transaction that makes the change, so both commit together."""
    Tenant.objects.filter(id=tenant_id).update(knowledge_epoch=F("knowledge_epoch") + 1)
