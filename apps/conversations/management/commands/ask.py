"""`manage.py ask "QUESTION" --tenant SLUG [--customer ID] [--conversation ID] [--json]`.

Stores one customer message and runs the assistant's real pipeline on it, as the widget does
(apps.conversations.answering): redaction, input checks, handoff triggers, tool choice and tool runs,
the answer cache, evidence selection and abstention, then the answer in the company's style: the
evidence quoted verbatim and cited (`quote`), followed in `compose` by the model's sentences that the
support check passed. The reply and its trace are stored; the outcome is printed.

With --json, one object: `answer` is the reply's text exactly as the customer saw it and as stored;
`citations` are the quoted evidence units; `style` is the answer style in force; `composed` (compose only,
else null) holds the model sentences shown, those dropped with their reasons, whether the answer fell back
to the quote alone, and the model error if any. Without it, the answer streams as it is written.

Exits 1 when the reply is `failed` or `interrupted`. A reply whose model part failed while the quoted
evidence answered is `complete` (exit 0) with its `error_code` (llm_unavailable, refused) and a person
offered.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.selectors import tenant_by_slug
from apps.conversations.assistant import TurnResult, assistant_turn_run
from apps.conversations.models import Conversation
from apps.conversations.services import cli_conversation_open, cli_message_receive
from apps.core.errors import HelpdeskError
from apps.core.tracing import tracing_setup
from apps.llm.clients import close_async_clients


class Command(BaseCommand):
    help = "Ask the assistant a question as a customer of a company and print the answer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question")
        parser.add_argument("--tenant", required=True, help="the company's slug")
        parser.add_argument("--customer", help="act as this verified customer (their external id)")
        parser.add_argument("--conversation", help="continue this conversation")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        tracing_setup()  # the same spans as a widget turn, exported when OTEL_EXPORTER_OTLP_ENDPOINT is set
        tenant = tenant_by_slug(slug=options["tenant"])
        if tenant is None:
            raise CommandError(f"No company with the slug {options['tenant']!r}.")
        stream = not options["json"]
        try:
            conversation = cli_conversation_open(
                tenant=tenant, customer=options["customer"], conversation_id=options["conversation"]
            )
            received_at = time.monotonic()
            receipt = cli_message_receive(
                conversation=conversation, client_msg_id=f"cli-{uuid.uuid4()}", text=options["question"]
            )
        except HelpdeskError as exc:
            raise CommandError(exc.message) from exc
        if receipt.owner and receipt.owner != Conversation.Status.ASSISTANT:
            raise CommandError(
                f"Stored, but a person looks after conversation {conversation.id} now "
                f"({Conversation.Status(receipt.owner).label.lower()}): the assistant does not answer."
            )

        streamed: list[str] = []

        def show(piece: str) -> None:
            streamed.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()

        async def run() -> TurnResult:
            try:
                return await assistant_turn_run(
                    tenant=tenant,
                    conversation_id=conversation.id,
                    turn=receipt.message.turn,
                    received_at=received_at,
                    listener=show if stream else None,
                )
            finally:
                await close_async_clients()  # this event loop ends with the command

        result = asyncio.run(run())
        reply = result.message
        if reply is None:
            raise CommandError("The question was superseded before it was answered.")
        answer_info: dict[str, Any] = result.retrieval.get("answer") or {}
        style = answer_info.get("style") or None
        composed = (
            {
                "shown": answer_info.get("shown", []),
                "dropped": answer_info.get("dropped", []),
                "fell_back_to_quote": bool(answer_info.get("fell_back_to_quote")),
                "error": answer_info.get("error") or None,
            }
            if style == "compose"
            else None
        )
        outcome = {
            "conversation_id": str(conversation.id),
            "message_id": str(reply.id),
            "status": reply.status,
            "answer": reply.text,
            "citations": reply.citations,
            "style": style,
            "composed": composed,
            "abstained": reply.abstained,
            "offer_handoff": reply.offer_handoff,
            "error_code": reply.error_code or None,
            "guardrail_reasons": reply.guardrail_reasons,
            "model": reply.model or None,
            "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens},
            "timings": {
                "time_to_first_token_ms": result.timings.get("ttft_ms"),
                "llm_time_to_first_token_ms": result.timings.get("llm_ttft_ms"),
                "retrieval_ms": result.timings.get("retrieval_ms"),
                "tool_decision_ms": result.timings.get("tool_decision_ms"),
                "tools_ms": result.timings.get("tools_ms"),
                "total_ms": result.timings.get("total_ms"),
            },
            "retrieval": {k: v for k, v in result.retrieval.items() if k != "tools"},
            "tool_runs": result.tools,
        }
        if options["json"]:
            self.stdout.write(json.dumps(outcome, indent=2))
        else:
            self.stdout.write("")
            if reply.text != "".join(streamed):  # what streamed is what is stored; shown if ever not
                self.stdout.write(f"(as stored)\n{reply.text}")
            self.stdout.write(
                f"[{reply.status}{', abstained' if reply.abstained else ''}{f', {style}' if style else ''}]"
            )
            for c in reply.citations:
                self.stdout.write(f"  [{c['n']}] {c['title']} · v{c['version']} · {c['section']}")
            for tool_run in result.tools:
                detail = f" ({tool_run['error_code']})" if tool_run["error_code"] else ""
                self.stdout.write(f"  tool {tool_run['tool']}: {tool_run['status']}{detail}")
            if composed is not None and composed["dropped"]:
                self.stdout.write(
                    f"  {len(composed['dropped'])} model sentence(s) dropped by the support check"
                )
            if reply.error_code:
                self.stdout.write(f"error: {reply.error_code}")
        if reply.status in ("failed", "interrupted"):
            sys.exit(1)
