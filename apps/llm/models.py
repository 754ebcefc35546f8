"""What the llm app stores: each configured model's measured profile (apps/llm/profiles.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class ModelProfile(BaseModel):
    """How well one model at one endpoint composes answers from policy sentences, as last measured by
    `manage.py model_profile`: of the sentences it composed, how many the checker found supported by the
    evidence, and how fast it was. The "auto" answer style composes only with a model that passes."""

    base_url = models.CharField(max_length=500)
    model = models.CharField(max_length=200)
    measured_at = models.DateTimeField()
    questions = models.PositiveIntegerField()
    composed = models.PositiveIntegerField()  # sentences the model wrote
    supported = models.PositiveIntegerField()  # of those, sentences the evidence supports
    support_rate = models.FloatField()  # supported / composed (0 when nothing was composed)
    first_token_p50_ms = models.FloatField(null=True, blank=True)
    complete_p50_ms = models.FloatField(null=True, blank=True)
    # Judged when measured: support_rate >= ANSWER_COMPOSE_MIN_SUPPORT over at least
    # profiles.MIN_SENTENCES sentences.
    passes = models.BooleanField()

    class Meta:
        ordering = ["base_url", "model"]
        constraints = [
            models.UniqueConstraint(fields=["base_url", "model"], name="uniq_model_profile"),
            models.CheckConstraint(
                condition=models.Q(supported__lte=models.F("composed")), name="profile_supported_lte_composed"
            ),
            models.CheckConstraint(
                condition=models.Q(support_rate__gte=0, support_rate__lte=1),
                name="profile_support_rate_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} at {self.base_url}"


class ModelEndpoint(BaseModel):
    """An OpenAI-compatible model server and model a company's conversations can be answered by
    (apps/llm/endpoints.py registers it after probing it). `tenant` empty: registered by the operator and
    offered to every company. The key is sealed at rest (apps.core.sealing); the answer style it gets under
    "auto" comes from the ModelProfile of the same base URL and model."""

    tenant = models.ForeignKey(
        "accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.CharField(max_length=100)
    base_url = models.CharField(max_length=500)
    model = models.CharField(max_length=200)
    api_key_sealed = models.TextField(blank=True)
    # "auto": compose only when this model's ModelProfile passes (apps/llm/profiles.py), else quote.
    style = models.CharField(max_length=8, default="auto")  # "auto" | "quote" | "compose"
    # What the probe at registration found: models listed, first token ms, streamed chunks.
    checked_at = models.DateTimeField(null=True, blank=True)
    check_report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "base_url", "model"], name="uniq_model_endpoint", nulls_distinct=False
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model} at {self.base_url})"


class TenantModel(BaseModel):
    """Which endpoint answers a company's conversations now. No row, or an empty endpoint: the configured
    model (LLM_BASE_URL, LLM_MODEL)."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"model of {self.tenant_id}"


class Canary(BaseModel):
    """A candidate model answering a share of a company's new conversations, compared with the current
    one (apps/releases/canary.py). At most one is checking or running per company."""

    class Status(models.TextChoices):
        CHECKING = "checking", "Checking the golden answers"
        REFUSED = "refused", "Refused by the golden answers"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped automatically"
        CANCELLED = "cancelled", "Stopped by an admin"
        PROMOTED = "promoted", "Promoted"

    ACTIVE = (Status.CHECKING, Status.RUNNING)

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    # What it is compared with: the company's model when the canary started (empty: the configured one).
    current = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    share = models.PositiveSmallIntegerField()  # percent of new conversations, 1..100
    min_conversations = models.PositiveIntegerField(default=20)
    # Bounds, in percentage points of conversations, by which the candidate may exceed the current model
    # before the canary is stopped: {"abstention": 10, "unsupported": 5, "error": 5}.
    bounds = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CHECKING)
    reason = models.TextField(blank=True)  # why it was refused or stopped, one sentence
    golden = models.JSONField(default=dict, blank=True)  # the golden comparison before it started
    indicators = models.JSONField(default=dict, blank=True)  # the last comparison, per arm
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(status__in=["checking", "running"]),
                name="one_active_canary",
            ),
            models.CheckConstraint(
                condition=models.Q(share__gte=1, share__lte=100), name="canary_share_range"
            ),
        ]

    def __str__(self) -> str:
        return f"canary of {self.candidate_id} at {self.share}%"
