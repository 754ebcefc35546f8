"""The assistant's answer to one customer turn (docs/architecture/assistant.md).

    customer text ── redacted at receipt (services.message_receive)
      → input checks (injection, abuse): refused politely, the model never sees it
      → retrieval from published knowledge: unavailable → no answer; nothing relevant → abstain, log a gap
      → prompt: instructions + memory within a token budget + passages marked as untrusted data
      → streamed completion (apps.llm.streaming: retries, timeouts, circuit breaker)
      → citations checked against the passages → the reply stored with its final state

An answer runs as an asyncio task in the process that received the message. A newer customer message
cancels it (same process) or is noticed through Redis within a quarter second (another process).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings

from apps.accounts.models import Tenant
from apps.accounts.selectors import tenant_fresh
from apps.audit import metrics
from apps.conversations import selectors, services
from apps.conversations.citations import citations_check
from apps.conversations.models import Message
from apps.conversations.ownership import (
    HandoffTrigger,
    assistant_may_speak,
    conversation_handoff,
    owner_key,
)
from apps.conversations.prompting import (
    STOP_SEQUENCES,
    HistoryItem,
    passage_label,
    prompt_build,
    tool_decision_prompt,
)
from apps.conversations.services import ReplyOutcome
from apps.conversations.stream import ReplyStream
from apps.conversations.toolcalls import ToolsOutcome, tools_carry_out, tools_offered
from apps.conversations.triggers import after_answer_trigger, handover_text, turn_trigger
from apps.core.errors import Conflict
from apps.core.redis import astate_redis, state_key
from apps.guardrails.input_checks import InputVerdict, input_check, neutralize_untrusted
from apps.guardrails.pii import RedactedText, pii_redact
from apps.knowledge.selectors import Retrieval, RetrievalUnavailable, knowledge_search
from apps.knowledge.services import knowledge_gap_record
from apps.llm.embeddings import embedder
from apps.llm.streaming import LLMCallError, StreamOutcome, chat_stream
from apps.llm.tooling import ToolDecision, tools_decide

logger = logging.getLogger(__name__)

ABSTAIN_TEXT = (
    "I couldn't find this in our published policies, so I'd rather not guess. "
    "Would you like me to connect you with a person?"
)
INJECTION_TEXT = (
    "I can only help with questions about our services and policies, and I can't change how I work. "
    "What can I help you with?"
)
ABUSE_TEXT = (
    "I want to help, but I can't continue with messages like that. "
    "If you'd like, I can connect you with a person."
)
REFUSED_TEXT = "I can't help with that here. Would you like me to connect you with a person?"
UNGROUNDED_NOTE = "\n\n(I couldn't match this answer to a specific policy. A person can confirm it for you.)"
TURN_POLL_SECONDS = 0.25


# Answers running in this process, by conversation: a newer message cancels the older answer at once.
_running: dict[uuid.UUID, tuple[asyncio.Task[Any], Run]] = {}


@dataclass
class Run:
    superseded: bool = False
    handed_over: bool = False  # a person took the conversation: the reply stops, marked interrupted


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
    run = run or Run()
    started = time.monotonic()
    tenant = await database_sync_to_async(tenant_fresh)(tenant=tenant)
    try:
        message = await database_sync_to_async(services.reply_start)(
            conversation_id=conversation_id, turn=turn, retry_of=retry_of
        )
    except Conflict:
        return TurnResult(message=None)  # a concurrent retry of the same answer won
    if message is None:
        return TurnResult(message=None)
    stream = ReplyStream(message=message, listener=listener)
    await stream.open()
    watcher = asyncio.create_task(_watch_turn(tenant.id, conversation_id, turn, run, asyncio.current_task()))
    answer = _Answer(tenant=tenant, message=message, stream=stream, received_at=received_at or started)
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
    await _handoff_if_needed(answer, final)
    return TurnResult(
        message=final, timings=answer.timings, retrieval=answer.retrieval_info, tools=answer.tools_info
    )


async def _finish(answer: _Answer, outcome: ReplyOutcome) -> Message:
    if answer.decision_task is not None and not answer.decision_task.done():
        answer.decision_task.cancel()  # superseded or failed before the decision was needed
    await answer.stream.flush()  # the last batched pieces go out before the final event
    if outcome.text and not outcome.text_redacted:
        redacted = await sync_to_async(pii_redact, thread_sensitive=False)(outcome.text)
        outcome = _with(outcome, text_redacted=str(redacted))
    final = await database_sync_to_async(services.reply_finish)(message=answer.message, outcome=outcome)
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


async def _handoff_if_needed(answer: _Answer, final: Message) -> None:
    """Hands the conversation to a person when this turn calls for it (docs/architecture/handoff.md)."""
    trigger = answer.handoff or await database_sync_to_async(after_answer_trigger)(
        message=final, tools=answer.tools.runs if answer.tools else []
    )
    if trigger is None:
        return
    await database_sync_to_async(conversation_handoff)(
        conversation_id=final.conversation_id, tenant_id=final.tenant_id, trigger=trigger
    )


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
            and not await database_sync_to_async(assistant_may_speak)(conversation_id=conversation_id)
        ):
            run.handed_over = True
            task.cancel()
            return


class _Answer:
    def __init__(self, *, tenant: Tenant, message: Message, stream: ReplyStream, received_at: float) -> None:
        self.tenant = tenant
        self.message = message
        self.stream = stream
        self.received_at = received_at
        self.timings: dict[str, float] = {}
        self.retrieval_info: dict[str, Any] = {}
        self.llm: StreamOutcome | None = None
        self.verdict: InputVerdict | None = None
        self.tools: ToolsOutcome | None = None
        self.tools_info: list[dict[str, Any]] = []
        self.decision_tokens = 0
        self.decision_task: asyncio.Task[ToolDecision] | None = None
        # Set when the turn itself calls for a person (asked for one, upset, sensitive, a company rule).
        self.handoff: HandoffTrigger | None = None
        self._separate = False  # tool results were streamed: the model's answer starts a new paragraph

    def _ms(self, since: float) -> float:
        return round((time.monotonic() - since) * 1000, 1)

    async def produce(self) -> ReplyOutcome:
        await self.stream.progress("looking_up")
        turn_messages = await database_sync_to_async(selectors.turn_messages)(
            conversation_id=self.message.conversation_id, turn=self.message.turn
        )
        question = RedactedText.stored("\n".join(m.text_redacted for m in turn_messages))
        self.verdict = input_check(question)
        if not self.verdict.allowed:
            return await self._refuse_input(self.verdict)
        trigger = await database_sync_to_async(turn_trigger)(
            conversation_id=self.message.conversation_id, question=question
        )
        if trigger is not None:
            return await self._hand_over(trigger)
        if await self._over_budget():
            return ReplyOutcome(
                status=Message.Status.FAILED,
                text="",
                error_code="rate_limited",
                offer_handoff=True,
                timings=self.timings,
            )
        first_turn = turn_messages[0].turn if turn_messages else self.message.turn
        history = await database_sync_to_async(selectors.history_messages)(
            conversation_id=self.message.conversation_id, before_turn=first_turn
        )
        memory = [HistoryItem(role=m.role, text=RedactedText.stored(m.text_redacted)) for m in history]
        customer = await database_sync_to_async(selectors.conversation_customer)(
            conversation_id=self.message.conversation_id
        )
        # The tool decision runs while retrieval does: on a small model it costs more than retrieval.
        decision_task = await self._decide_tools(question, memory, customer)
        t = time.monotonic()
        try:
            retrieval = await self._retrieve(question)
        except RetrievalUnavailable:
            if decision_task is not None:
                decision_task.cancel()
            self.timings["retrieval_ms"] = self._ms(t)
            await self._trace([], {"error": "retrieval_unavailable"})
            return ReplyOutcome(
                status=Message.Status.FAILED,
                text="",
                error_code="temporarily_unavailable",
                offer_handoff=True,
                timings=self.timings,
            )
        self.timings["retrieval_ms"] = self._ms(t)
        self.retrieval_info = _retrieval_summary(retrieval)
        if decision_task is not None:
            await self._carry_out_tools(await decision_task, customer, question, retrieval.answerable)
        if not retrieval.answerable:
            if self.tools is not None and self.tools.acted:
                return await self._tools_only()
            return await self._abstain(question, retrieval)
        built = prompt_build(
            company=self.tenant.name,
            question=question,
            passages=retrieval.passages,
            history=memory,
            facts=self.tools.facts if self.tools else None,
        )
        prompt_rows = [{"role": m.role, "content": m.content} for m in built.messages]
        await self._trace(prompt_rows, self.retrieval_info)
        await self.stream.progress("thinking")
        t = time.monotonic()
        try:
            self.llm = await chat_stream(
                built.messages,
                on_delta=self._delta,
                max_tokens=settings.LLM_MAX_TOKENS,
                temperature=settings.LLM_TEMPERATURE,
                stop=STOP_SEQUENCES,
            )
        except LLMCallError as exc:
            return await self._llm_failed(exc)
        self.timings["llm_ttft_ms"] = round(self.llm.ttft_seconds * 1000, 1)
        self.timings["total_ms"] = self._ms(self.received_at)
        if self.stream.first_piece_at is not None:
            self.timings["ttft_ms"] = round((self.stream.first_piece_at - self.received_at) * 1000, 1)
        self.timings["generation_ms"] = self._ms(t)
        await self._count_tokens(self.llm)
        await self._trace(
            prompt_rows, self.retrieval_info, attempts=self.llm.attempts, endpoint=self.llm.endpoint
        )
        # Whatever of the prompt's markup the model echoed does not belong in the stored answer.
        checked = citations_check(neutralize_untrusted(self.stream.text).strip(), retrieval.passages)
        # Facts from the company's own systems ground an answer as a cited policy does.
        grounded = checked.grounded or bool(self.tools and self.tools.facts)
        text = checked.text if grounded else checked.text + UNGROUNDED_NOTE
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=text,
            citations=checked.citations,
            offer_handoff=not grounded or bool(self.tools and self.tools.offer_handoff),
            timings=self.timings,
            model=self.llm.model,
            prompt_tokens=self.llm.prompt_tokens,
            completion_tokens=self.llm.completion_tokens,
        )

    async def _delta(self, piece: str) -> None:
        if self._separate:
            piece = piece.lstrip()
            if not piece:
                return
            self._separate = False
            piece = "\n\n" + piece
        await self.stream.append(piece)

    async def _decide_tools(
        self, question: RedactedText, memory: list[HistoryItem], customer: str | None
    ) -> asyncio.Task[ToolDecision] | None:
        specs = await tools_offered(tenant=self.tenant, customer=customer)
        if not specs:
            return None
        messages = tool_decision_prompt(company=self.tenant.name, question=question, history=memory)
        self.decision_task = asyncio.create_task(
            tools_decide(messages, tools=[spec.function_spec() for spec in specs])
        )
        return self.decision_task

    async def _carry_out_tools(
        self, decision: ToolDecision, customer: str | None, question: RedactedText, answerable: bool
    ) -> None:
        self.timings["tool_decision_ms"] = round(decision.seconds * 1000, 1)
        self.decision_tokens = decision.prompt_tokens + decision.completion_tokens
        if not decision.calls:
            return
        t = time.monotonic()
        self.tools = await tools_carry_out(
            tenant=self.tenant,
            decision=decision,
            customer=customer,
            conversation_id=self.message.conversation_id,
            message_id=self.message.id,
            progress=self._tool_progress,
            question=question,
            answered_by_policies=answerable,
        )
        self.timings["tools_ms"] = self._ms(t)
        self.tools_info = [
            {
                "run_id": str(run.id),
                "tool": run.tool,
                "arguments": run.arguments,
                "status": run.status,
                "approval": run.approval,
                "error_code": run.error_code,
                "summary": run.summary,
                "duration_ms": run.duration_ms,
            }
            for run in self.tools.runs
        ]
        self.retrieval_info["tools"] = self.tools_info
        if self.tools.said:
            await self.stream.append("\n\n".join(self.tools.said))
            self._separate = True

    async def _hand_over(self, trigger: HandoffTrigger) -> ReplyOutcome:
        """This turn is for a person: say so in one honest sentence; the handoff follows the reply."""
        self.handoff = trigger
        text = handover_text(trigger)
        await self._trace([], {"handoff": trigger.reason})
        await self.stream.append(text)
        self.timings["total_ms"] = self._ms(self.received_at)
        return ReplyOutcome(status=Message.Status.COMPLETE, text=text, timings=self.timings)

    async def _tool_progress(self, text: str) -> None:
        await self.stream.progress("tool", text=text)

    async def _tools_only(self) -> ReplyOutcome:
        """The policies hold nothing on this, but a tool answered it: its facts are the answer."""
        assert self.tools is not None
        await self._trace([], self.retrieval_info)
        self.timings["total_ms"] = self._ms(self.received_at)
        if self.stream.first_piece_at is not None:
            self.timings["ttft_ms"] = round((self.stream.first_piece_at - self.received_at) * 1000, 1)
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=self.stream.text,
            offer_handoff=self.tools.offer_handoff,
            timings=self.timings,
        )

    async def _retrieve(self, question: RedactedText) -> Retrieval:
        try:
            # Embedding is CPU work: off the shared database thread so other conversations keep moving.
            [vector] = await sync_to_async(embedder().embed, thread_sensitive=False)([str(question)])
        except Exception as exc:
            logger.warning("query embedding failed: %s", exc.__class__.__name__)
            raise RetrievalUnavailable() from exc
        return await database_sync_to_async(knowledge_search)(
            tenant=self.tenant,
            query=question,
            k=settings.ASSISTANT_PASSAGES,
            threshold=self.tenant.abstain_threshold,
            query_vector=vector,
        )

    async def _refuse_input(self, verdict: InputVerdict) -> ReplyOutcome:
        text = ABUSE_TEXT if verdict.action == "refuse_abuse" else INJECTION_TEXT
        logger.warning(
            "customer message in conversation %s refused by input checks: %s",
            self.message.conversation_id,
            ",".join(verdict.reasons),
        )
        await self._trace([], {}, input_only=True)
        await self.stream.append(text)
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=text,
            guardrail_reasons=verdict.reasons,
            offer_handoff=verdict.action == "refuse_abuse",
            timings=self.timings,
        )

    async def _abstain(self, question: RedactedText, retrieval: Retrieval) -> ReplyOutcome:
        await database_sync_to_async(knowledge_gap_record)(
            tenant=self.tenant,
            question=question,
            top_similarity=retrieval.top_similarity,
            threshold=retrieval.threshold,
            nearest=[
                {"title": p.document_title, "section": " > ".join(p.section_path), "similarity": p.similarity}
                for p in retrieval.passages[:3]
            ],
            conversation_ref=self.message.conversation_id,
            message_ref=self.message.id,
        )
        await self._trace([], self.retrieval_info)
        await self.stream.append(ABSTAIN_TEXT)
        self.timings["total_ms"] = self._ms(self.received_at)
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=ABSTAIN_TEXT,
            abstained=True,
            offer_handoff=True,
            timings=self.timings,
        )

    async def _llm_failed(self, exc: LLMCallError) -> ReplyOutcome:
        self.timings["total_ms"] = self._ms(self.received_at)
        logger.warning(
            "LLM call for reply %s failed: %s after %d attempt(s): %s",
            self.message.id,
            exc.kind,
            exc.attempts,
            exc.detail,
        )
        if exc.kind == "refused":
            text = self.stream.text + ("\n\n" if self.stream.text else "") + REFUSED_TEXT
            return ReplyOutcome(
                status=Message.Status.COMPLETE,
                text=text,
                offer_handoff=True,
                error_code="refused",
                timings=self.timings,
            )
        if exc.kind == "cut" and self.stream.text:
            return ReplyOutcome(
                status=Message.Status.INTERRUPTED,
                text=self.stream.text,
                error_code="interrupted",
                offer_handoff=True,
                timings=self.timings,
            )
        return ReplyOutcome(
            status=Message.Status.FAILED,
            text="",
            error_code="llm_unavailable",
            offer_handoff=True,
            timings=self.timings,
        )

    async def _trace(
        self,
        prompt: list[dict[str, str]],
        retrieval: dict[str, Any],
        *,
        attempts: int = 0,
        endpoint: str = "",
        input_only: bool = False,
    ) -> None:
        verdict = self.verdict
        check = {"action": verdict.action, "reasons": list(verdict.reasons)} if verdict else {}
        await database_sync_to_async(services.trace_record)(
            message=self.message,
            prompt=prompt,
            retrieval={} if input_only else retrieval,
            input_check=check,
            attempts=attempts,
            endpoint=endpoint,
        )

    def _budget_key(self) -> str:
        day = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
        return state_key("tokens", self.tenant.id, day)

    async def _over_budget(self) -> bool:
        if not self.tenant.daily_token_budget:
            return False
        try:
            used = int(await astate_redis().get(self._budget_key()) or 0)
        except Exception:
            return False  # the budget is a limit, not the record: unknown usage does not stop customers
        if used >= self.tenant.daily_token_budget:
            logger.warning("tenant %s reached its daily token budget", self.tenant.slug)
            return True
        return False

    async def _count_tokens(self, llm: StreamOutcome) -> None:
        used = (llm.prompt_tokens or 0) + llm.completion_tokens + self.decision_tokens
        try:
            client = astate_redis()
            async with client.pipeline(transaction=False) as pipe:
                pipe.incrby(self._budget_key(), used)
                pipe.expire(self._budget_key(), 2 * 86400)
                await pipe.execute()
        except Exception as exc:
            logger.warning("token usage not counted: %s", exc.__class__.__name__)

    def record_metrics(self, final: Message) -> None:
        slug = self.tenant.slug
        status = "abstained" if final.abstained else final.status
        if final.error_code == "refused":
            status = "refused"
        tps = None
        if self.llm and self.stream.first_piece_at and self.stream.last_piece_at and self.stream.pieces > 1:
            span = self.stream.last_piece_at - self.stream.first_piece_at
            tps = (self.stream.pieces - 1) / span if span > 0 else None
        metrics.reply_observe(
            tenant=slug,
            status=status,
            ttft_seconds=self.timings["ttft_ms"] / 1000 if "ttft_ms" in self.timings else None,
            tokens_per_second=tps,
            prompt_tokens=(self.llm.prompt_tokens or 0) if self.llm else 0,
            completion_tokens=self.llm.completion_tokens if self.llm else 0,
        )
        if final.abstained:
            metrics.abstention_count(tenant=slug)
        if final.error_code and final.error_code != "refused":
            metrics.error_count(tenant=slug, code=final.error_code)


def _retrieval_summary(retrieval: Retrieval) -> dict[str, Any]:
    return {
        "threshold": retrieval.threshold,
        "top_similarity": retrieval.top_similarity,
        "answerable": retrieval.answerable,
        "mode": retrieval.mode,
        "model": retrieval.model,
        "passages": [
            {
                "n": n,
                "chunk_id": str(p.chunk_id),
                "label": passage_label(p),
                "similarity": p.similarity,
            }
            for n, p in enumerate(retrieval.passages, start=1)
        ],
    }
