"""Conversations, their messages, and the numbered event log the widget resumes from (realtime.md)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField

from apps.accounts.models import Contact, Tenant, TenantScopedModel
from apps.audit.models import AuditEvent
from apps.core.models import BaseModel
from apps.knowledge.models import EMBEDDING_DIMENSIONS


class HandoffReason(models.TextChoices):
    """Why a conversation went to a person (docs/architecture/handoff.md). Reports group by these."""

    CUSTOMER_REQUEST = "customer_request", "Customer asked for a person"
    ASSISTANT_ABSTAINED = "assistant_abstained", "Assistant could not answer"
    ASSISTANT_FAILED = "assistant_failed", "Assistant failed"
    LLM_UNAVAILABLE = "llm_unavailable", "Language model unavailable"
    TOOL_FAILED = "tool_failed", "A tool failed"
    TOOL_APPROVAL = "tool_approval", "A change needs an agent's approval"
    SENSITIVE = "sensitive", "Sensitive topic"
    ANGRY = "angry", "Customer upset"
    TENANT_RULE = "tenant_rule", "Company rule"
    AGENT_TAKEOVER = "agent_takeover", "An agent took over"
    EMAIL_REPLY = "email_reply", "Customer replied by email"


class Channel:
    """The built-in channel names. A channel is a registered type (apps.conversations.channels), not a
    database choice: other apps register more names (apps.messaging: "messaging") without a migration."""

    WIDGET = "widget"
    CLI = "cli"
    EMAIL = "email"
    MESSAGING = "messaging"


class Conversation(TenantScopedModel):
    class Status(models.TextChoices):
        """Who owns the conversation: the ownership state machine of apps.conversations.ownership."""

        ASSISTANT = "assistant", "With the assistant"
        WAITING = "waiting", "Waiting for a person"
        HUMAN = "human", "With a person"
        RESOLVED = "resolved", "Resolved"

    Channel = Channel

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="conversations")
    # Anonymous visitors are known only by this id (inside their signed session token).
    visitor_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    # Set only once the company has vouched for the customer with a valid identity signature.
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    # A registered channel name (apps.conversations.channels): where the customer writes and is answered.
    channel = models.CharField(max_length=16, default=Channel.WIDGET)
    # The channel's own name for this conversation (e.g. the customer's phone number for a messaging
    # channel), unique per tenant and channel; empty for the widget, whose key is the conversation's id.
    channel_key = models.CharField(max_length=200, blank=True, default="")
    # Where outbound messages go on that channel (a phone number, an email address); may hold PII.
    channel_address = models.CharField(max_length=254, blank=True, default="")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.ASSISTANT)
    # The one agent who owns it while `status` is human (a database constraint keeps the two in step).
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A resolved conversation the customer writes in again starts a new episode: the assistant's memory
    # starts at `episode_turn`, and CSAT is asked once per episode.
    episode = models.PositiveIntegerField(default=1)
    episode_turn = models.PositiveIntegerField(default=0)
    # Where the customer asked to be answered when nobody could answer live (the email path).
    contact_email = models.EmailField(blank=True)
    # The highest `seq` handed out; events are numbered under a row lock on this conversation.
    last_seq = models.PositiveIntegerField(default=0)
    # Bumped by every customer message: an answer for an older turn has been superseded.
    turn = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # When the widget session that holds this conversation was ended (the guest signed in as a customer):
    # its token no longer opens it.
    visitor_ended_at = models.DateTimeField(null=True, blank=True)
    # The model that answers it, decided once when it starts (apps.llm.routing): empty, the company's
    # current model; set, a canary's candidate. Which arm of which canary it joined stays for the
    # comparison after the canary ends.
    model_endpoint = models.ForeignKey(
        "llm.ModelEndpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canary = models.ForeignKey(
        "llm.Canary", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canary_arm = models.CharField(max_length=12, blank=True, default="")  # "", "current", "candidate"

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-last_message_at"], name="conv_tenant_recent_idx"),
            models.Index(fields=["tenant", "status"], name="conv_tenant_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "channel_key"],
                condition=~models.Q(channel_key=""),
                name="uniq_conversation_channel_key",
            ),
            models.CheckConstraint(
                condition=models.Q(status="human", agent__isnull=False)
                | (~models.Q(status="human") & models.Q(agent__isnull=True)),
                name="conversation_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"conversation {self.id}"


class Message(BaseModel):
    class Role(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        ASSISTANT = "assistant", "Assistant"
        AGENT = "agent", "Agent"

    class Status(models.TextChoices):
        STREAMING = "streaming", "Being written"
        COMPLETE = "complete", "Complete"
        INTERRUPTED = "interrupted", "Interrupted"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded by a newer message"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    # Agent messages: who wrote it (the customer sees the first name only).
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The channel the message came in or went out by (a registered channel name, like Conversation.channel:
    # a widget conversation's customer may also reply by email).
    via = models.CharField(max_length=16, default=Channel.WIDGET)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # The customer's idempotency key: a message re-sent after a reconnect is stored once (CONTRACTS I1).
    client_msg_id = models.CharField(max_length=64, blank=True, default="")
    # The provider's id of an inbound message of a non-widget channel: stored once per tenant and channel.
    external_id = models.CharField(max_length=200, blank=True, default="")
    turn = models.PositiveIntegerField()
    # What the author wrote. For customers it may hold PII: shown to the customer and to staff with the
    # pii_viewer role, never logged, never put in a prompt.
    text = models.TextField(blank=True)
    # The same text after Presidio: the only form prompts, staff without permission and logs see.
    text_redacted = models.TextField(blank=True)
    pii_types = models.JSONField(default=list, blank=True)
    # Assistant replies: what grounded them and how they went.
    citations = models.JSONField(default=list, blank=True)
    abstained = models.BooleanField(default=False)
    offer_handoff = models.BooleanField(default=False)
    error_code = models.CharField(max_length=32, blank=True)
    guardrail_reasons = models.JSONField(default=list, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Refreshed while a reply streams; a stale one belongs to a process that died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_msg_id"],
                condition=~models.Q(client_msg_id=""),
                name="uniq_message_client_msg_id",
            ),
            models.UniqueConstraint(
                fields=["tenant", "via", "external_id"],
                condition=~models.Q(external_id=""),
                name="uniq_message_channel_external_id",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["customer", "assistant", "agent"]), name="message_role_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="message_conv_created_idx"),
            models.Index(
                fields=["status"],
                condition=models.Q(status="streaming"),
                name="message_streaming_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.id}"


class Delivery(BaseModel):
    """One outbound message on one channel (docs/architecture/channels.md): created with the message, in
    its transaction, and sent by a Celery worker after commit, with bounded retries. The unique pair
    (message, channel) and the row lock the worker takes make each message go out at most once.
    Streaming channels (the widget) deliver through the socket and the event log, and get no rows."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey("Message", on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    # One sentence for staff (never the message text or the customer's address).
    last_error = models.CharField(max_length=300, blank=True, default="")
    provider_message_id = models.CharField(max_length=200, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["message", "channel"], name="uniq_delivery_message_channel"),
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "sent", "delivered", "failed"]),
                name="delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "channel", "provider_message_id"],
                condition=~models.Q(provider_message_id=""),
                name="delivery_provider_id_idx",
            ),
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=models.Q(status="queued"),
                name="delivery_queued_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} delivery of {self.message_id}: {self.status}"


class ConversationEvent(BaseModel):
    """One numbered entry of a conversation's log. Message text is read from `message` when the event is
    rendered, so PII lives in one column only."""

    # The audit trail's vocabulary of who acts (apps.audit): customer, assistant, staff or system.
    ActorKind = AuditEvent.ActorKind

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    data = models.JSONField(default=dict, blank=True)
    # Who caused the event (apps.conversations.events.event_append derives it when the caller does not
    # say): the staff member for staff events, else only the kind. Never part of the websocket frame.
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices, default=ActorKind.SYSTEM)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="uniq_conversation_event_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq}"


class AssistantTrace(BaseModel):
    """What the assistant saw for one reply: the exact (redacted) prompt, the passages retrieved and the
    input-check verdict. Editors and operators audit answers with it; it never holds original text."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="trace")
    prompt = models.JSONField(default=list, blank=True)  # [{"role", "content"}], redacted
    retrieval = models.JSONField(default=dict, blank=True)  # passages with similarity, threshold, model
    input_check = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    endpoint = models.CharField(max_length=300, blank=True)
    # The reply's OpenTelemetry trace (32 hex digits) and its spans as stored by apps/conversations/
    # turn_trace.py: stage, start, duration, status and a few safe attributes, never text (tracing.md).
    trace_id = models.CharField(max_length=32, blank=True, default="")
    spans = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["trace_id"], condition=~models.Q(trace_id=""), name="assistant_trace_trace_id_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"trace of {self.message_id}"


class ConversationRating(BaseModel):
    """The customer's rating (CSAT, 1 to 5) of one resolved episode of a conversation."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="ratings")
    episode = models.PositiveIntegerField()
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)  # redacted by Presidio before it is stored
    # The agent who resolved the episode, if a person did.
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "episode"], name="uniq_rating_per_episode"),
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="rating_score_range"),
        ]
        indexes = [models.Index(fields=["tenant", "created_at"], name="rating_tenant_created_idx")]

    def __str__(self) -> str:
        return f"{self.score}/5 for {self.conversation_id}"


class CachedAnswer(TenantScopedModel):
    """An answer the assistant may give again to the same question (apps/conversations/answer_cache.py).

    Only answers made from published knowledge alone are stored, never ones that used a customer's account
    or the conversation's memory. Rows belong to the tenant's knowledge epoch they were made under: a change
    to the published knowledge bumps the epoch, and older rows are never served again.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    knowledge_epoch = models.PositiveBigIntegerField()
    style = models.CharField(max_length=16)  # "quote" | "compose": the same evidence worded differently
    normalized = models.CharField(max_length=500)  # the redacted question, normalised (answer_cache.py)
    signature = models.TextField(blank=True)  # its numbers and named things, e.g. "travel pass|zone 2"
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    # Vectors of different models are not comparable: a neighbour must have been embedded by this one.
    embedding_model = models.CharField(max_length=200)
    # What the assistant needs to answer again: evidence items, text, citations, retrieval summary.
    payload = models.JSONField(default=dict)
    hits = models.PositiveIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "knowledge_epoch", "style", "normalized"], name="uniq_cached_answer"
            ),
        ]
        indexes = [
            HnswIndex(
                name="cached_answer_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            # No index covers hits or last_hit_at: counting a hit rewrites the row in place (a HOT update)
            # instead of adding an entry to every index, the HNSW graph included.
            models.Index(
                fields=["tenant", "knowledge_epoch", "style", "signature"], name="cached_answer_signature_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"cached answer {self.id}"
