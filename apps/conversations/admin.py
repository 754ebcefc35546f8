"""Django admin for platform operators: read-only views of conversations.

Operators see the redacted text only; customers' original words are for the company's own staff with the
pii_viewer role (through the staff API), not for the platform operator.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.conversations.models import (
    AssistantTrace,
    Conversation,
    ConversationEvent,
    ConversationRating,
    Delivery,
    Message,
)


class ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(ReadOnly, admin.TabularInline[Message, Conversation]):
    model = Message
    extra = 0
    can_delete = False
    fields = ["created_at", "role", "status", "turn", "text_redacted", "abstained", "error_code"]
    readonly_fields = ["created_at", "role", "status", "turn", "text_redacted", "abstained", "error_code"]
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(ReadOnly, admin.ModelAdmin[Conversation]):
    list_display = ["id", "tenant", "channel", "status", "contact", "last_seq", "last_message_at"]
    list_filter = ["status", "channel", "tenant"]
    search_fields = ["id", "contact__external_id"]
    readonly_fields = ["tenant", "visitor_id", "contact", "channel", "status", "last_seq", "turn"]
    # A messaging conversation's key and address are the customer's phone number: not for operators.
    exclude = ["channel_key", "channel_address"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(ReadOnly, admin.ModelAdmin[Message]):
    list_display = ["id", "conversation", "role", "status", "abstained", "error_code", "created_at"]
    list_filter = ["role", "status", "abstained", "tenant"]
    exclude = ["text"]
    readonly_fields = [
        "tenant",
        "conversation",
        "role",
        "status",
        "client_msg_id",
        "turn",
        "text_redacted",
        "pii_types",
        "citations",
        "abstained",
        "offer_handoff",
        "error_code",
        "guardrail_reasons",
        "timings",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "heartbeat_at",
    ]


@admin.register(AssistantTrace)
class AssistantTraceAdmin(ReadOnly, admin.ModelAdmin[AssistantTrace]):
    list_display = ["message", "tenant", "attempts", "endpoint", "created_at"]
    list_filter = ["tenant"]
    readonly_fields = ["tenant", "message", "prompt", "retrieval", "input_check", "attempts", "endpoint"]


@admin.register(ConversationEvent)
class ConversationEventAdmin(ReadOnly, admin.ModelAdmin[ConversationEvent]):
    list_display = ["conversation", "seq", "type", "created_at"]
    list_filter = ["type", "tenant"]
    readonly_fields = ["tenant", "conversation", "seq", "type", "message", "data"]


@admin.register(ConversationRating)
class ConversationRatingAdmin(ReadOnly, admin.ModelAdmin[ConversationRating]):
    """Customers' ratings (CSAT); the comment was redacted before it was stored."""

    list_display = ["conversation", "tenant", "episode", "score", "agent", "created_at"]
    list_filter = ["score", "tenant"]
    list_select_related = ["tenant", "conversation", "agent"]
    date_hierarchy = "created_at"
    readonly_fields = ["tenant", "conversation", "episode", "score", "comment", "agent", "created_at"]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnly, admin.ModelAdmin[Delivery]):
    """Outbound messages on channels that do not stream (docs/architecture/channels.md)."""

    list_display = ["message", "tenant", "channel", "status", "attempts", "last_error", "updated_at"]
    list_filter = ["status", "channel", "tenant"]
    list_select_related = ["tenant", "message"]
    readonly_fields = [
        "tenant",
        "message",
        "channel",
        "status",
        "attempts",
        "last_error",
        "provider_message_id",
        "next_attempt_at",
        "sent_at",
        "delivered_at",
    ]
