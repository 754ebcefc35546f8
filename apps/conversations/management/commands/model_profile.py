"""`manage.py model_profile [--tenant SLUG] [--endpoint NAME] [--questions FILE ...] [--limit N]`.

Measures the configured model (LLM_BASE_URL, LLM_MODEL), or with --endpoint a registered model endpoint
(its name or model, the company's own or the operator's; docs/architecture/releases.md), in the `compose`
style: for each answerable labelled question, the evidence is selected as for a customer, the model
composes from it, and every sentence it writes goes through the support check. Records how many
sentences were composed and how many were supported, and how fast (first token, complete), as the
model's profile (apps.llm.profiles); a company on the "auto" answer style composes only with a model whose
profile passes.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Tenant
from apps.accounts.selectors import tenant_by_slug
from apps.conversations.answering.calibration import Labelled, labelled_load
from apps.conversations.answering.compose import compose_checked, compose_messages
from apps.conversations.answering.select import evidence_for
from apps.core.errors import BadRequest
from apps.guardrails.pii import pii_redact
from apps.llm.clients import close_async_clients
from apps.llm.embeddings import embedder
from apps.llm.endpoint_selectors import endpoint_named
from apps.llm.profiles import profile_record
from apps.llm.routing import Route, route_default, route_for
from apps.llm.streaming import LLMCallError

DEMO_QUESTIONS = Path(settings.BASE_DIR) / "bench" / "data" / "questions.jsonl"


class Command(BaseCommand):
    help = "Measure how often the configured model's composed sentences are supported, and how fast."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tenant", default="nimbus", help="whose knowledge to use (default: the demo company)"
        )
        parser.add_argument(
            "--endpoint", help="a registered model endpoint's name or model (default: the configured model)"
        )
        parser.add_argument(
            "--questions", action="append", type=Path, help="JSON lines of labelled questions"
        )
        parser.add_argument("--limit", type=int, default=40, help="answerable questions to ask (default 40)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = tenant_by_slug(slug=options["tenant"])
        if tenant is None:
            raise CommandError(f"No company with the slug {options['tenant']!r}.")
        try:
            items = [i for i in labelled_load(options["questions"] or [DEMO_QUESTIONS]) if i.answerable]
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        items = items[: max(1, options["limit"])]
        try:
            route = (
                route_for(endpoint_named(tenant=tenant, name=options["endpoint"]))
                if options["endpoint"]
                else route_default()
            )
        except BadRequest as exc:
            raise CommandError(exc.message) from exc
        report = asyncio.run(self._measure(tenant, items, route))
        profile = profile_record(
            base_url=route.base_url,
            model=route.model,
            questions=report["questions"],
            composed=report["composed"],
            supported=report["supported"],
            first_token_p50_ms=report["first_token_p50_ms"],
            complete_p50_ms=report["complete_p50_ms"],
        )
        report["passes"] = profile.passes
        report["support_rate"] = round(profile.support_rate, 4)
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write(
            f"{route.model} at {route.base_url}: {report['questions']} questions, "
            f"{report['supported']} of {report['composed']} composed sentences supported "
            f"({report['support_rate'] * 100:.1f}%), {report['failed']} calls failed; first token p50 "
            f"{report['first_token_p50_ms']} ms, complete p50 {report['complete_p50_ms']} ms."
        )
        verdict = (
            "passes: companies on 'auto' will compose" if profile.passes else "does not pass: 'auto' quotes"
        )
        self.stdout.write(f"Profile recorded; the model {verdict}.")

    async def _measure(self, tenant: Tenant, items: list[Labelled], route: Route) -> dict[str, Any]:
        composed = supported = failed = asked = 0
        first: list[float] = []
        complete: list[float] = []

        async def discard(sentence: str) -> None:
            return None

        try:
            for item in items:
                question = pii_redact(item.question)
                [vector] = await asyncio.to_thread(embedder().embed, [str(question)])
                selected = await asyncio.to_thread(
                    evidence_for, tenant=tenant, query=question, vector=vector, threshold=0.0
                )
                if not selected.evidence.items:
                    continue
                asked += 1
                messages = compose_messages(
                    company=tenant.name, question=question, evidence=selected.evidence
                )
                support = [s for unit in selected.evidence.items for s in unit.sentences]
                started = time.monotonic()
                try:
                    result = await compose_checked(
                        messages, evidence=support, question=str(question), show=discard, route=route
                    )
                except LLMCallError:
                    failed += 1
                    continue
                complete.append((time.monotonic() - started) * 1000)
                if result.llm is not None:
                    first.append(result.llm.ttft_seconds * 1000)
                composed += len(result.shown) + len(result.dropped)
                supported += len(result.shown)
        finally:
            await close_async_clients()
        return {
            "model": route.model,
            "base_url": route.base_url,
            "questions": asked,
            "composed": composed,
            "supported": supported,
            "failed": failed,
            "first_token_p50_ms": round(statistics.median(first), 1) if first else None,
            "complete_p50_ms": round(statistics.median(complete), 1) if complete else None,
        }
