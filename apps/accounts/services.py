"""Writes on tenants and people. Keyword-only, typed, transactional (STYLE rules 1, 2, 5)."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts import hooks
from apps.accounts.models import (
    DEFAULT_HANDOFF_TOPICS,
    AllowedOrigin,
    AnswerStyle,
    Contact,
    Membership,
    Role,
    Tenant,
    User,
    new_identity_secret,
)
from apps.core.errors import BadRequest, Conflict

_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")


_NETLOC_RE = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[^\[\]:@/\s]+)(?::[0-9]{1,5})?$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _is_host(host: str) -> bool:
    """A DNS name (ASCII; browsers send IDNs as punycode) or an IP address, nothing else."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return len(host) <= 253 and all(_HOST_LABEL_RE.match(label) for label in host.split("."))


def normalize_origin(raw: str) -> str:
    """`https://Shop.Example.com:443/` → `https://shop.example.com`; anything that is not exactly an origin
    is refused, because origins are compared with browsers' `Origin` headers and written into headers."""
    value = raw.strip()
    usage = f"{raw!r} is not an origin: use scheme://host[:port], e.g. https://shop.example.com"
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise BadRequest(usage) from None
    try:
        port = parts.port
    except ValueError:
        raise BadRequest(f"{raw!r} has an invalid port") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise BadRequest(usage)
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in {"", "/"}:
        raise BadRequest(f"{raw!r} is not an origin: give only scheme://host[:port], without a path")
    host = parts.hostname.lower()
    if not _NETLOC_RE.match(parts.netloc) or not _is_host(host):
        raise BadRequest(usage)
    if port == 0:
        raise BadRequest(f"{raw!r} has an invalid port")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def validate_slug(slug: str) -> str:
    if not _SLUG_RE.match(slug):
        raise BadRequest(
            f"{slug!r} is not a valid slug: 1-50 lowercase letters, digits and hyphens, "
            "not starting or ending with a hyphen"
        )
    return slug


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


def tenant_update(*, tenant: Tenant, name: str) -> Tenant:
    if not name.strip():
        raise BadRequest("A company needs a name.")
    tenant.name = name.strip()
    tenant.save(update_fields=["name", "updated_at"])
    return tenant


def tenant_identity_secret_rotate(*, tenant: Tenant) -> Tenant:
    """A new secret at once: customers signed with the old one are treated as anonymous from now on, and
    every widget session verified before the rotation ends (the secret may have leaked)."""
    tenant.identity_secret = new_identity_secret()
    tenant.identity_epoch = F("identity_epoch") + 1
    tenant.save(update_fields=["identity_secret_sealed", "identity_epoch", "updated_at"])
    tenant.refresh_from_db(fields=["identity_epoch"])
    return tenant


def allowed_origin_add(*, tenant: Tenant, origin: str) -> AllowedOrigin:
    normalized = normalize_origin(origin)
    allowed, _ = AllowedOrigin.objects.get_or_create(tenant=tenant, origin=normalized)
    return allowed


def allowed_origin_remove(*, tenant: Tenant, origin: str) -> int:
    """How many were removed: 0 when the tenant had no such origin (other tenants' are untouchable)."""
    deleted, _ = AllowedOrigin.objects.for_tenant(tenant).filter(origin=normalize_origin(origin)).delete()
    return deleted


def user_create(*, username: str, email: str, password: str | None, first_name: str = "") -> User:
    if User.objects.filter(username=username).exists():
        raise Conflict(f"The username {username!r} is taken.")
    return User.objects.create_user(username=username, email=email, password=password, first_name=first_name)


def membership_grant(*, tenant: Tenant, user: User, role: str) -> Membership:
    if role not in Role.values:
        raise BadRequest(f"{role!r} is not a role: choose one of {', '.join(Role.values)}")
    membership, _ = Membership.objects.get_or_create(tenant=tenant, user=user, role=role)
    return membership


def membership_revoke(*, tenant: Tenant, user: User, role: str) -> int:
    deleted, _ = Membership.objects.for_tenant(tenant).filter(user=user, role=role).delete()
    return deleted


def contact_upsert(
    *, tenant: Tenant, external_id: str, name: str | None = None, email: str | None = None
) -> Contact:
    """The contact with the company's id; `name` and `email` are written only when given (None keeps what
    is stored: only what the company signed may change where ticket replies go)."""
    profile = {key: value for key, value in (("name", name), ("email", email)) if value is not None}
    contact, _ = Contact.objects.update_or_create(tenant=tenant, external_id=external_id, defaults=profile)
    return contact


def contact_sessions_revoke(*, contact: Contact, proofs_too: bool = False) -> Contact:
    """Ends every widget session verified for this customer, on every device: the next use of any such
    token is refused, and the widget starts over (pages that still vouch for them sign them in again).
    `proofs_too` (the company's server or staff signing them out everywhere) also refuses every identity
    proof issued until now, so a page left open cannot sign them back in."""
    changes: dict[str, object] = {"session_epoch": F("session_epoch") + 1}
    if proofs_too:
        changes["signed_out_at"] = timezone.now()
    Contact.objects.filter(id=contact.id).update(**changes)
    contact.refresh_from_db(fields=["session_epoch", "signed_out_at"])
    return contact


@transaction.atomic
def tenant_configure(*, tenant: Tenant, name: str | None = None, origins: list[str] | None = None) -> Tenant:
    """Rename and/or replace the allowed origins in one step: every origin is validated before any change."""
    normalized = sorted({normalize_origin(o) for o in origins}) if origins is not None else None
    if name is not None:
        tenant_update(tenant=tenant, name=name)
    if normalized is not None:
        AllowedOrigin.objects.for_tenant(tenant).exclude(origin__in=normalized).delete()
        for origin in normalized:
            AllowedOrigin.objects.get_or_create(tenant=tenant, origin=origin)
    return tenant


def tenant_assistant_configure(
    *, tenant: Tenant, abstain_threshold: float | object | None = ..., daily_token_budget: int | None = None
) -> Tenant:
    """The assistant's per-company policy: how sure retrieval must be before it answers (empty: the
    deployment default) and how many LLM tokens a day it may spend (0: no limit)."""
    fields = []
    if abstain_threshold is not ...:
        if abstain_threshold is not None:
            value = float(abstain_threshold)  # type: ignore[arg-type]
            if not 0.0 <= value <= 1.0:
                raise BadRequest("The answer threshold is a similarity between 0 and 1, e.g. 0.40.")
            abstain_threshold = value
        tenant.abstain_threshold = abstain_threshold
        fields.append("abstain_threshold")
    if daily_token_budget is not None:
        if daily_token_budget < 0:
            raise BadRequest("The daily token budget cannot be negative (0 means no limit).")
        tenant.daily_token_budget = daily_token_budget
        fields.append("daily_token_budget")
    if fields:
        tenant.save(update_fields=[*fields, "updated_at"])
    return tenant


def tenant_answers_configure(
    *, tenant: Tenant, answer_style: str | None = None, handoff_topics: Iterable[str] | None = None
) -> Tenant:
    """How the assistant words answers (quote, compose, or auto: the configured model's profile decides)
    and which sensitive topics hand a turn to a person. None leaves a setting as it is."""
    fields = []
    if answer_style is not None:
        if answer_style not in AnswerStyle.values:
            raise BadRequest(f"{answer_style!r} is not an answer style: choose auto, quote or compose.")
        tenant.answer_style = answer_style
        fields.append("answer_style")
    if handoff_topics is not None:
        known = [topic.key for topic in hooks.handoff_topics()] or list(DEFAULT_HANDOFF_TOPICS)
        chosen = set(handoff_topics)
        unknown = sorted(chosen.difference(known))
        if unknown:
            raise BadRequest(
                f"{', '.join(unknown)} is not a sensitive topic: choose among {', '.join(known)}."
            )
        # Stored in the order topics are checked, so the first match (the handoff's detail) is stable.
        tenant.handoff_topics = [key for key in known if key in chosen]
        fields.append("handoff_topics")
    if fields:
        tenant.save(update_fields=[*fields, "updated_at"])
    return tenant


def tenant_email_configure(
    *, tenant: Tenant, support_email: str | None = None, email_assistant_enabled: bool | None = None
) -> Tenant:
    """The company's support address (mail the inbound provider forwards for it) and whether the
    assistant answers mail to it (docs/architecture/channels.md, "Email"). None leaves a setting as it is;
    the assistant cannot be switched on without an address."""
    fields = []
    if support_email is not None:
        address = support_email.strip().lower()
        if address:
            try:
                validate_email(address)
            except ValidationError:
                raise BadRequest("That doesn't look like an email address.") from None
            if Tenant.objects.exclude(id=tenant.id).filter(support_email__iexact=address).exists():
                raise Conflict("Another company already receives email at that address.")
        tenant.support_email = address
        fields.append("support_email")
    if email_assistant_enabled is not None:
        tenant.email_assistant_enabled = email_assistant_enabled
        fields.append("email_assistant_enabled")
    if tenant.email_assistant_enabled and not tenant.support_email:
        raise BadRequest("Set the support address before letting the assistant answer email.")
    if fields:
        try:
            with transaction.atomic():
                tenant.save(update_fields=[*fields, "updated_at"])
        except IntegrityError:
            raise Conflict("Another company already receives email at that address.") from None
    return tenant


def tenant_knowledge_epoch_bump(*, tenant_id: uuid.UUID) -> None:
    """What the company's published knowledge says has changed: answers cached under an older epoch are
    never served again. Call it inside the transaction that makes the change, so both commit together."""
    Tenant.objects.filter(id=tenant_id).update(knowledge_epoch=F("knowledge_epoch") + 1)
