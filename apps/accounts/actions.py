"""Admins' writes on their company as audited actions (apps/audit/actions.py): the company's settings, its
identity secret, the origins allowed to embed the widget, people's roles, and ending a customer's widget
sessions.

`check()` asks whether the actor may change the company: one of its admins (a stranger gets NotFound and
another member Forbidden, as on the settings pages) or a platform operator (a superuser, in Django admin).
`actor=None` is the desk itself (`manage.py` commands, onboarding, the demo seed): nobody to check, and the
row says "system". The services keep their names and arguments and run these actions.

An execution that changes nothing (a role already held, an origin already allowed, a settings form saved
unchanged) writes no row: the trail lists changes, and one PATCH of the company runs four configure
actions of which usually one changes anything. Rows name the fields that changed, never the values of
secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

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
from apps.accounts.selectors import access_tenant
from apps.accounts.validation import normalize_origin
from apps.audit.actions import Action
from apps.core.errors import BadRequest, Conflict

T = TypeVar("T")
UNSET: Any = ...  # "leave as it is" where None is a value (the deployment's default threshold)


def admin_check(*, tenant: Tenant, actor: User | None) -> None:
    """The actor may change the company's settings: an admin of it, a platform operator, or the system."""
    if actor is None or actor.is_superuser:
        return
    access_tenant(actor=actor, slug=tenant.slug, roles=[Role.ADMIN])


class ChangeAction(Action[T]):
    """An action whose execution may change nothing (`changed`, from the base): such an execution writes no
    audit row."""


class CompanyAction(ChangeAction[T]):
    """An admin's change to one company. `fields` lists what `perform` changed, for the row."""

    tenant: Tenant
    actor: User | None
    target_type = "Tenant"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields: list[str] = []

    def check(self) -> None:
        admin_check(tenant=self.tenant, actor=self.actor)

    def changed(self, result: T) -> bool:
        return bool(self.fields)

    def audit_target(self, result: T) -> tuple[str, str]:
        return ("Tenant", str(self.tenant.pk))

    def audit_data(self, result: T) -> dict[str, Any]:
        return {"fields": self.fields}

    def _set(self, name: str, value: Any) -> None:
        if getattr(self.tenant, name) != value:
            setattr(self.tenant, name, value)
            self.fields.append(name)

    def _save(self) -> None:
        if self.fields:
            self.tenant.save(update_fields=[*self.fields, "updated_at"])


# ---- settings ----------------------------------------------------------------------------------------------


class TenantConfigure(CompanyAction[Tenant]):
    """Rename and/or replace the allowed origins in one step: every origin is validated before any change."""

    action = "settings.company"

    def perform(self) -> Tenant:
        name: str | None = self.params.get("name")
        origins: list[str] | None = self.params.get("origins")
        wanted = sorted({normalize_origin(o) for o in origins}) if origins is not None else None
        if name is not None:
            if not name.strip():
                raise BadRequest("A company needs a name.")
            self._set("name", name.strip())
            self._save()
        if wanted is not None:
            held = set(AllowedOrigin.objects.for_tenant(self.tenant).values_list("origin", flat=True))
            if held != set(wanted):
                AllowedOrigin.objects.for_tenant(self.tenant).exclude(origin__in=wanted).delete()
                for origin in wanted:
                    AllowedOrigin.objects.get_or_create(tenant=self.tenant, origin=origin)
                self.fields.append("allowed_origins")
        return self.tenant


class TenantAssistantConfigure(CompanyAction[Tenant]):
    """How sure retrieval must be before the assistant answers (None: the deployment default) and how many
    LLM tokens a day it may spend (0: no limit)."""

    action = "settings.assistant"

    def perform(self) -> Tenant:
        threshold = self.params.get("abstain_threshold", UNSET)
        budget: int | None = self.params.get("daily_token_budget")
        if threshold is not UNSET:
            if threshold is not None:
                threshold = float(threshold)
                if not 0.0 <= threshold <= 1.0:
                    raise BadRequest("The answer threshold is a similarity between 0 and 1, e.g. 0.40.")
            self._set("abstain_threshold", threshold)
        if budget is not None:
            if budget < 0:
                raise BadRequest("The daily token budget cannot be negative (0 means no limit).")
            self._set("daily_token_budget", budget)
        self._save()
        return self.tenant


class TenantAnswersConfigure(CompanyAction[Tenant]):
    """How the assistant words answers and which sensitive topics hand a turn to a person."""

    action = "settings.answers"

    def perform(self) -> Tenant:
        style: str | None = self.params.get("answer_style")
        topics: Iterable[str] | None = self.params.get("handoff_topics")
        if style is not None:
            if style not in AnswerStyle.values:
                raise BadRequest(f"{style!r} is not an answer style: choose auto, quote or compose.")
            self._set("answer_style", style)
        if topics is not None:
            known = [topic.key for topic in hooks.handoff_topics()] or list(DEFAULT_HANDOFF_TOPICS)
            chosen = set(topics)
            unknown = sorted(chosen.difference(known))
            if unknown:
                raise BadRequest(
                    f"{', '.join(unknown)} is not a sensitive topic: choose among {', '.join(known)}."
                )
            # Stored in the order topics are checked, so the first match (the handoff's detail) is stable.
            self._set("handoff_topics", [key for key in known if key in chosen])
        self._save()
        return self.tenant


class TenantEmailConfigure(CompanyAction[Tenant]):
    """The support address (mail the inbound provider forwards for the company) and whether the assistant
    answers mail to it; the assistant cannot be switched on without an address."""

    action = "settings.email"

    def perform(self) -> Tenant:
        support_email: str | None = self.params.get("support_email")
        enabled: bool | None = self.params.get("email_assistant_enabled")
        if support_email is not None:
            address = support_email.strip().lower()
            if address:
                try:
                    validate_email(address)
                except ValidationError:
                    raise BadRequest("That doesn't look like an email address.") from None
                if Tenant.objects.exclude(id=self.tenant.id).filter(support_email__iexact=address).exists():
                    raise Conflict("Another company already receives email at that address.")
            self._set("support_email", address)
        if enabled is not None:
            self._set("email_assistant_enabled", enabled)
        if self.tenant.email_assistant_enabled and not self.tenant.support_email:
            raise BadRequest("Set the support address before letting the assistant answer email.")
        try:
            with transaction.atomic():
                self._save()
        except IntegrityError:
            raise Conflict("Another company already receives email at that address.") from None
        return self.tenant


class IdentitySecretRotate(CompanyAction[Tenant]):
    """A new identity secret at once: customers signed with the old one are anonymous from now on, and every
    widget session verified before the rotation ends (the secret may have leaked). The row says only that it
    rotated."""

    action = "secret.rotate"

    def perform(self) -> Tenant:
        self.tenant.identity_secret = new_identity_secret()
        self.tenant.identity_epoch = F("identity_epoch") + 1
        self.tenant.save(update_fields=["identity_secret_sealed", "identity_epoch", "updated_at"])
        self.tenant.refresh_from_db(fields=["identity_epoch"])
        self.fields = ["identity_secret"]
        return self.tenant

    def audit_data(self, result: Tenant) -> dict[str, Any]:
        return {"rotated": True, "epoch": result.identity_epoch}


# ---- origins -----------------------------------------------------------------------------------------------


class AllowedOriginAdd(CompanyAction[AllowedOrigin]):
    action = "origin.add"

    def perform(self) -> AllowedOrigin:
        allowed, created = AllowedOrigin.objects.get_or_create(
            tenant=self.tenant, origin=normalize_origin(self.params["origin"])
        )
        if created:
            self.fields = ["allowed_origins"]
        return allowed

    def audit_target(self, result: AllowedOrigin) -> tuple[str, str]:
        return ("AllowedOrigin", str(result.pk))

    def audit_data(self, result: AllowedOrigin) -> dict[str, Any]:
        return {"origin": result.origin}


class AllowedOriginRemove(CompanyAction[int]):
    """How many were removed: 0 when the company had no such origin (other companies' are untouchable)."""

    action = "origin.remove"

    def perform(self) -> int:
        self.origin = normalize_origin(self.params["origin"])
        row = AllowedOrigin.objects.for_tenant(self.tenant).filter(origin=self.origin).first()
        if row is None:
            return 0
        self.removed_id = str(row.pk)
        row.delete()
        self.fields = ["allowed_origins"]
        return 1

    def audit_target(self, result: int) -> tuple[str, str]:
        return ("AllowedOrigin", self.removed_id)

    def audit_data(self, result: int) -> dict[str, Any]:
        return {"origin": self.origin}


# ---- roles -------------------------------------------------------------------------------------------------


class _RoleAction(CompanyAction[T]):
    def audit_target(self, result: T) -> tuple[str, str]:
        return ("User", str(self.params["user"].pk))

    def audit_data(self, result: T) -> dict[str, Any]:
        return {"user_id": self.params["user"].pk, "role": self.params["role"]}


class MembershipGrant(_RoleAction[Membership]):
    action = "role.grant"

    def perform(self) -> Membership:
        role: str = self.params["role"]
        if role not in Role.values:
            raise BadRequest(f"{role!r} is not a role: choose one of {', '.join(Role.values)}")
        membership, created = Membership.objects.get_or_create(
            tenant=self.tenant, user=self.params["user"], role=role
        )
        if created:
            self.fields = ["roles"]
        return membership


class MembershipRevoke(_RoleAction[int]):
    action = "role.revoke"

    def perform(self) -> int:
        rows = Membership.objects.for_tenant(self.tenant).filter(
            user=self.params["user"], role=self.params["role"]
        )
        deleted, _ = rows.delete()
        if deleted:
            self.fields = ["roles"]
        return deleted


# ---- customers ---------------------------------------------------------------------------------------------


class ContactSessionsRevoke(CompanyAction[Contact]):
    """Ends every widget session verified for this customer, on every device; with `proofs_too` (the
    company's server or staff signing them out everywhere) also refuses every identity proof issued until
    now, so a page left open cannot sign them back in. The customer signing themselves out is recorded with
    actor_kind "customer"."""

    action = "contact.sessions_revoke"
    target_type = "Contact"

    def perform(self) -> Contact:
        contact: Contact = self.params["contact"]
        proofs_too = bool(self.params.get("proofs_too", False))
        changes: dict[str, object] = {"session_epoch": F("session_epoch") + 1}
        if proofs_too:
            changes["signed_out_at"] = timezone.now()
        Contact.objects.filter(id=contact.id).update(**changes)
        contact.refresh_from_db(fields=["session_epoch", "signed_out_at"])
        self.fields = ["session_epoch", *(["signed_out_at"] if proofs_too else [])]
        return contact

    def audit_target(self, result: Contact) -> tuple[str, str]:
        return ("Contact", str(result.pk))

    def audit_data(self, result: Contact) -> dict[str, Any]:
        return {"proofs_too": bool(self.params.get("proofs_too", False)), "epoch": result.session_epoch}
