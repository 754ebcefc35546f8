"""The human side of a conversation: the queue of handoffs with their case files, who is online with how
much room, teams, company hours and rules, private notes, canned responses, and tickets for customers
answered by email (docs/architecture/handoff.md)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from apps.accounts.models import Tenant, TenantScopedModel
from apps.conversations.models import Conversation, HandoffReason


def default_hours() -> dict[str, list[list[str]]]:
    weekday = [["09:00", "17:00"]]
    return {
        "mon": weekday,
        "tue": weekday,
        "wed": weekday,
        "thu": weekday,
        "fri": weekday,
        "sat": [],
        "sun": [],
    }


def new_reply_token() -> str:
    return secrets.token_urlsafe(18)


class HandoffSettings(TenantScopedModel):
    """A company's opening hours (in its own time zone), escalation and capacity defaults."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="handoff_settings")
    timezone = models.CharField(max_length=64, default="UTC")
    # {"mon": [["09:00", "17:00"]], ...}: intervals a person can answer live, in `timezone`.
    hours = models.JSONField(default=default_hours)
    # A handoff nobody claims for this long is escalated (priority up, admins told); again after as long.
    escalate_after_seconds = models.PositiveIntegerField(default=300)
    # How many conversations an agent may hold at once unless their own capacity says otherwise.
    default_capacity = models.PositiveSmallIntegerField(default=3)

    class Meta:
        verbose_name_plural = "handoff settings"

    def __str__(self) -> str:
        return f"handoff settings of {self.tenant_id}"


class Team(TenantScopedModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_team_name")]

    def __str__(self) -> str:
        return self.name


class Presence(TenantScopedModel):
    """An agent's availability at one company: what they chose, and whether their console is connected."""

    class Status(models.TextChoices):
        ONLINE = "online", "Online"
        AWAY = "away", "Away"
        OFFLINE = "offline", "Offline"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presences")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ONLINE)
    # Console sockets open now (all processes); a crashed process leaves it high, so `last_seen_at`
    # decides too.
    sockets = models.IntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Conversations this agent may hold at once; empty: the company's default.
    capacity = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="uniq_presence")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.status}"


class Handoff(TenantScopedModel):
    """One trip of a conversation to people: queued, claimed, then resolved, handed back or cancelled."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        CLAIMED = "claimed", "With an agent"
        RESOLVED = "resolved", "Resolved"
        RETURNED = "returned", "Handed back to the assistant"
        CANCELLED = "cancelled", "Cancelled by the customer"

    class CaseFileStatus(models.TextChoices):
        PENDING = "pending", "Being written"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    OPEN = (Status.WAITING, Status.CLAIMED)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="handoffs")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.WAITING)
    reason = models.CharField(max_length=24, choices=HandoffReason.choices)
    detail = models.CharField(max_length=500, blank=True)  # never customer text: our own words
    priority = models.PositiveSmallIntegerField(default=0)  # 0 normal, 1 high, 2 urgent, 3 escalated twice
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # When it last joined the queue (opened, or transferred back to a team): escalation counts from here.
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    first_reply_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    # What the customer was told when it was queued: live (expected wait) or offline (email, hours).
    availability = models.JSONField(default=dict, blank=True)
    case_file = models.JSONField(default=dict, blank=True)
    case_file_status = models.CharField(
        max_length=8, choices=CaseFileStatus.choices, default=CaseFileStatus.PENDING
    )
    case_file_ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-priority", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(status__in=["waiting", "claimed"]),
                name="uniq_open_handoff_per_conversation",
            ),
            models.CheckConstraint(
                condition=models.Q(status="claimed", agent__isnull=False) | ~models.Q(status="claimed"),
                name="claimed_handoff_has_agent",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-priority", "created_at"], name="handoff_queue_idx"),
            models.Index(fields=["tenant", "created_at"], name="handoff_tenant_created_idx"),
        ]

    def __str__(self) -> str:
        return f"handoff {self.id} ({self.status})"


class HandoffRule(TenantScopedModel):
    """A company rule: conversations on a topic, or from customers of a tier, go to a person (a team)."""

    class Kind(models.TextChoices):
        TOPIC = "topic", "Topic (any of these words)"
        TIER = "tier", "Customer tier"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="handoff_rules")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Topic: comma-separated words or phrases; tier: the tier's name.
    value = models.CharField(max_length=500)
    priority = models.PositiveSmallIntegerField(default=0)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["kind", "value"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.value}"


class Note(TenantScopedModel):
    """A private note agents leave on a conversation; never shown to the customer."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"note on {self.conversation_id}"


class CannedResponse(TenantScopedModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="canned_responses")
    title = models.CharField(max_length=100)
    # Typed as "/shortcut" in the reply box.
    shortcut = models.SlugField(max_length=40)
    body = models.TextField(max_length=4000)

    class Meta:
        ordering = ["shortcut"]
        constraints = [models.UniqueConstraint(fields=["tenant", "shortcut"], name="uniq_canned_shortcut")]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class Ticket(TenantScopedModel):
    """A customer nobody could answer live, to be answered by email; numbered per company."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ANSWERED = "answered", "Answered by email"
        CLOSED = "closed", "Closed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="ticket")
    handoff = models.ForeignKey(Handoff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    email = models.EmailField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # In the Reply-To address of our emails: the customer's answer finds its conversation by it.
    reply_token = models.CharField(max_length=40, unique=True, default=new_reply_token, editable=False)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="uniq_ticket_number")]

    def __str__(self) -> str:
        return f"ticket #{self.number}"


class SentEmail(TenantScopedModel):
    """One agent reply emailed to a ticket's customer: the row makes the send at most once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    message_id = models.UUIDField(unique=True)
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="emails")
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"email of {self.message_id}"


class EmailThread(TenantScopedModel):
    """A conversation started by an email to the company's support address: the one customer address it
    answers, and the subject its replies carry (docs/architecture/channels.md, "Email")."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="email_thread")
    address = models.EmailField()
    subject = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"email thread of {self.conversation_id}"


class EmailThreadMessage(TenantScopedModel):
    """One email of a thread, by its RFC 5322 Message-ID: the customer's (found again by a reply's
    In-Reply-To/References, and stored once however often the provider delivers it) or ours (sent once)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    thread = models.ForeignKey(EmailThread, on_delete=models.CASCADE, related_name="emails")
    # Without the angle brackets.
    rfc_message_id = models.CharField(max_length=500)
    inbound = models.BooleanField()
    # Ours: the conversation message it carries (one email per message); theirs: the message it became.
    message_id = models.UUIDField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "rfc_message_id"], name="uniq_email_thread_rfc_id"),
            models.UniqueConstraint(
                fields=["message_id"],
                condition=models.Q(inbound=False),
                name="uniq_email_thread_outbound_message",
            ),
        ]

    def __str__(self) -> str:
        return f"<{self.rfc_message_id}>"
