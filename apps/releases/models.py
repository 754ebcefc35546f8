"""Changing models and knowledge safely (docs/architecture/releases.md): a company's golden answers, the
runs that check them, and the knowledge changes those runs hold for an editor's confirmation."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.accounts.models import TenantScopedModel
from apps.core.models import BaseModel


class GoldenQuestion(TenantScopedModel):
    """A question whose right answer the company knows: it must contain one of `expect` and cite the
    policy titled `document_title`, or (`must_abstain`) the assistant must say it does not know."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Added by an editor"
        CONVERSATION = "conversation", "From a conversation"
        GAP = "gap", "From a knowledge gap"
        DEMO = "demo", "Shipped with the demo"

    question = models.TextField()
    expect = models.JSONField(default=list, blank=True)  # fact phrases; any one suffices
    document = models.ForeignKey(
        "knowledge.Document", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    document_title = models.CharField(max_length=300, blank=True)  # graded by title, kept if deleted
    must_abstain = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    source_ref = models.UUIDField(null=True, blank=True)  # the message or gap it came from
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(must_abstain=True) | (~models.Q(expect=[]) & ~models.Q(document_title="")),
                name="golden_expects_something",
            ),
        ]

    def __str__(self) -> str:
        return self.question[:80]


class GoldenRun(TenantScopedModel):
    """One run of a company's golden set through the real answer pipeline (apps/releases/runner.py)."""

    class Kind(models.TextChoices):
        MANUAL = "manual", "Run by hand"
        COMMAND = "command", "manage.py golden_run"
        GATE_BEFORE = "gate_before", "Knowledge change: as published now"
        GATE_AFTER = "gate_after", "Knowledge change: as it would be"
        CANARY = "canary", "Before a canary"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MANUAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    endpoint = models.ForeignKey(
        "llm.ModelEndpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_label = models.CharField(max_length=300, blank=True)  # "model at base_url", kept if deleted
    style = models.CharField(max_length=16, blank=True)  # the answer style in force
    change = models.ForeignKey(
        "releases.GatedChange", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)  # progress
    passed = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)  # bench/answers.py's row: right, abstained, times
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="golden_run_recent_idx")]

    def __str__(self) -> str:
        return f"golden run {self.id} ({self.status})"

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.total if self.total and self.status == self.Status.DONE else None


class GoldenResult(BaseModel):
    """How one golden question was answered in one run."""

    run = models.ForeignKey(GoldenRun, on_delete=models.CASCADE, related_name="results")
    question = models.ForeignKey(
        GoldenQuestion, null=True, blank=True, on_delete=models.SET_NULL, related_name="results"
    )
    ordinal = models.PositiveIntegerField()
    question_text = models.TextField()
    answerable = models.BooleanField()
    right = models.BooleanField()
    abstained = models.BooleanField(default=False)
    failure = models.CharField(max_length=64, blank=True)
    answer = models.TextField(blank=True)  # as the customer would have seen it (redacted)
    cited = models.JSONField(default=list, blank=True)  # citation titles
    first_content_ms = models.FloatField(null=True, blank=True)
    complete_ms = models.FloatField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)  # composed shown, dropped, cache, unsupported

    class Meta:
        ordering = ["run", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["run", "ordinal"], name="uniq_golden_result")]

    def __str__(self) -> str:
        return f"{self.question_text[:60]}: {'right' if self.right else 'wrong'}"


class GatedChange(TenantScopedModel):
    """A knowledge change (publish, roll back, unpublish, delete) checked against the golden set before
    customers see it (apps/releases/gate.py). A change that breaks nothing is applied by the check; one
    that turns a right answer wrong waits, held, for the editor's confirmation."""

    class Kind(models.TextChoices):
        PUBLISH = "publish", "Publish"
        ROLLBACK = "rollback", "Roll back"
        UNPUBLISH = "unpublish", "Unpublish"
        DELETE = "delete", "Delete"

    class Status(models.TextChoices):
        CHECKING = "checking", "Checking the golden answers"
        HELD = "held", "Held for confirmation"
        APPLIED = "applied", "Applied"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CHECKING)
    document = models.ForeignKey(
        "knowledge.Document", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    document_title = models.CharField(max_length=300)
    version_number = models.PositiveIntegerField(null=True, blank=True)  # publish and roll back
    # Answers that were right as published now and wrong as they would be:
    # [{"question", "before", "after", "before_cited", "after_cited"}].
    regressions = models.JSONField(default=list, blank=True)
    fixed = models.JSONField(default=list, blank=True)  # wrong before, right after
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.document_title} ({self.status})"
