"""What every turn shares: its state, the replies that end it early (refused, handed over, abstained,
unavailable, answered by a tool alone), the trace, the token budget and the metrics."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from apps.accounts.models import Tenant
from apps.audit import metrics
from apps.conversations import services
from apps.conversations.answering.context import TurnContext, turn_context_read
from apps.conversations.answering.select import Selected
from apps.conversations.models import Message
from apps.conversations.ownership import HandoffTrigger
from apps.conversations.prompting import passage_label
from apps.conversations.services import ReplyOutcome
from apps.conversations.stream import ReplyStream
from apps.conversations.toolcalls import ToolsOutcome
from apps.conversations.triggers import handover_text
from apps.core.dbasync import db_async
from apps.core.redis import astate_redis, state_key
from apps.core.rehearsal import rehearsing
from apps.guardrails.input_checks import InputVerdict
from apps.guardrails.pii import RedactedText
from apps.knowledge.selectors import Retrieval
from apps.knowledge.services import knowledge_gap_record
from apps.llm.streaming import StreamOutcome
from apps.llm.tooling import ToolDecision

logger = logging.getLogger("apps.conversations.assistant")

ABSTAIN_TEXT = (
    "I couldn't find this in our published policies, so I'd rather not guess. "
    "Would you like me to connect you with a person?"
)
ASK_FOR_TEXT = "I can look that up for you. What is {what}?"
INJECTION_TEXT = (
    "I can only help with questions about our services and policies, and I can't change how I work. "
    "What can I help you with?"
)
ABUSE_TEXT = (
    "I want to help, but I can't continue with messages like that. "
    "If you'd like, I can connect you with a person."
)


class Outcomes:
    logger = logger

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
        self.tool_decision: ToolDecision | None = None
        self.decision_tokens = 0
        self.handoff: HandoffTrigger | None = None  # the turn itself calls for a person
        self.ctx: TurnContext | None = None
        self.selected: Any = None
        self.followup: dict[str, str] = {}
        self.cache_info: dict[str, Any] = {}
        self.compose_info: dict[str, Any] = {}
        self.prompt_rows: list[dict[str, str]] = []
        self._separate = False  # tool results were streamed: what follows starts a new paragraph
        self._composing = False

    def _ms(self, since: float) -> float:
        return round((time.monotonic() - since) * 1000, 1)

    def context_read(self) -> TurnContext:
        return turn_context_read(tenant=self.tenant, reply=self.message)

    def _mark_first_content(self) -> None:
        if self.stream.first_piece_at is not None and "ttft_ms" not in self.timings:
            self.timings["ttft_ms"] = round((self.stream.first_piece_at - self.received_at) * 1000, 1)

    # ---- turns that end early

    async def _refuse_input(self, verdict: InputVerdict) -> ReplyOutcome:
        text = ABUSE_TEXT if verdict.action == "refuse_abuse" else INJECTION_TEXT
        logger.warning(
            "customer message in conversation %s refused by input checks: %s",
            self.message.conversation_id,
            ",".join(verdict.reasons),
        )
        await self._trace([], {}, input_only=True)
        await self.stream.append(text)
        self._mark_first_content()
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=text,
            guardrail_reasons=verdict.reasons,
            offer_handoff=verdict.action == "refuse_abuse",
            timings=self.timings,
            refused="abuse" if verdict.action == "refuse_abuse" else "injection",
        )

    async def _hand_over(self, trigger: HandoffTrigger) -> ReplyOutcome:
        """This turn is for a person: say so in one honest sentence; the handoff follows the reply."""
        self.handoff = trigger
        text = handover_text(trigger)
        await self._trace([], {"handoff": trigger.reason})
        await self.stream.append(text)
        self._mark_first_content()
        self.timings["total_ms"] = self._ms(self.received_at)
        return ReplyOutcome(status=Message.Status.COMPLETE, text=text, timings=self.timings)

    async def _tool_progress(self, text: str) -> None:
        await self.stream.progress("tool", text=text)

    async def _tools_only(self) -> ReplyOutcome:
        """The policies hold nothing on this, but a tool answered it: its facts are the answer."""
        assert self.tools is not None
        await self._trace([], self.retrieval_info)
        self._mark_first_content()
        self.timings["total_ms"] = self._ms(self.received_at)
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=self.stream.text,
            offer_handoff=self.tools.offer_handoff,
            timings=self.timings,
        )

    async def _abstain(self, question: RedactedText, retrieval: Retrieval) -> ReplyOutcome:
        ask_for = getattr(self.tool_decision, "ask_for", None) if self.tool_decision else None
        if ask_for and not (self.tools and self.tools.acted):
            # A request for a tool that lacks what only the customer can say (an order number).
            text = ASK_FOR_TEXT.format(what=ask_for)
            await self._trace([], {**self.retrieval_info, "ask_for": ask_for})
            await self.stream.append(text)
            self._mark_first_content()
            self.timings["total_ms"] = self._ms(self.received_at)
            return ReplyOutcome(status=Message.Status.COMPLETE, text=text, timings=self.timings)
        await db_async(knowledge_gap_record)(
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
        self._mark_first_content()
        self.timings["total_ms"] = self._ms(self.received_at)
        selected: Selected | None = self.selected
        return ReplyOutcome(
            status=Message.Status.COMPLETE,
            text=ABSTAIN_TEXT,
            abstained=True,
            offer_handoff=True,
            timings=self.timings,
            # Nothing to quote at all, or evidence too weak to answer with.
            abstain_reason="no_evidence"
            if selected is None or not selected.evidence.items
            else "low_confidence",
            top_similarity=retrieval.top_similarity,
        )

    async def _retrieval_down(self, since: float) -> ReplyOutcome:
        self.timings["retrieval_ms"] = self._ms(since)
        await self._trace([], {"error": "retrieval_unavailable"})
        return ReplyOutcome(
            status=Message.Status.FAILED,
            text="",
            error_code="temporarily_unavailable",
            offer_handoff=True,
            timings=self.timings,
        )

    # ---- the record

    def summary(self, selected: Selected, query: RedactedText) -> dict[str, Any]:
        retrieval = selected.pool.retrieval
        info: dict[str, Any] = {
            "threshold": selected.threshold,
            "confidence": round(selected.confidence, 4),
            "top_similarity": retrieval.top_similarity,
            "evidence_score": round(selected.evidence.score, 4),
            "answerable": selected.answerable,
            "mode": retrieval.mode,
            "model": retrieval.model,
            "passages": [
                {"n": n, "chunk_id": str(p.chunk_id), "label": passage_label(p), "similarity": p.similarity}
                for n, p in enumerate(retrieval.passages, start=1)
            ],
            "evidence": [item.as_dict() for item in selected.evidence.items],
        }
        if query is not (self.ctx.question if self.ctx else None):
            info["query"] = str(query)
        if self.followup:
            info["followup"] = self.followup
        if self.cache_info:
            info["cache"] = self.cache_info
        if self.tools_info:
            info["tools"] = self.tools_info
        return info

    def tools_summary(self) -> list[dict[str, Any]]:
        assert self.tools is not None
        return [
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
        await db_async(services.trace_record)(
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
        if rehearsing():
            return  # a golden run's tokens are not the customers' budget
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
        if rehearsing():
            return  # a golden run's replies are not customers' replies
        slug = self.tenant.slug
        status = "abstained" if final.abstained else final.status
        if final.error_code == "refused":
            status = "refused"
        tps = None
        if self.llm and self.llm.completion_tokens > 1:
            # The model's own rate: its tokens after the first over the time it streamed them (the
            # widget's pieces are the quote and checked sentences, not tokens).
            span = self.timings.get("generation_ms", 0.0) / 1000 - self.llm.ttft_seconds
            tps = (self.llm.completion_tokens - 1) / span if span > 0 else None
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
        if self.compose_info.get("style") == "compose":
            metrics.composed_sentences_count(
                tenant=slug,
                shown=len(self.compose_info.get("shown", [])),
                dropped=len(self.compose_info.get("dropped", [])),
            )
        if self.ctx is not None:  # a turn that never read its context never reached a model
            composed = self.compose_info.get("style") == "compose"
            metrics.model_reply_observe(
                endpoint=self.ctx.route.label,
                status=status,
                ttft_seconds=self.timings["ttft_ms"] / 1000 if "ttft_ms" in self.timings else None,
                shown=len(self.compose_info.get("shown", [])) if composed else 0,
                dropped=len(self.compose_info.get("dropped", [])) if composed else 0,
                abstained=final.abstained,
                error_code=final.error_code if final.error_code != "refused" else "",
            )
