"""One customer turn, as stages (docs/architecture/assistant.md):

    context (one read) ─ input checks ─ handoff triggers ─ question vector (once, off the event loop)
      → tool choice by embeddings (apps.tools.choice): facts rendered by code stream first
      → answer cache (only for turns that use no account facts and no memory)
      → evidence: retriever pool → ranked sentences → neighbours → confidence ── low: abstain
      → the evidence, quoted and cited, streamed at once                       (`quote` ends here)
      → `compose`: at most three model sentences, each checked before it is shown
      → stored reply, trace, cache entry

Every stage takes the TurnContext and what the stages before it returned. The reply's lifecycle
(scheduling, supersession, the final write) stays in apps.conversations.assistant.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async

from apps.conversations import answer_cache
from apps.conversations.answering.compose import Composed, compose_checked, compose_messages
from apps.conversations.answering.context import TurnContext
from apps.conversations.answering.evidence import Evidence, EvidenceItem
from apps.conversations.answering.followup import carry_over, rewrite_acceptable
from apps.conversations.answering.outcomes import Outcomes
from apps.conversations.answering.quote import quote_text
from apps.conversations.answering.select import Selected, evidence_for
from apps.conversations.models import Message
from apps.conversations.prompting import quoted
from apps.conversations.services import ReplyOutcome
from apps.conversations.toolcalls import tools_carry_out, tools_offered
from apps.conversations.triggers import turn_trigger
from apps.core import tracing
from apps.core.dbasync import db_async
from apps.core.rehearsal import rehearsing
from apps.guardrails.input_checks import input_check
from apps.guardrails.pii import RedactedText
from apps.knowledge.selectors import RetrievalUnavailable
from apps.llm.embeddings import embedder
from apps.llm.routing import Route
from apps.llm.streaming import ChatMessage, LLMCallError, chat_stream
from apps.llm.tooling import ToolDecision
from apps.tools.choice import tools_choose

REWRITE_TIMEOUT_SECONDS = 4.0
# Part of every answer cache key: bumped when a change to how evidence is chosen or worded must not be
# served answers cached by the code before it.
CACHE_GENERATION = 1
UNAVAILABLE_NOTE = (
    "(I couldn't add a short summary just now: the policy text above is our answer. "
    "A person can go through it with you.)"
)
REFUSED_NOTE = "(I can't add more on this here. A person can go through it with you.)"


class Answer(Outcomes):
    """Produces the outcome of one turn; Outcomes holds the replies that end a turn early, the trace
    and the accounting."""

    async def produce(self) -> ReplyOutcome:
        await self.stream.progress("looking_up")
        with tracing.span("turn.context"):
            ctx = await db_async(self.context_read)()
        self.ctx = ctx
        with tracing.span("guardrails.input_check") as check:
            self.verdict = input_check(ctx.question)
            check.set_attribute("helpdesk.action", self.verdict.action)
        if not self.verdict.allowed:
            return await self._refuse_input(self.verdict)
        with tracing.span("handoff.trigger"):
            trigger = await db_async(turn_trigger)(conversation_id=ctx.conversation_id, question=ctx.question)
        if trigger is not None:
            return await self._hand_over(trigger)
        t = time.monotonic()
        query = await self._query(ctx)
        try:
            with tracing.span("retrieval.embed"):
                [vector] = await sync_to_async(embedder().embed, thread_sensitive=False)([str(query)])
        except Exception:
            return await self._retrieval_down(t)
        self.timings["embed_ms"] = self._ms(t)
        await self._tools(ctx, vector)
        # A rehearsal checks what the pipeline says now: no cached answer, and none stored.
        cacheable = self.cacheable(ctx, query) and not rehearsing()
        if cacheable:
            cached = await self._from_cache(ctx, query, vector)
            if cached is not None:
                return cached
        t = time.monotonic()
        try:
            selected = await db_async(evidence_for)(tenant=self.tenant, query=query, vector=vector)
        except RetrievalUnavailable:
            return await self._retrieval_down(t)
        self.timings["retrieval_ms"] = self._ms(t)
        self.selected = selected
        self.retrieval_info = self.summary(selected, query)
        if not selected.answerable:
            if self.tools is not None and self.tools.acted:
                return await self._tools_only()
            return await self._abstain(ctx.question, selected.pool.retrieval)
        outcome = await self._answer(ctx, selected.evidence)
        if cacheable and outcome.status == Message.Status.COMPLETE:
            await self._cache_store(ctx, query, vector, outcome)
        return outcome

    # ---- stages

    async def _query(self, ctx: TurnContext) -> RedactedText:
        """What to search with: the question, or for a follow-up the question with its subject."""
        question = str(ctx.question)
        previous = str(ctx.previous_question) if ctx.previous_question is not None else None
        carried = carry_over(question, previous)
        if carried == question or previous is None:
            return ctx.question
        self.followup = {"carried_over": carried}
        if ctx.style == "compose":
            rewrite = await self._rewrite(question, previous, route=ctx.route)
            if rewrite is not None:
                self.followup = {"rewritten": rewrite}
                return RedactedText.stored(rewrite)
        return RedactedText.stored(carried)

    async def _rewrite(self, question: str, previous: str, *, route: Route) -> str | None:
        messages = [
            ChatMessage(
                role="system", content="Rewrite the customer's last message as one standalone question."
            ),
            ChatMessage(
                role="user",
                content=f"Earlier question:\n{quoted(previous)}\n\nLast message:\n{quoted(question)}\n\n"
                "The last message as one standalone question, keeping its numbers and names:",
            ),
        ]
        parts: list[str] = []

        async def collect(piece: str) -> None:
            parts.append(piece)

        try:
            await asyncio.wait_for(
                chat_stream(
                    messages,
                    on_delta=collect,
                    max_tokens=48,
                    temperature=0.0,
                    stop=("\n",),
                    model=route.model,
                    base_url=route.base_url,
                    api_key=route.api_key,
                ),
                REWRITE_TIMEOUT_SECONDS,
            )
        except (LLMCallError, TimeoutError):
            return None
        text = "".join(parts).strip().strip('"').strip()
        return text if rewrite_acceptable(text, question, previous) else None

    async def _tools(self, ctx: TurnContext, vector: list[float]) -> None:
        specs = await tools_offered(tenant=self.tenant, customer=ctx.customer)
        if not specs:
            return
        history = "\n".join(str(item.text) for item in ctx.memory[-2:])
        with tracing.span("tools.decide", {"helpdesk.tools_offered": len(specs)}) as deciding:
            decision = await tools_choose(
                tenant=self.tenant,
                question=ctx.question,
                vector=vector,
                specs=specs,
                customer=ctx.customer,
                history_text=history,
            )
            deciding.set_attribute("helpdesk.tool_calls", len(decision.calls))
            deciding.set_attribute("helpdesk.tools", ",".join(call.name for call in decision.calls))
        await self._carry_out(decision, ctx)

    async def _carry_out(self, decision: ToolDecision, ctx: TurnContext) -> None:
        self.timings["tool_decision_ms"] = round(decision.seconds * 1000, 1)
        self.decision_tokens = decision.prompt_tokens + decision.completion_tokens
        self.tool_decision = decision
        if not decision.calls:
            return
        t = time.monotonic()
        with tracing.span("tools.run", {"helpdesk.tool_calls": len(decision.calls)}):
            self.tools = await tools_carry_out(
                tenant=self.tenant,
                decision=decision,
                customer=ctx.customer,
                conversation_id=ctx.conversation_id,
                message_id=self.message.id,
                progress=self._tool_progress,
                question=ctx.question,
                answered_by_policies=False,
            )
        self.timings["tools_ms"] = self._ms(t)
        self.tools_info = self.tools_summary()
        if self.tools.said:
            await self.stream.append("\n\n".join(self.tools.said))
            self._separate = True

    async def _answer(self, ctx: TurnContext, evidence: Evidence) -> ReplyOutcome:
        """The evidence quoted at once; in `compose`, checked model sentences after it."""
        after_facts = bool(self.tools and self.tools.said)
        await self._show(quote_text(evidence, after_facts=after_facts))
        await self.stream.citations(evidence.citations())
        self._mark_first_content()
        style = ctx.style
        composed: Composed | None = None
        if style == "compose" and not await self._over_budget():
            composed = await self._compose(ctx, evidence)
        error = composed.error if composed else None
        self.compose_info = {
            "style": style,
            "style_reason": ctx.style_reason,
            "shown": composed.shown if composed else [],
            "dropped": composed.dropped if composed else [],
            "fell_back_to_quote": style == "compose" and not (composed and composed.shown),
            "error": error.kind if error else "",
        }
        self.retrieval_info["answer"] = self.compose_info
        await self._trace(
            self.prompt_rows,
            self.retrieval_info,
            attempts=error.attempts if error else (self.llm.attempts if self.llm else 0),
            endpoint=self.llm.endpoint if self.llm else "",
        )
        self.timings["total_ms"] = self._ms(self.received_at)
        status, code, offer = Message.Status.COMPLETE, "", bool(self.tools and self.tools.offer_handoff)
        if error is not None and error.kind == "cut" and composed and composed.shown:
            # Cut mid-answer: what was shown stays, marked; a retry answers the turn again.
            status, code, offer = Message.Status.INTERRUPTED, "interrupted", True
        elif error is not None:
            # The quoted policy answers; the customer is told the summary is missing and offered a person.
            await self.stream.append("\n\n" + (REFUSED_NOTE if error.kind == "refused" else UNAVAILABLE_NOTE))
            code, offer = ("refused" if error.kind == "refused" else "llm_unavailable"), True
        return ReplyOutcome(
            status=status,
            text=self.stream.text,
            citations=evidence.citations(),
            offer_handoff=offer,
            error_code=code,
            timings=self.timings,
            model=self.llm.model if self.llm else "",
            prompt_tokens=self.llm.prompt_tokens if self.llm else None,
            completion_tokens=self.llm.completion_tokens if self.llm else 0,
            unsupported_removed=removed_reasons(composed.dropped) if composed else (),
        )

    async def _compose(self, ctx: TurnContext, evidence: Evidence) -> Composed:
        await self.stream.progress("composing")
        facts = list(self.tools.facts) if self.tools else []
        messages = compose_messages(
            company=self.tenant.name,
            question=ctx.question,
            evidence=evidence,
            facts=facts,
            remembered=ctx.remembered,
        )
        self.prompt_rows = [{"role": m.role, "content": m.content} for m in messages]
        support = [s for item in evidence.items for s in item.sentences] + [str(f) for f in facts]
        t = time.monotonic()
        with tracing.span("llm.compose", {"gen_ai.operation.name": "chat"}) as model_call:
            composed = await compose_checked(
                messages,
                evidence=support,
                question=str(ctx.question),
                show=self._show_composed,
                on_wait=self._waiting,
                route=ctx.route,
            )
            tracing.model_call_describe(model_call, composed.llm, error=composed.error)
            model_call.set_attribute("helpdesk.sentences_shown", len(composed.shown))
            model_call.set_attribute("helpdesk.sentences_dropped", len(composed.dropped))
        self.timings["generation_ms"] = self._ms(t)
        if composed.llm is not None:
            self.llm = composed.llm
            self.timings["llm_ttft_ms"] = round(composed.llm.ttft_seconds * 1000, 1)
            await self._count_tokens(composed.llm)
        return composed

    async def _show(self, text: str) -> None:
        if not text:
            return
        if self._separate:
            text = "\n\n" + text
            self._separate = False
        await self.stream.append(text)

    async def _show_composed(self, sentence: str) -> None:
        await self.stream.append(("\n\n" if not self._composing else " ") + sentence)
        self._composing = True

    async def _waiting(self, position: int) -> None:
        line = (
            "Many customers are asking right now. You're next in line…"
            if position <= 1
            else f"Many customers are asking right now. You're number {position} in line…"
        )
        await self.stream.progress("queued", text=line)

    # ---- the answer cache

    def cacheable(self, ctx: TurnContext, query: RedactedText) -> bool:
        """Never an answer built on a customer's account facts, on the conversation's memory or on what
        the customer told us before (a cached answer would also skip the prompt that uses it)."""
        return (
            query is ctx.question
            and not ctx.remembered
            and not (self.tools and (self.tools.facts or self.tools.said))
        )

    async def _from_cache(
        self, ctx: TurnContext, query: RedactedText, vector: list[float]
    ) -> ReplyOutcome | None:
        t = time.monotonic()
        with tracing.span("answer_cache.lookup") as lookup:
            hit = await db_async(answer_cache.cache_lookup)(
                tenant=self.tenant, style=_cache_style(ctx), question=str(query), vector=vector
            )
            lookup.set_attribute("helpdesk.result", f"hit_{hit.kind}" if hit is not None else "miss")
        self.timings["cache_ms"] = self._ms(t)
        if hit is None:
            self.cache_info = {"result": "miss"}
            return None
        payload: dict[str, Any] = hit.payload
        self.cache_info = {"result": f"hit_{hit.kind}", "similarity": hit.similarity}
        items = tuple(EvidenceItem.from_dict(row) for row in payload.get("evidence", []))
        evidence = Evidence(items=items, score=float(payload.get("score") or 0.0))
        await self._show(str(payload.get("text", "")))
        await self.stream.citations(evidence.citations())
        self._mark_first_content()
        self.retrieval_info = {**payload.get("retrieval", {}), "cache": self.cache_info}
        await self._trace([], self.retrieval_info)
        self.timings["total_ms"] = self._ms(self.received_at)
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=self.stream.text,
            citations=evidence.citations(),
            timings=self.timings,
        )

    async def _cache_store(
        self, ctx: TurnContext, query: RedactedText, vector: list[float], outcome: ReplyOutcome
    ) -> None:
        selected: Selected = self.selected
        if self.compose_info.get("error") or (ctx.style == "compose" and not self.compose_info.get("shown")):
            return  # a model failure, or the budget holding the model back, is not the answer to keep
        payload = {
            "text": outcome.text,
            "score": selected.evidence.score,
            "evidence": [item.as_dict() for item in selected.evidence.items],
            "retrieval": {k: v for k, v in self.retrieval_info.items() if k != "cache"},
        }
        try:
            await db_async(answer_cache.cache_store)(
                tenant=self.tenant,
                style=_cache_style(ctx),
                question=str(query),
                vector=vector,
                payload=payload,
            )
        except Exception as exc:  # the cache is an optimisation: the answer is already given
            self.logger.warning("answer not cached: %s", exc.__class__.__name__)


def removed_reasons(dropped: list[dict[str, object]]) -> tuple[tuple[str, ...], ...]:
    """The reason codes of each removed sentence, without what they matched ("number:50" is "number"):
    the audit trail counts them and never holds the model's words."""
    removed = []
    for row in dropped:
        reasons = row.get("reasons")
        codes = [str(r).split(":", 1)[0] for r in reasons] if isinstance(reasons, list) else []
        removed.append(tuple(dict.fromkeys(codes)))
    return tuple(removed)


def _cache_style(ctx: TurnContext) -> str:
    style = f"{ctx.style}@{CACHE_GENERATION}"
    if ctx.style == "compose" and ctx.route.endpoint_id is not None:
        # A registered model's composed sentences are its own: never served to another model's
        # conversations (a canary's arms, a promotion). Quoted answers are the same whichever model.
        # 6 hex digits keep the key within the column's 16 characters.
        style += f":{ctx.route.endpoint_id.hex[:6]}"
    return style
