"""Rows of every kind retention touches, each placed just before or just after its period ends at a frozen
clock, so a test can tell exactly what expired from what did not."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import models

from apps.accounts.models import Tenant, User
from apps.conversations.models import (
    AssistantTrace,
    CachedAnswer,
    Conversation,
    ConversationEvent,
    HandoffReason,
    Message,
)
from apps.handoff.models import Handoff, Note, Ticket
from apps.knowledge.models import EMBEDDING_DIMENSIONS, KnowledgeGap
from apps.tools.models import RunStatus, ToolRun
from apps.voice.models import VoiceClip

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# The policy the tests set: each period different, so a sweep using another's period would show.
POLICY = {
    "conversations_days": 30,
    "messages_days": 10,
    "audio_days": 5,
    "tool_runs_days": 7,
    "case_files_days": 20,
    "traces_days": 3,
    "knowledge_gaps_days": 60,
}
CASE_FILE = {"summary": "Customer <PERSON> asked about a refund", "facts": ["order NM-100234"]}


def expired(days: int) -> datetime:
    """An hour past a period of `days`."""
    return NOW - timedelta(days=days, hours=1)


def kept(days: int) -> datetime:
    """An hour before a period of `days` ends."""
    return NOW - timedelta(days=days) + timedelta(hours=1)


def aged(row: models.Model, when: datetime, **fields: Any) -> None:
    """Backdates a row (update() leaves auto_now alone)."""
    type(row)._default_manager.filter(pk=row.pk).update(created_at=when, updated_at=when, **fields)


def message(conversation: Conversation, when: datetime, **fields: Any) -> Message:
    row = Message.objects.create(
        tenant=conversation.tenant,
        conversation=conversation,
        role=Message.Role.CUSTOMER,
        turn=1,
        text="My number is 07700 900123",
        text_redacted="My number is <PHONE_NUMBER>",
        pii_types=["PHONE_NUMBER"],
        **fields,
    )
    aged(row, when)
    return row


def conversation(
    tenant: Tenant, status: str, *, updated: datetime, last_message: datetime | None
) -> Conversation:
    row = Conversation.objects.create(tenant=tenant, status=status)
    aged(row, updated, last_message_at=last_message)
    return row


def tool_run(
    tenant: Tenant, when: datetime, *, status: str = RunStatus.DONE, conv: uuid.UUID | None = None
) -> ToolRun:
    row = ToolRun.objects.create(
        tenant=tenant,
        conversation_ref=conv,
        tool="order_status",
        idempotency_key=uuid.uuid4().hex,
        customer="cust-1001",
        arguments={"order_id": "NM-100234"},
        arguments_raw='{"order_id": "NM-100234"}',
        status=status,
        result={"status": "shipped", "address": "1 Long Lane"},
        summary="Order NM-100234 shipped to 1 Long Lane.",
    )
    aged(row, when)
    return row


def voice_clip(
    tenant: Tenant, when: datetime, *, kept_audio: bool = True, conv: uuid.UUID | None = None
) -> VoiceClip:
    row = VoiceClip.objects.create(
        tenant=tenant,
        conversation_id=conv or uuid.uuid4(),
        visitor_id=uuid.uuid4(),
        status=VoiceClip.Status.DONE if kept_audio else VoiceClip.Status.PENDING,
        audio_format="wav",
        size_bytes=4,
        audio=b"RIFF",
        audio_kept=kept_audio,
        transcript="My number is 07700 900123",
    )
    aged(row, when)
    return row


def handoff(conv: Conversation, *, status: str, closed: datetime | None, created: datetime) -> Handoff:
    row = Handoff.objects.create(
        tenant=conv.tenant,
        conversation=conv,
        status=status,
        reason=HandoffReason.CUSTOMER_REQUEST,
        case_file=CASE_FILE,
        case_file_status=Handoff.CaseFileStatus.READY,
    )
    aged(row, created, closed_at=closed)
    return row


def trace(msg: Message, when: datetime) -> AssistantTrace:
    row = AssistantTrace.objects.create(
        tenant=msg.tenant, message=msg, prompt=[{"role": "user", "content": "My number is <PHONE_NUMBER>"}]
    )
    aged(row, when)
    return row


def gap(tenant: Tenant, when: datetime) -> KnowledgeGap:
    row = KnowledgeGap.objects.create(tenant=tenant, question="Can I pay with <CRYPTO>?", threshold=0.4)
    aged(row, when)
    return row


def cached_answer(tenant: Tenant, epoch: int, question: str) -> CachedAnswer:
    return CachedAnswer.objects.create(
        tenant=tenant,
        knowledge_epoch=epoch,
        style="quote",
        normalized=question,
        embedding=[0.1] * EMBEDDING_DIMENSIONS,
        embedding_model="test-model",
        payload={"text": "A Travel Pass costs 5 a day."},
    )


@dataclass
class Planted:
    """Everything planted for one company: `gone` must disappear (or be blanked), `stay` must not."""

    tenant: Tenant
    # conversations
    conv_resolved_old: Conversation
    conv_assistant_idle: Conversation
    conv_resolved_recent: Conversation
    conv_resolved_recent_message: Conversation
    conv_waiting_old: Conversation
    # what hangs off conv_resolved_old (deleted with it)
    deleted_with_conversation: list[models.Model]
    # messages (in the waiting conversation, which is never deleted)
    msg_old: Message
    msg_recent: Message
    msg_streaming_old: Message
    # audio
    clip_old: VoiceClip
    clip_recent: VoiceClip
    clip_not_kept_old: VoiceClip
    # tool runs
    run_old: ToolRun
    run_recent: ToolRun
    run_waiting_old: ToolRun
    # case files
    handoff_closed_old: Handoff
    handoff_closed_recent: Handoff
    handoff_open_old: Handoff
    # traces
    trace_old: AssistantTrace
    trace_recent: AssistantTrace
    # knowledge gaps
    gap_old: KnowledgeGap
    gap_recent: KnowledgeGap
    # cached answers
    cached_stale: CachedAnswer
    cached_current: CachedAnswer


def plant(tenant: Tenant, author: User) -> Planted:
    p = POLICY
    resolved, assistant = Conversation.Status.RESOLVED, Conversation.Status.ASSISTANT
    conv_resolved_old = conversation(
        tenant,
        resolved,
        updated=expired(p["conversations_days"]),
        last_message=expired(p["conversations_days"]),
    )
    old_msg = message(conv_resolved_old, expired(p["conversations_days"]))
    old_handoff = handoff(
        conv_resolved_old,
        status=Handoff.Status.RESOLVED,
        closed=kept(p["case_files_days"]),
        created=expired(p["conversations_days"]),
    )
    deleted_with_conversation: list[models.Model] = [
        old_msg,
        ConversationEvent.objects.create(
            tenant=tenant, conversation=conv_resolved_old, seq=1, type="message", message=old_msg
        ),
        trace(old_msg, kept(p["traces_days"])),
        old_handoff,
        Note.objects.create(tenant=tenant, conversation=conv_resolved_old, author=author, text="Called back"),
        Ticket.objects.create(
            tenant=tenant, number=1, conversation=conv_resolved_old, email="cust@example.com"
        ),
        tool_run(tenant, kept(p["tool_runs_days"]), conv=conv_resolved_old.id),
        voice_clip(tenant, kept(p["audio_days"]), conv=conv_resolved_old.id),
    ]
    conv_waiting_old = conversation(
        tenant, Conversation.Status.WAITING, updated=expired(100), last_message=expired(100)
    )
    msg_recent = message(conv_waiting_old, kept(p["messages_days"]))
    msg_for_trace = message(conv_waiting_old, kept(1))
    tenant.refresh_from_db()
    planted = Planted(
        tenant=tenant,
        conv_resolved_old=conv_resolved_old,
        conv_assistant_idle=conversation(
            tenant, assistant, updated=expired(p["conversations_days"]), last_message=None
        ),
        conv_resolved_recent=conversation(
            tenant,
            resolved,
            updated=kept(p["conversations_days"]),
            last_message=kept(p["conversations_days"]),
        ),
        # Resolved long ago by the row's clock, but written in since: kept.
        conv_resolved_recent_message=conversation(
            tenant,
            resolved,
            updated=expired(p["conversations_days"]),
            last_message=kept(p["conversations_days"]),
        ),
        conv_waiting_old=conv_waiting_old,
        deleted_with_conversation=deleted_with_conversation,
        msg_old=message(conv_waiting_old, expired(p["messages_days"])),
        msg_recent=msg_recent,
        msg_streaming_old=message(
            conv_waiting_old, expired(p["messages_days"]), status=Message.Status.STREAMING
        ),
        clip_old=voice_clip(tenant, expired(p["audio_days"])),
        clip_recent=voice_clip(tenant, kept(p["audio_days"])),
        clip_not_kept_old=voice_clip(tenant, expired(p["audio_days"]), kept_audio=False),
        run_old=tool_run(tenant, expired(p["tool_runs_days"])),
        run_recent=tool_run(tenant, kept(p["tool_runs_days"])),
        run_waiting_old=tool_run(tenant, expired(p["tool_runs_days"]), status=RunStatus.AWAITING_APPROVAL),
        handoff_closed_old=handoff(
            conv_waiting_old,
            status=Handoff.Status.RESOLVED,
            closed=expired(p["case_files_days"]),
            created=expired(100),
        ),
        handoff_closed_recent=handoff(
            conv_waiting_old,
            status=Handoff.Status.RETURNED,
            closed=kept(p["case_files_days"]),
            created=expired(100),
        ),
        handoff_open_old=handoff(
            conv_waiting_old, status=Handoff.Status.WAITING, closed=None, created=expired(100)
        ),
        trace_old=trace(msg_recent, expired(p["traces_days"])),
        trace_recent=trace(msg_for_trace, kept(p["traces_days"])),
        gap_old=gap(tenant, expired(p["knowledge_gaps_days"])),
        gap_recent=gap(tenant, kept(p["knowledge_gaps_days"])),
        cached_stale=cached_answer(tenant, tenant.knowledge_epoch, "travel pass zone 3"),
        cached_current=cached_answer(tenant, tenant.knowledge_epoch + 1, "travel pass zone 2"),
    )
    Tenant.objects.filter(pk=tenant.pk).update(knowledge_epoch=tenant.knowledge_epoch + 1)
    tenant.refresh_from_db()
    return planted


def exists(row: models.Model) -> bool:
    return type(row)._default_manager.filter(pk=row.pk).exists()


def fresh(row: models.Model) -> Any:
    return type(row)._default_manager.get(pk=row.pk)
