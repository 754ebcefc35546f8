"""One sweep per kind of data: which rows of a company have expired at a cutoff, and what happens to them.

Each sweep works in bounded batches: a transaction picks at most `batch` expired ids (`pk__in` a LIMITed
subquery), deletes or blanks those rows, and commits, then the next batch starts. A run over millions of
rows therefore never holds one long transaction, never locks a whole table, and stops cleanly between
batches when its worker is killed (what committed stays done; the rest is found again by the next run).

The expiry condition is applied again in the outer statement, not only in the subquery, so two runs that
overlap (a slow run still going when beat sends the next) never count a row twice: under READ COMMITTED,
PostgreSQL re-checks the outer condition on a row another run changed meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.db.models import Q, QuerySet

from apps.accounts.models import Tenant
from apps.conversations.models import AssistantTrace, CachedAnswer, Conversation, Message
from apps.handoff.models import Handoff
from apps.knowledge.models import KnowledgeGap
from apps.tools.models import FINAL_STATUSES, ToolRun
from apps.voice.models import VoiceClip

# What a message whose words expired says instead. Also how a blanked message is recognised, so a
# message is blanked once and the next run skips it.
REMOVED_TEXT = "[Removed: older than this company keeps messages]"

# Conversations a person owes an answer to are never deleted, however old: only resolved ones, and ones
# left with the assistant (nobody is waiting on them; a widget session lasts 30 days by default).
CLOSED_CONVERSATION = (Conversation.Status.RESOLVED, Conversation.Status.ASSISTANT)
CLOSED_HANDOFF = (Handoff.Status.RESOLVED, Handoff.Status.RETURNED, Handoff.Status.CANCELLED)


@dataclass(frozen=True)
class Sweep:
    kind: str
    # The policy field whose period applies; None: always swept (nothing personal, merely dead rows).
    period: str | None
    model: type[models.Model]
    # (tenant, cutoff) -> the expiry condition.
    expired: Callable[[Tenant, datetime], Q]
    # (the batch's queryset, now) -> how many rows of `model` were deleted or blanked.
    apply: Callable[[QuerySet[Any], datetime], int]


def _delete(queryset: QuerySet[Any], now: datetime) -> int:
    _, per_model = queryset.delete()
    return per_model.get(queryset.model._meta.label, 0)


def _conversations_delete(queryset: QuerySet[Any], now: datetime) -> int:
    """A conversation goes with everything of it: the database cascades its messages, events, deliveries,
    traces, ratings, handoffs (case files), notes, tickets and email threads; its tool runs and voice
    clips name it by id only (their apps sit below conversations), so they are deleted here, in the same
    transaction."""
    rows = list(queryset.values_list("pk", "tenant_id"))
    ids: list[uuid.UUID] = [pk for pk, _ in rows]
    if not ids:
        return 0
    tenant_id = rows[0][1]
    ToolRun.objects.filter(tenant_id=tenant_id, conversation_ref__in=ids).delete()
    VoiceClip.objects.filter(tenant_id=tenant_id, conversation_id__in=ids).delete()
    return _delete(Conversation.objects.filter(pk__in=ids), now)


def _conversations_expired(tenant: Tenant, cutoff: datetime) -> Q:
    # `updated_at` moves with every change to the conversation (resolving it, a rating, a note of the
    # session ending); `last_message_at` with every message.
    return Q(tenant=tenant, status__in=CLOSED_CONVERSATION, updated_at__lt=cutoff) & (
        Q(last_message_at__isnull=True) | Q(last_message_at__lt=cutoff)
    )


def _messages_expired(tenant: Tenant, cutoff: datetime) -> Q:
    return (
        Q(tenant=tenant, created_at__lt=cutoff)
        & ~Q(status=Message.Status.STREAMING)
        & ~Q(text=REMOVED_TEXT, text_redacted=REMOVED_TEXT)
    )


def _messages_blank(queryset: QuerySet[Any], now: datetime) -> int:
    return queryset.update(text=REMOVED_TEXT, text_redacted=REMOVED_TEXT, pii_types=[], updated_at=now)


def _audio_expired(tenant: Tenant, cutoff: datetime) -> Q:
    return Q(tenant=tenant, audio_kept=True, audio__isnull=False, created_at__lt=cutoff)


def _audio_delete(queryset: QuerySet[Any], now: datetime) -> int:
    return queryset.update(audio=None, audio_deleted_at=now, updated_at=now)


def _tool_runs_expired(tenant: Tenant, cutoff: datetime) -> Q:
    # A run still waiting (approval, queue, lease) needs its arguments to run: only finished ones.
    blank = Q(arguments={}, arguments_raw="", result__isnull=True, summary="")
    return Q(tenant=tenant, status__in=FINAL_STATUSES, created_at__lt=cutoff) & ~blank


def _tool_runs_blank(queryset: QuerySet[Any], now: datetime) -> int:
    # The summary is rendered from the result (what the customer was told), so it goes with it.
    return queryset.update(arguments={}, arguments_raw="", result=None, summary="", updated_at=now)


def _case_files_expired(tenant: Tenant, cutoff: datetime) -> Q:
    closed_long_ago = Q(closed_at__lt=cutoff) | Q(closed_at__isnull=True, created_at__lt=cutoff)
    return Q(tenant=tenant, status__in=CLOSED_HANDOFF) & closed_long_ago & ~Q(case_file={})


def _case_files_blank(queryset: QuerySet[Any], now: datetime) -> int:
    return queryset.update(case_file={}, updated_at=now)


def _created_before(tenant: Tenant, cutoff: datetime) -> Q:
    return Q(tenant=tenant, created_at__lt=cutoff)


def _cached_answers_stale(tenant: Tenant, cutoff: datetime) -> Q:
    # Rows of an older knowledge epoch are never served again (answer_cache.py); the cache deletes them
    # only when the company stores its next answer, which may never come.
    current = Tenant.objects.filter(pk=tenant.pk).values_list("knowledge_epoch", flat=True).first()
    return Q(tenant=tenant, knowledge_epoch__lt=current or 0)


# In this order: a conversation deleted first is not blanked message by message afterwards.
SWEEPS: tuple[Sweep, ...] = (
    Sweep("conversations", "conversations_days", Conversation, _conversations_expired, _conversations_delete),
    Sweep("messages", "messages_days", Message, _messages_expired, _messages_blank),
    Sweep("audio", "audio_days", VoiceClip, _audio_expired, _audio_delete),
    Sweep("tool_runs", "tool_runs_days", ToolRun, _tool_runs_expired, _tool_runs_blank),
    Sweep("case_files", "case_files_days", Handoff, _case_files_expired, _case_files_blank),
    Sweep("traces", "traces_days", AssistantTrace, _created_before, _delete),
    Sweep("knowledge_gaps", "knowledge_gaps_days", KnowledgeGap, _created_before, _delete),
    Sweep("cached_answers", None, CachedAnswer, _cached_answers_stale, _delete),
)
KINDS: tuple[str, ...] = tuple(s.kind for s in SWEEPS)


@dataclass(frozen=True)
class SweepResult:
    count: int
    batches: int


def sweep_run(sweep: Sweep, *, tenant: Tenant, cutoff: datetime, now: datetime, batch: int) -> SweepResult:
    """Deletes or blanks what `sweep` finds expired at `cutoff`, `batch` rows per transaction, until a
    batch finds fewer than `batch` rows."""
    expired = sweep.expired(tenant, cutoff)
    manager = sweep.model._default_manager
    count = batches = 0
    while True:
        with transaction.atomic():
            chosen = manager.filter(expired).order_by().values("pk")[:batch]
            done = sweep.apply(manager.filter(expired, pk__in=chosen), now)
        if done == 0:
            break
        count, batches = count + done, batches + 1
        if done < batch:
            break
    return SweepResult(count=count, batches=batches)
