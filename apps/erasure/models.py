"""One request to erase one customer of one company, and how far it got (docs/architecture/erasure.md)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.accounts.models import Tenant, TenantScopedModel


class SubjectKind(models.TextChoices):
    """Who the customer is, as the company knows them."""

    CONTACT = "contact", "Verified customer (the company's own id)"
    VISITOR = "visitor", "Anonymous visitor (widget visitor id)"
    ADDRESS = "address", "Phone number or email address"


class ErasureRequest(TenantScopedModel):
    """Erasing runs as a list of steps, each in its own transaction and recorded in `steps` in that same
    transaction: a worker killed half way leaves the request `running` with the steps it finished, and the
    next run (the task delivered again, the startup sweep, or `manage.py customer_erase --resume`) goes on
    from the first step not recorded.

    The customer's identifier is kept in `subject_value` only while the request is unfinished (a resumed run
    needs it to find them); `subject_hash`, a keyed hash, stays so a second request for the same customer
    can be told apart without keeping who it was. `scope` holds the ids the steps work on, also until the
    request is finished.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to run"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Something was left"

    UNFINISHED = (State.PENDING, State.RUNNING)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    subject_kind = models.CharField(max_length=8, choices=SubjectKind.choices)
    subject_hash = models.CharField(max_length=64)
    subject_value = models.CharField(max_length=254, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    steps = models.JSONField(default=list, blank=True)  # names of the steps done, in order
    counts = models.JSONField(default=dict, blank=True)  # rows (or keys) removed, per kind
    scope = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["pending", "running", "done", "failed"]),
                name="erasure_state_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(subject_kind__in=["contact", "visitor", "address"]),
                name="erasure_subject_kind_valid",
            ),
            # One unfinished request per customer: asking again returns the one already under way.
            models.UniqueConstraint(
                fields=["tenant", "subject_hash"],
                condition=models.Q(state__in=["pending", "running"]),
                name="uniq_erasure_unfinished_subject",
            ),
            # A finished request keeps no identifier.
            models.CheckConstraint(
                condition=models.Q(state__in=["pending", "running"]) | models.Q(subject_value=""),
                name="erasure_finished_forgets_subject",
            ),
        ]
        indexes = [
            models.Index(
                fields=["state", "created_at"],
                condition=models.Q(state__in=["pending", "running"]),
                name="erasure_unfinished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"erasure {self.id} ({self.state})"
