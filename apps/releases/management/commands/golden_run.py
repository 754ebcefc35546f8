"""`manage.py golden_run --tenant SLUG [--model NAME] [--json]`.

Asks every active golden question of the company through the real answer pipeline, as a rehearsal that
leaves no conversation, message, audit row, knowledge gap or cached answer behind (apps/releases/
runner.py), grades the answers as bench/answers.py does, stores the run (kind "command": it is in the
company's run history) and prints bench/answers.py's table, one line per question that did not pass, and
the run's duration.

--model NAME runs against a registered model endpoint (its name or model; the company's own or the
operator's) instead of the company's current model. --json prints one object instead.

Exits 1 when a question did not pass (wrong, failed, or a composed sentence stating an unsupported number).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.selectors import tenant_by_slug
from apps.core.errors import HelpdeskError
from apps.core.tracing import tracing_setup
from apps.llm.endpoint_selectors import endpoint_named
from apps.releases import report
from apps.releases.models import GoldenRun
from apps.releases.runner import golden_run_create, golden_run_execute
from apps.releases.selectors import golden_questions_active


class Command(BaseCommand):
    help = "Run a company's golden questions through the assistant and print how many it answers right."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="the company's slug")
        parser.add_argument("--model", help="a registered model endpoint's name or model (default: current)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        tracing_setup()
        tenant = tenant_by_slug(slug=options["tenant"])
        if tenant is None:
            raise CommandError(f"No company with the slug {options['tenant']!r}.")
        try:
            endpoint = endpoint_named(tenant=tenant, name=options["model"]) if options["model"] else None
        except HelpdeskError as exc:
            raise CommandError(exc.message) from exc
        if not golden_questions_active(tenant).exists():
            raise CommandError(
                f"{tenant.name} has no golden questions: add some at /staff/{tenant.slug}/golden/."
            )
        run = golden_run_create(tenant=tenant, kind=GoldenRun.Kind.COMMAND, endpoint=endpoint)
        if not options["json"]:
            self.stdout.write(
                f"Golden answers of {tenant.name} ({tenant.slug}): {run.total} questions, {run.model_label}"
            )
        run = golden_run_execute(run_id=run.id)
        if run.status != GoldenRun.Status.DONE:
            raise CommandError(run.error or "The golden run did not finish.")
        results = list(run.results.order_by("ordinal"))
        missed = [r for r in results if not _passed(r)]
        if options["json"]:
            self.stdout.write(json.dumps(_as_json(run, results)))
        else:
            self._print(run, missed)
        if missed:
            sys.exit(1)

    def _print(self, run: GoldenRun, missed: list[Any]) -> None:
        self.stdout.write("")
        for line in report.table_lines([(run.style or "-", "golden", run.summary)]):
            self.stdout.write(line)
        if missed:
            self.stdout.write("")
        for result in missed:
            verdict = result.failure or ("unsupported number" if result.right else "wrong")
            expected = (
                "must abstain"
                if not result.answerable
                else f"cite {result.question.document_title if result.question else '?'!r}"
            )
            answer = " ".join(result.answer.split())[:200]
            self.stdout.write(
                f"  miss {result.ordinal:>3} {verdict}: {result.question_text!r} ({expected}); "
                f"cited {result.cited}; answer {answer!r}"
            )
        self.stdout.write("")
        self.stdout.write(
            f"passed {run.passed}/{run.total} in {(run.duration_ms or 0) / 1000:.1f} s "
            f"(style {run.style or '-'}, run {run.id})"
        )


def _passed(result: Any) -> bool:
    return bool(result.right and not result.failure and not (result.detail or {}).get("unsupported"))


def _as_json(run: GoldenRun, results: list[Any]) -> dict[str, Any]:
    return {
        "run_id": str(run.id),
        "tenant": run.tenant.slug,
        "status": run.status,
        "model": run.model_label,
        "style": run.style,
        "total": run.total,
        "passed": run.passed,
        "pass_rate": run.pass_rate,
        "duration_ms": run.duration_ms,
        "summary": run.summary,
        "results": [
            {
                "ordinal": r.ordinal,
                "question": r.question_text,
                "answerable": r.answerable,
                "passed": _passed(r),
                "right": r.right,
                "abstained": r.abstained,
                "failure": r.failure or None,
                "answer": r.answer,
                "cited": r.cited,
                "first_content_ms": r.first_content_ms,
                "complete_ms": r.complete_ms,
                "detail": r.detail,
            }
            for r in results
        ],
    }
