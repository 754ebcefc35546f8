"""The spans of each reply, stored with it, and the waterfall agents see next to it (docs/architecture/
tracing.md).

A turn's spans come from up to three places, in any order:

- the web process that answered: claimed from its turn recorder when the turn span ends
  (`turn_spans_store`, called by apps.conversations.assistant);
- Celery workers (the tool run, the case file), when their task ends (`turn_spans_late`, the recorder's
  sink in every process): added to the reply of that trace if it is stored already, and parked in Redis
  for PENDING_SECONDS in case it is not;
- both, rarely: a span can be stored twice, so the selector keeps one per span id.

The store writes the reply's row first and reads Redis after, while a worker parks in Redis first and
updates rows after: whichever runs second sees the other's spans, so none is lost.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Func, JSONField, Value

from apps.accounts.models import Tenant
from apps.conversations.models import AssistantTrace, Message
from apps.conversations.selectors import access_conversation
from apps.core.errors import NotFound
from apps.core.redis import state_key, state_redis

logger = logging.getLogger(__name__)

PENDING_SECONDS = 900
MAX_STORED_SPANS = 400

# What agents read for each stage (span names are ours, or Celery's and httpx's).
STAGE_LABELS = {
    "widget.message": "Message received",
    "guardrails.redact": "Redaction",
    "assistant.turn": "Answer",
    "turn.context": "Context",
    "guardrails.input_check": "Input checks",
    "handoff.trigger": "Handoff rules",
    "retrieval.embed": "Question embedded",
    "llm.rewrite": "Follow-up rewrite",
    "tools.decide": "Tool decision",
    "tools.run": "Tools",
    "tool.execute": "Tool run",
    "answer_cache.lookup": "Answer cache",
    "retrieval": "Retrieval",
    "evidence": "Evidence",
    "llm.compose": "Model",
    "reply.finish": "Reply stored",
    "casefile.build": "Case file",
}


class _JsonbAppend(Func):
    """`spans || new`: appends in the UPDATE itself, so two writers never lose each other's spans."""

    template = "%(expressions)s"
    arg_joiner = " || "
    output_field = JSONField()


def _pending_key(trace_id: str) -> str:
    return state_key("trace", "pending", trace_id)


def turn_spans_store(
    *, tenant_id: uuid.UUID, message_id: uuid.UUID, trace_id: str, spans: list[dict[str, Any]]
) -> None:
    """Stores the reply's trace id and the spans its process recorded, then any a worker parked."""
    spans = spans[:MAX_STORED_SPANS]
    updated = AssistantTrace.objects.filter(message_id=message_id).update(trace_id=trace_id, spans=spans)
    if not updated:
        # A turn that ended before the pipeline recorded anything (cancelled, retrieval down).
        AssistantTrace.objects.get_or_create(
            message_id=message_id, defaults={"tenant_id": tenant_id, "trace_id": trace_id, "spans": spans}
        )
    parked = _pending_take(trace_id)
    if parked:
        _append(trace_id, parked)


def turn_spans_late(trace_id: str, spans: list[dict[str, Any]]) -> None:
    """The recorder's sink: spans of `trace_id` recorded in a process that did not answer the turn."""
    if not spans:
        return
    try:
        client = state_redis()
        key = _pending_key(trace_id)
        with client.pipeline(transaction=False) as pipe:
            pipe.rpush(key, *(json.dumps(row) for row in spans))
            pipe.expire(key, PENDING_SECONDS)
            pipe.execute()
    except Exception as exc:  # without Redis, the reply (if stored already) still gets them below
        logger.warning("spans of trace %s not parked: %s", trace_id, exc.__class__.__name__)
    _append(trace_id, spans)


def _pending_take(trace_id: str) -> list[dict[str, Any]]:
    try:
        client = state_redis()
        key = _pending_key(trace_id)
        with client.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raw, _ = pipe.execute()
    except Exception as exc:
        logger.warning("parked spans of trace %s not read: %s", trace_id, exc.__class__.__name__)
        return []
    return [json.loads(item) for item in raw]


def _append(trace_id: str, spans: list[dict[str, Any]]) -> None:
    AssistantTrace.objects.filter(trace_id=trace_id).update(
        spans=_JsonbAppend(F("spans"), Value(spans, output_field=JSONField()))
    )


# ---- the waterfall


@dataclass(frozen=True)
class Stage:
    span_id: str
    parent_id: str | None
    name: str
    label: str
    depth: int
    offset_ms: float  # from the start of the turn's first span
    duration_ms: float
    status: str  # ok | error | unset
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Waterfall:
    message_id: str
    trace_id: str
    total_ms: float
    stages: list[Stage]


def stage_label(name: str, attributes: dict[str, Any]) -> str:
    if name in STAGE_LABELS:
        return STAGE_LABELS[name]
    task = name.split("/", 1)[1].rsplit(".", 1)[-1] if "/" in name else ""
    if name.startswith("apply_async/"):
        return f"Queued: {task}"
    if name.startswith("run/"):
        return f"Worker: {task}"
    host = attributes.get("server.address")
    return f"HTTP {name}" + (f" ({host})" if host else "")


def turn_waterfall(
    *, tenant: Tenant, conversation_id: uuid.UUID | str, message_id: uuid.UUID | str
) -> Waterfall:
    """The stages of one assistant reply of the tenant's conversation, in start order; NotFound for a
    message that is not an assistant reply of that conversation."""
    conversation = access_conversation(tenant=tenant, conversation_id=conversation_id)
    try:
        key = uuid.UUID(str(message_id))
    except ValueError:
        raise NotFound() from None
    message = Message.objects.filter(
        id=key, conversation=conversation, tenant=tenant, role=Message.Role.ASSISTANT
    ).first()
    if message is None:
        raise NotFound()
    row = AssistantTrace.objects.filter(message=message).values("trace_id", "spans").first()
    if row is None or not row["spans"]:
        return Waterfall(
            message_id=str(message.id), trace_id=row["trace_id"] if row else "", total_ms=0.0, stages=[]
        )
    return _waterfall(str(message.id), row["trace_id"], row["spans"])


def _waterfall(message_id: str, trace_id: str, spans: list[dict[str, Any]]) -> Waterfall:
    unique: dict[str, dict[str, Any]] = {}
    for row in spans:
        if row.get("trace_id", trace_id) == trace_id:
            unique.setdefault(str(row["span_id"]), row)
    start = min(float(row["start_ms"]) for row in unique.values())
    end = max(float(row["start_ms"]) + float(row["duration_ms"]) for row in unique.values())

    def depth(row: dict[str, Any]) -> int:
        level, parent, seen = 0, row.get("parent_id"), set()
        while parent in unique and parent not in seen:
            seen.add(parent)
            level, parent = level + 1, unique[parent].get("parent_id")
        return level

    stages = [
        Stage(
            span_id=span_id,
            parent_id=row.get("parent_id") if row.get("parent_id") in unique else None,
            name=str(row["name"]),
            label=stage_label(str(row["name"]), row.get("attributes") or {}),
            depth=depth(row),
            offset_ms=round(float(row["start_ms"]) - start, 1),
            duration_ms=round(float(row["duration_ms"]), 1),
            status=str(row.get("status") or "unset"),
            attributes=dict(row.get("attributes") or {}),
        )
        for span_id, row in unique.items()
    ]
    stages.sort(key=lambda s: (s.offset_ms, s.depth))
    return Waterfall(message_id=message_id, trace_id=trace_id, total_ms=round(end - start, 1), stages=stages)
