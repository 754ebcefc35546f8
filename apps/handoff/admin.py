"""Django admin for platform operators: each company's handoff settings, teams, rules and canned
responses, and a read-only window on handoffs (with their case files), notes, tickets and sent emails.

Handoffs, notes, tickets and emails are records the services write as conversations move: the operator
reads them here and changes nothing. Like the conversation pages, nothing here shows what a customer could
be identified by: case files are built from redacted text, notes are shown redacted, and a ticket's email
address masked.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.conversations.services import email_masked
from apps.guardrails.pii import pii_redact
from apps.handoff.models import (
    CannedResponse,
    Handoff,
    HandoffRule,
    HandoffSettings,
    Note,
    Presence,
    SentEmail,
    Team,
    Ticket,
)


class ReadOnly:
    """Records only the services write."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _pretty(value: Any) -> SafeString:
    return format_html(
        '<pre class="helpdesk-json">{}</pre>',
        json.dumps(value or {}, indent=2, ensure_ascii=False, sort_keys=True, default=str),
    )


@admin.register(HandoffSettings)
class HandoffSettingsAdmin(admin.ModelAdmin[HandoffSettings]):
    list_display = ["tenant", "timezone", "escalate_after_seconds", "default_capacity", "updated_at"]
    search_fields = ["tenant__slug", "tenant__name"]
    list_select_related = ["tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: HandoffSettings | None = None) -> Any:
        return ["tenant"] if obj is not None else []


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ["name", "tenant", "member_count", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "tenant__slug"]
    list_select_related = ["tenant"]
    filter_horizontal = ["members"]

    @admin.display(description="Members")
    def member_count(self, obj: Team) -> int:
        return obj.members.count()


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin[Presence]):
    list_display = ["user", "tenant", "status", "sockets", "capacity", "last_seen_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    list_select_related = ["user", "tenant"]
    readonly_fields = ["tenant", "user", "sockets", "last_seen_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a presence appears when an agent opens the console


@admin.register(Handoff)
class HandoffAdmin(ReadOnly, admin.ModelAdmin[Handoff]):
    list_display = [
        "id",
        "tenant",
        "conversation",
        "status",
        "reason",
        "priority",
        "agent",
        "created_at",
        "claimed_at",
    ]
    list_filter = ["status", "reason", "tenant"]
    search_fields = ["=id", "=conversation__id"]
    list_select_related = ["tenant", "conversation", "agent"]
    date_hierarchy = "created_at"
    exclude = ["case_file", "availability"]
    readonly_fields = [
        "tenant",
        "conversation",
        "status",
        "reason",
        "detail",
        "priority",
        "team",
        "agent",
        "created_at",
        "claimed_at",
        "first_reply_at",
        "closed_at",
        "escalation_level",
        "escalated_at",
        "availability_shown",
        "case_file_status",
        "case_file_ready_at",
        "case_file_shown",
    ]

    class Media:
        css = {"all": ["css/admin.css"]}

    @admin.display(description="What the customer was told")
    def availability_shown(self, obj: Handoff) -> SafeString:
        return _pretty(obj.availability)

    @admin.display(description="Case file")
    def case_file_shown(self, obj: Handoff) -> SafeString:
        return _pretty(obj.case_file)


@admin.register(HandoffRule)
class HandoffRuleAdmin(admin.ModelAdmin[HandoffRule]):
    list_display = ["tenant", "kind", "value", "priority", "team", "enabled"]
    list_filter = ["kind", "enabled", "tenant"]
    search_fields = ["value", "tenant__slug"]
    list_select_related = ["tenant", "team"]


@admin.register(Note)
class NoteAdmin(ReadOnly, admin.ModelAdmin[Note]):
    list_display = ["conversation", "tenant", "author", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant", "author", "conversation"]
    exclude = ["text"]
    readonly_fields = ["tenant", "conversation", "author", "text_redacted", "created_at"]

    @admin.display(description="Text (redacted)")
    def text_redacted(self, obj: Note) -> str:
        # Agents write notes freely, customers' details included.
        return str(pii_redact(obj.text))


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin[CannedResponse]):
    list_display = ["shortcut", "title", "tenant", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["shortcut", "title", "tenant__slug"]
    list_select_related = ["tenant"]


@admin.register(Ticket)
class TicketAdmin(ReadOnly, admin.ModelAdmin[Ticket]):
    list_display = ["number", "tenant", "status", "email_shown", "conversation", "created_at", "answered_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["=number", "tenant__slug"]
    list_select_related = ["tenant", "conversation"]
    # The reply token addresses the customer's conversation by email: it stays out of the pages.
    exclude = ["reply_token", "email"]
    readonly_fields = ["tenant", "number", "conversation", "handoff", "email_shown", "status", "answered_at"]

    @admin.display(description="Email")
    def email_shown(self, obj: Ticket) -> str:
        return email_masked(obj.email)


@admin.register(SentEmail)
class SentEmailAdmin(ReadOnly, admin.ModelAdmin[SentEmail]):
    list_display = ["message_id", "ticket", "tenant", "sent_at", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant", "ticket"]
    readonly_fields = ["tenant", "message_id", "ticket", "sent_at"]
