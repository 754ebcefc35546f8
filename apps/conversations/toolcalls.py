"""Tools inside an answer (docs/architecture/tools.md).

    tool choice (apps.tools.choice.tools_choose) ── on the question's vector, which retrieval shares:
      embeddings against the tools' example requests choose the tool, the customer's words give its
      arguments (the model writes only what words cannot hold); it never sees documents
      → no call, but `ask_for`: the request is for a tool whose argument the customer has yet to give;
        the answer asks for it ("your order number (it looks like NM-123456)")
      → each call checked and recorded by apps.tools.services.tool_call_propose:
          refused (unknown, malformed, invalid, not allowed) → recorded; the answer goes on without it
          awaiting_approval (a change)  → the customer is asked to confirm, or an agent is asked to approve
          queued (a read)               → "Checking your order…" while a Celery worker runs it
      → read results are awaited (TOOLS_WAIT_SECONDS); their facts stream into the answer and go into the
        answer's prompt; a slow result is posted to the conversation when it comes

The chooser proposes, policy decides: only tools the company enabled are offered, only to a verified
customer when the tool needs one, and the customer a tool acts for is the conversation's verified
identity, never an argument.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings

from apps.accounts.models import Tenant
from apps.core.dbasync import db_async
from apps.guardrails.pii import RedactedText
from apps.llm.tooling import ToolDecision
from apps.tools import selectors as tool_selectors
from apps.tools import services as tool_services
from apps.tools.hooks import run_final_wait
from apps.tools.models import Approval, RunStatus, ToolRun
from apps.tools.registry import ToolSpec, tool_spec

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str], Awaitable[None]]
SLOW_TEXT = "This is taking longer than usual. I'll post the result here as soon as it's in."


@dataclass
class ToolsOutcome:
    runs: list[ToolRun] = field(default_factory=list)
    said: list[str] = field(default_factory=list)  # sentences for the customer, in order
    facts: list[RedactedText] = field(default_factory=list)  # results for the answer's prompt
    offer_handoff: bool = False

    @property
    def acted(self) -> bool:
        """Something the customer should hear about happened (not only refused calls)."""
        return bool(self.said)


async def tools_offered(*, tenant: Tenant, customer: str | None) -> list[ToolSpec]:
    return await db_async(tool_selectors.tools_available)(tenant=tenant, verified=bool(customer))


async def tools_carry_out(
    *,
    tenant: Tenant,
    decision: ToolDecision,
    customer: str | None,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    progress: ProgressCallback,
    question: RedactedText,
    answered_by_policies: bool,
) -> ToolsOutcome:
    outcome = ToolsOutcome()
    queued: list[ToolRun] = []
    for index, call in enumerate(decision.calls):
        run = await db_async(tool_services.tool_call_propose)(
            tenant=tenant,
            call=tool_services.ToolCallRequest(
                call_id=call.call_id, name=call.name, arguments=call.arguments
            ),
            index=index,
            customer=customer,
            conversation_ref=conversation_id,
            message_ref=message_id,
            question=str(question),
            answered_by_policies=answered_by_policies,
        )
        outcome.runs.append(run)
        if run.status == RunStatus.QUEUED:
            queued.append(run)
    if queued:
        spec = tool_spec(queued[0].tool)
        await progress(spec.progress if spec else "Checking…")
        finished = await asyncio.gather(*(_await_result(run) for run in queued))
        by_id = {run.id: run for run in finished}
        outcome.runs = [by_id.get(run.id, run) for run in outcome.runs]
    for run in outcome.runs:
        _describe(run, outcome)
    return outcome


async def _await_result(run: ToolRun) -> ToolRun:
    await run_final_wait(run.id, timeout=float(settings.TOOLS_WAIT_SECONDS))
    fresh = await db_async(ToolRun.objects.get)(id=run.id)
    if fresh.is_final:
        return fresh
    if await db_async(tool_services.tool_run_deliver_later)(run=fresh):
        return await db_async(ToolRun.objects.get)(id=run.id)
    return await db_async(ToolRun.objects.get)(id=run.id)  # it finished just now


def _describe(run: ToolRun, outcome: ToolsOutcome) -> None:
    spec = tool_spec(run.tool)
    if run.status == RunStatus.REFUSED:
        return  # recorded in the timeline; the answer goes on as if the model had not asked
    if run.status == RunStatus.DONE:
        outcome.said.append(run.summary)
        # Rendered by our own code from a validated output schema that holds no personal fields.
        outcome.facts.append(RedactedText.trusted(run.summary))
    elif run.status == RunStatus.FAILED:
        outcome.said.append(run.summary)
        outcome.offer_handoff = True
    elif run.status == RunStatus.AWAITING_APPROVAL and spec is not None:
        proposal = tool_selectors.run_proposal(run)
        if run.approval == Approval.CUSTOMER:
            outcome.said.append(f"I can {proposal} for you. Please confirm below, or cancel.")
        else:
            outcome.said.append(
                f"I've asked a colleague to approve this: {proposal}. You'll see the result here."
            )
    elif run.deliver_later:
        outcome.said.append(SLOW_TEXT)
