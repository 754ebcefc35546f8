"""The assistant's answer to one customer turn: its lifecycle (docs/architecture/assistant.md).

The answer itself is produced by the pipeline in apps.conversations.answering (context, input checks,
tools, cache, evidence, quote or compose). Here: starting it as an asyncio task in the process that
received the message, stopping it when a newer customer message arrives (same process: cancelled at
once; another process: noticed through Redis within a quarter second) or a person takes the
conversation, and storing the final reply with its metrics and any handoff it calls for.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from apps.accounts.models import Tenant
from apps.accounts.selectors import tenant_fresh
from apps.conversations import hooks, services
from apps.conversations.answering.outcomes import ABSTAIN_TEXT, ABUSE_TEXT, INJECTION_TEXT
from apps.conversations.answering.pipeline import Answer
from apps.conversations.models import Message
from apps.conversations.ownership import assistant_may_speak, conversation_handoff, owner_key
from apps.conversations.services import ReplyOutcome
from apps.conversations.stream import ReplyStream
from apps.conversations.triggers import after_answer_trigger
from apps.conversations.turn_trace import turn_spans_store
from apps.core import tracing
from apps.core.dbasync import db_async
from apps.core.errors import Conflict
from apps.core.redis import astate_redis, state_key
from apps.core.rehearsal import rehearsing
from apps.guardrails.pii import pii_redact

__all__ = ["ABSTAIN_TEXT", "ABUSE_TEXT", "INJECTION_TEXT", "TurnResult", "assistant_turn_run"]

logger = logging.getLogger(__name__)

TURN_POLL_SECONDS = 0.25


# Answers running in this process, by conversation: a newer message cancels the older answer at once.
_running: dict[uuid.UUID, tuple[asyncio.Task[Any], Run]] = {}


@dataclass
class Run:
    superseded: bool = False
    handed_over: bool = False  # a person took the conversation: the reply stops, marked interrupted
    message_id: uuid.UUID | None = None  # the reply, once started: its spans are stored with it


def assistant_cancel_local(conversation_id: uuid.UUID) -> None:
    """Stops this process's answer in a conversation a person has just taken (registered as a reply-cancel
    listener in ConversationsConfig.ready; other processes notice the owner marker in Redis)."""
    running = _running.get(conversation_id)
    if running is not None and not running[0].done():
        running[1].handed_over = True
        running[0].get_loop().call_soon_threadsafe(running[0].cancel)


@dataclass
class TurnResult:
    message: Message | None  # None: the turn was superseded before the answer started
    timings: dict[str, float] = field(default_factory=dict)
    retrieval: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)


def assistant_turn_schedule(
    *,
    tenant: Tenant,
    conversation_id: uuid.UUID,
    turn: int,
    received_at: float | None = None,
    retry_of: uuid.UUID | None = None,
) -> asyncio.Task[TurnResult]:
    """Starts the answer for `turn` in the background, cancelling this process's answer to an older turn."""
    previous = _running.get(conversation_id)
    if previous is not None and not previous[0].done() and retry_of is None:
        previous[1].superseded = True
        previous[0].cancel()
    run = Run()
    task = asyncio.create_task(
        assistant_turn_run(
            tenant=tenant,
            conversation_id=conversation_id,
            turn=turn,
            received_at=received_at,
            retry_of=retry_of,
            run=run,
        )
    )
    _running[conversation_id] = (task, run)

    def forget(done: asyncio.Task[TurnResult]) -> None:
        if _running.get(conversation_id, (None,))[0] is done:
            del _running[conversation_id]
        if not done.cancelled() and done.exception() is not None:
            logger.error("assistant turn failed", exc_info=done.exception())

    task.add_done_callback(forget)
    return task


async def assistant_turn_run(
    *,
    tenant: Tenant,
    conversation_id: uuid.UUID,
    turn: int,
    received_at: float | None = None,
    retry_of: uuid.UUID | None = None,
    run: Run | None = None,
    listener: Callable[[str], None] | None = None,
) -> TurnResult:
    """The turn inside its span; once the span has ended, the reply stores the turn's spans
    (apps/conversations/turn_trace.py), however the turn ended."""
    run = run or Run()
    attributes: dict[str, str | int] = {
        "helpdesk.conversation_id": str(conversation_id),
        "helpdesk.turn": turn,
    }
    trace_id = ""
    try:
        with tracing.turn_span("assistant.turn", attributes) as span:
            trace_id = tracing.current_trace_id()
            result = await _turn_run(
                tenant=tenant,
                conversation_id=conversation_id,
                turn=turn,
                received_at=received_at,
                retry_of=retry_of,
                run=run,
                listener=listener,
            )
            if result.message is not None:
                span.set_attribute("helpdesk.status", str(result.message.status))
        return result
    finally:
        spans = tracing.turn_spans_claim(trace_id)
        if run.message_id is not None and trace_id:
            try:
                # The store's own queries are not part of the turn.
                with tracing.untraced():
                    await asyncio.shield(
                        db_async(turn_spans_store)(
                            tenant_id=tenant.id, message_id=run.message_id, trace_id=trace_id, spans=spans
                        )
                    )
            except Exception as exc:  # the waterfall is a convenience: the reply is stored already
                logger.warning("spans of reply %s not stored: %s", run.message_id, exc.__class__.__name__)


async def _turn_run(
    *,
    tenant: Tenant,
    conversation_id: uuid.UUID,
    turn: int,
    received_at: float | None,
    retry_of: uuid.UUID | None,
    run: Run,
    listener: Callable[[str], None] | None,
) -> TurnResult:
    started = time.monotonic()
    tenant = await db_async(tenant_fresh)(tenant=tenant)
    try:
        message = await db_async(services.reply_start)(
            conversation_id=conversation_id, turn=turn, retry_of=retry_of
        )
    except Conflict:
        return TurnResult(message=None)  # a concurrent retry of the same answer won
    if message is None:
        return TurnResult(message=None)
    run.message_id = message.id
    stream = ReplyStream(message=message, listener=listener)
    await stream.open()
    watcher = asyncio.create_task(_watch_turn(tenant.id, conversation_id, turn, run, asyncio.current_task()))
    answer = Answer(tenant=tenant, message=message, stream=stream, received_at=received_at or started)
    try:
        try:
            outcome = await answer.produce()
        except asyncio.CancelledError:
            # Superseded by a newer message, taken over by a person (whose transition has marked the reply
            # interrupted already), or the process is stopping: keep what was written, marked.
            status = Message.Status.SUPERSEDED if run.superseded else Message.Status.INTERRUPTED
            outcome = ReplyOutcome(
                status=status,
                text=stream.text,
                error_code="" if run.superseded else "interrupted",
                timings=answer.timings,
            )
            await asyncio.shield(_finish(answer, outcome))
            raise
        finally:
            watcher.cancel()
        final = await _finish(answer, outcome)
    finally:
        # Whatever failed (the database going away mid-answer, say), the writer stops beating: a reply
        # left streaming must look stale, so a reconnect's sweep marks it interrupted.
        await asyncio.shield(stream.close())
    await _handoff_if_needed(answer, final)
    await _reply_finished(final)
    return TurnResult(
        message=final, timings=answer.timings, retrieval=answer.retrieval_info, tools=answer.tools_info
    )


async def _finish(answer: Answer, outcome: ReplyOutcome) -> Message:
    with tracing.span("reply.finish", {"helpdesk.status": str(outcome.status)}):
        return await _finish_reply(answer, outcome)


async def _finish_reply(answer: Answer, outcome: ReplyOutcome) -> Message:
    await answer.stream.flush()  # the last batched pieces go out before the final event
    if outcome.text and not outcome.text_redacted:
        redacted = await sync_to_async(pii_redact, thread_sensitive=False)(outcome.text)
        outcome = _with(outcome, text_redacted=str(redacted))
    final = await db_async(services.reply_finish)(message=answer.message, outcome=outcome)
    await answer.stream.close()
    await sync_to_async(answer.record_metrics, thread_sensitive=False)(final)
    logger.info(
        "assistant reply %s in conversation %s: %s, ttft %s ms, total %s ms, %s tokens, %s passages",
        final.id,
        final.conversation_id,
        final.status,
        answer.timings.get("ttft_ms", "-"),
        answer.timings.get("total_ms", "-"),
        final.completion_tokens or 0,
        len(answer.retrieval_info.get("passages", [])),
    )
    return final


def _with(outcome: ReplyOutcome, **changes: Any) -> ReplyOutcome:
    return ReplyOutcome(**{**outcome.__dict__, **changes})


async def _handoff_if_needed(answer: Answer, final: Message) -> None:
    """Hands the conversation to a person when this turn calls for it (docs/architecture/handoff.md).
    A rehearsal (a golden answer being checked) has nobody to hand over."""
    if rehearsing():
        return
    trigger = answer.handoff or await db_async(after_answer_trigger)(
        message=final, tools=answer.tools.runs if answer.tools else []
    )
    if trigger is None:
        return
    await db_async(conversation_handoff)(
        conversation_id=final.conversation_id, tenant_id=final.tenant_id, trigger=trigger
    )


async def _reply_finished(final: Message) -> None:
    """Tells the apps that follow replies (hooks.reply_finished_listeners: a running canary is evaluated);
    the reply is stored already, so a listener's failure is logged, never the customer's problem."""
    if rehearsing():
        return
    for listener in hooks.reply_finished_listeners():
        try:
            await db_async(listener)(final)
        except Exception:
            logger.exception("reply-finished listener failed for reply %s", final.id)


async def _watch_turn(
    tenant_id: uuid.UUID, conversation_id: uuid.UUID, turn: int, run: Run, task: asyncio.Task[Any] | None
) -> None:
    """Cancels this answer when another process stores a newer customer message, or a person takes the
    conversation."""
    turn_key = state_key("turn", tenant_id, conversation_id)
    owner = owner_key(tenant_id, conversation_id)
    while True:
        await asyncio.sleep(TURN_POLL_SECONDS)
        try:
            raw, holder = await astate_redis().mget([turn_key, owner])
        except Exception:  # noqa: S112
            continue  # without Redis the answer is still checked against the database when it is saved
        if task is None:
            continue
        if raw is not None and int(raw) > turn:
            run.superseded = True
            task.cancel()
            return
        # The marker is a hint (a failed write could leave an old one); the database decides.
        if (
            holder is not None
            and holder not in (b"assistant", "assistant")
            and not await db_async(assistant_may_speak)(conversation_id=conversation_id)
        ):
            run.handed_over = True
            task.cancel()
            return
