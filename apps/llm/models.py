"""What the llm app stores: each configured model's measured profile (apps/llm/profiles.py)."""

from __future__ import annotations

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
