"""Which tools a company lets its assistant use, how its business system is reached, and every tool run.

A `ToolRun` is the record of one tool call the model made: refused before anything ran, waiting for
approval, or executed by a Celery worker. Its idempotency key is derived from the call, and the business
system applies a change at most once per key, so a task delivered twice or re-run after a killed worker
never repeats a side effect (CONTRACTS.md I3).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from apps.accounts.models import Tenant, TenantScopedModel


class Approval(models.TextChoices):
    NONE = "none", "Runs at once"
    CUSTOMER = "customer", "The customer confirms"
    AGENT = "agent", "An agent approves"


class AdapterKind(models.TextChoices):
    NONE = "none", "Not connected"
    DEMO = "demo", "Demo business system"
    HTTP = "http", "The company's HTTP API"


class ToolConnection(TenantScopedModel):
    """How a company's business system is reached. One per tenant; without one, no tool is offered."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="tool_connection")
    adapter = models.CharField(max_length=8, choices=AdapterKind.choices, default=AdapterKind.NONE)
    base_url = models.URLField(blank=True)
    # Sent as a bearer token to the company's API; stored sealed (apps/core/sealing.py), never rendered
    # back, never logged.
    auth_secret = models.CharField(max_length=500, blank=True)
    timeout_seconds = models.FloatField(default=10.0)
    allowed_hosts = ArrayField(models.CharField(max_length=253), default=list, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0) & Q(timeout_seconds__lte=60),
                name="toolconn_timeout_range",
            ),
            models.CheckConstraint(
                condition=~Q(adapter="http") | ~Q(base_url=""), name="toolconn_http_needs_url"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_adapter_display()} for {self.tenant_id}"


MAX_TENANT_EXAMPLES = 30
MAX_EXAMPLE_CHARS = 200


class TenantTool(TenantScopedModel):
    """A tool the company lets its assistant use, and who must approve it when it changes something."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    approval = models.CharField(max_length=8, choices=Approval.choices, default=Approval.NONE)
    # The company's own example requests for this tool (its product names, its customers' words), added to
    # the tool's built-in ones when the assistant chooses a tool for this company only (apps/tools/choice.py).
    # Redacted when saved: they are embedded.
    examples = ArrayField(
        models.CharField(max_length=MAX_EXAMPLE_CHARS), default=list, blank=True, size=MAX_TENANT_EXAMPLES
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_tenant_tool")]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    REFUSED = "refused", "Refused"  # rejected before anything ran: unknown, malformed, not allowed
    AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
    REJECTED = "rejected", "Rejected"  # an agent or the customer said no
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


FINAL_STATUSES = (RunStatus.REFUSED, RunStatus.REJECTED, RunStatus.DONE, RunStatus.FAILED)


class ToolRun(TenantScopedModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # Where the call was made. Plain values: tools sits below conversations and never imports it.
    conversation_ref = models.UUIDField(null=True, blank=True)
    message_ref = models.UUIDField(null=True, blank=True)
    tool = models.CharField(max_length=64)  # as the model named it, even when no such tool exists
    call_id = models.CharField(max_length=100, blank=True)
    idempotency_key = models.CharField(max_length=64, unique=True)
    # The verified customer the run acts for (their external id), never a value the model produced.
    customer = models.CharField(max_length=128, blank=True)
    arguments = models.JSONField(default=dict, blank=True)  # validated and redacted; {} when refused
    arguments_raw = models.TextField(blank=True)  # the model's text when it was not valid (redacted)
    status = models.CharField(max_length=20, choices=RunStatus.choices)
    approval = models.CharField(max_length=8, choices=Approval.choices, default=Approval.NONE)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_customer = models.BooleanField(default=False)
    decided_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    summary = models.TextField(blank=True)  # what the customer is told, rendered from the result
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The answer that asked stopped waiting (approval, or a slow run): the result is posted when it comes.
    deliver_later = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "conversation_ref", "created_at"], name="toolrun_conv_idx"),
            models.Index(fields=["tenant", "status", "-created_at"], name="toolrun_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES
