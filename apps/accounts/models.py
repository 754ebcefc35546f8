"""Tenants (companies), their staff with per-tenant roles, their widget credentials and customers."""

from __future__ import annotations

import secrets
from typing import Any, Self

from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower

from apps.core.models import BaseModel
from apps.core.sealing import seal, unseal


def new_widget_key() -> str:
    return "wk_" + secrets.token_urlsafe(18)


def new_identity_secret() -> str:
    return "ids_" + secrets.token_urlsafe(32)


def new_sealed_identity_secret() -> str:
    return seal(new_identity_secret())


class AnswerStyle(models.TextChoices):
    """How the assistant words a grounded answer (apps/llm/profiles.py decides what "auto" means)."""

    AUTO = "auto", "Auto"
    QUOTE = "quote", "Quote"
    COMPOSE = "compose", "Compose"


# The built-in sensitive topics (apps/guardrails/sentiment.py SENSITIVE_TOPICS) a new company hands to a
# person. Named here, not imported, because accounts sits below guardrails; a guardrails test keeps the two
# lists equal. A new built-in topic needs its key here and a data migration that enables it for existing
# companies (they store what they enabled, so it is off for them until then).
DEFAULT_HANDOFF_TOPICS = ("bereavement", "fraud", "vulnerability", "legal")


def default_handoff_topics() -> list[str]:
    return list(DEFAULT_HANDOFF_TOPICS)


class User(AbstractUser):
    """A person who signs in to the staff pages. What they may do is decided per tenant by Membership."""

    class Meta:
        db_table = "accounts_user"


class Tenant(BaseModel):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    # Public: goes in the company's <script> tag.
    widget_key = models.CharField(max_length=64, unique=True, default=new_widget_key, editable=False)
    # Secret: the company signs its logged-in customers' ids with it (HMAC-SHA256). Sealed at rest like
    # the companies' API secrets (apps/core/sealing.py): read and set it through `identity_secret`.
    identity_secret_sealed = models.CharField(
        max_length=512, db_column="identity_secret", default=new_sealed_identity_secret, editable=False
    )
    # Part of every verified widget token; rotating the identity secret bumps it, so tokens verified under
    # a secret that may have leaked stop working at once.
    identity_epoch = models.PositiveIntegerField(default=1, editable=False)
    is_active = models.BooleanField(default=True)
    # The assistant abstains (and offers a person) when no passage is at least this similar to the
    # question; empty means the deployment's KB_ABSTAIN_SIMILARITY.
    abstain_threshold = models.FloatField(null=True, blank=True)
    # LLM tokens (prompt + completion) the tenant may use per UTC day; 0 means no limit.
    daily_token_budget = models.PositiveIntegerField(default=0)
    # Quote the policy's sentences, compose from them, or let the configured model's profile decide.
    answer_style = models.CharField(max_length=16, choices=AnswerStyle.choices, default=AnswerStyle.AUTO)
    # Bumped (in the same transaction) by every change to what the published knowledge says: publish,
    # rollback, unpublish, delete, redaction of a published version. Answers cached under an older epoch
    # are never served again.
    knowledge_epoch = models.PositiveBigIntegerField(default=1, editable=False)
    # The keys of the sensitive topics that hand a turn to a person before the assistant answers it.
    handoff_topics = ArrayField(models.CharField(max_length=32), default=default_handoff_topics, blank=True)
    # The company's support address (the inbound provider forwards mail to it here) and whether mail to it
    # from an unknown thread starts a conversation the assistant answers (docs/architecture/channels.md,
    # "Email"). Off: only replies to a ticket's reply address are taken, and a person answers them.
    support_email = models.EmailField(blank=True)
    email_assistant_enabled = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("support_email"),
                condition=~models.Q(support_email=""),
                name="uniq_tenant_support_email",
            ),
            models.CheckConstraint(
                condition=models.Q(abstain_threshold__isnull=True)
                | models.Q(abstain_threshold__gte=0, abstain_threshold__lte=1),
                name="tenant_abstain_threshold_range",
            ),
            models.CheckConstraint(
                condition=models.Q(answer_style__in=AnswerStyle.values), name="tenant_answer_style_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def identity_secret(self) -> str:
        """The plain secret; raises `SealBroken` when no configured SECRET_KEY opens it."""
        return unseal(self.identity_secret_sealed)

    @identity_secret.setter
    def identity_secret(self, value: str) -> None:
        self.identity_secret_sealed = seal(value)


class TenantScopedQuerySet(models.QuerySet[Any]):
    """Queries on tenant data start here (STYLE rule 3): `Model.objects.for_tenant(tenant)`."""

    def for_tenant(self, tenant: Tenant) -> Self:
        return self.filter(tenant=tenant)


class TenantScopedModel(BaseModel):
    """Anything that belongs to one company. The tenant is never inferred from a global."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        abstract = True


class AllowedOrigin(TenantScopedModel):
    """A website origin (scheme://host[:port]) allowed to embed the tenant's widget."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="allowed_origins")
    origin = models.CharField(max_length=255)

    class Meta:
        ordering = ["origin"]
        constraints = [models.UniqueConstraint(fields=["tenant", "origin"], name="uniq_tenant_origin")]

    def __str__(self) -> str:
        return self.origin


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    AGENT = "agent", "Agent"
    EDITOR = "editor", "Knowledge editor"
    # May read customers' original words; everyone else sees the redacted text.
    PII_VIEWER = "pii_viewer", "Sees unredacted messages"


class Membership(TenantScopedModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        ordering = ["tenant__slug", "user__username", "role"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user", "role"], name="uniq_membership_role"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.get_role_display()} at {self.tenant.slug}"


class Contact(TenantScopedModel):
    """A customer of a tenant. `external_id` is the company's own id, set only through verified identity."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contacts")
    external_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    # The company's segment for the customer ("premium", "business"...), set by its staff, never by the
    # widget: company rules route and prioritise handoffs by it.
    tier = models.CharField(max_length=32, blank=True)
    # Part of every verified widget token of this customer; bumped when they sign out (or staff sign
    # them out), so every copy of those tokens stops working at once.
    session_epoch = models.PositiveIntegerField(default=1, editable=False)
    # Set when the company (its server, or staff) signs the customer out everywhere: identity proofs issued
    # before it no longer verify, so a page left open elsewhere cannot sign them back in.
    signed_out_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="uniq_contact_external_id"),
        ]
        indexes = [models.Index(Lower("email"), "tenant", name="contact_email_idx")]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.tenant_id})"
