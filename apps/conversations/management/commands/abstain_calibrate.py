"""`manage.py abstain_calibrate --tenant SLUG [--questions FILE ...] [--dry-run]`.

Runs the company's labelled questions through the evidence stage (apps.conversations.answering.
calibration), prints what each confidence threshold would do (answered right, answered without the fact,
wrongly abstained, false answers, abstained), and sets the company's threshold to the one with the best
balanced accuracy. Without --questions, the demo company's labelled set (bench/data/questions.jsonl) is
used. Every abstention the assistant makes afterwards still lands on Knowledge gaps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.selectors import tenant_by_slug
from apps.accounts.services import tenant_assistant_configure
from apps.conversations.answering.calibration import (
    labelled_load,
    questions_score,
    threshold_choose,
    threshold_sweep,
)

DEMO_QUESTIONS = Path(settings.BASE_DIR) / "bench" / "data" / "questions.jsonl"


class Command(BaseCommand):
    help = "Measure the abstention trade-off on labelled questions and set the company's threshold."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="the company's slug")
        parser.add_argument(
            "--questions", action="append", type=Path, help="JSON lines of labelled questions (repeatable)"
        )
        parser.add_argument("--dry-run", action="store_true", help="report only; keep the current threshold")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = tenant_by_slug(slug=options["tenant"])
        if tenant is None:
            raise CommandError(f"No company with the slug {options['tenant']!r}.")
        paths = options["questions"] or [DEMO_QUESTIONS]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path} is not a file of labelled questions.")
        try:
            items = labelled_load(paths)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        answerable = sum(1 for i in items if i.answerable)
        if not answerable or answerable == len(items):
            raise CommandError("Calibration needs both answerable and unanswerable labelled questions.")
        scored = questions_score(tenant=tenant, items=items)
        rows = threshold_sweep(scored)
        best = threshold_choose(rows)
        previous = tenant.abstain_threshold
        if not options["dry_run"]:
            tenant_assistant_configure(tenant=tenant, abstain_threshold=best.threshold)
        report = {
            "tenant": tenant.slug,
            "questions": len(items),
            "answerable": answerable,
            "unanswerable": len(items) - answerable,
            "threshold": best.threshold,
            "previous_threshold": previous,
            "applied": not options["dry_run"],
            "answered_right": best.answered_right,
            "answered_wrong": best.answered_wrong,
            "wrongly_abstained": best.wrongly_abstained,
            "false_answers": best.false_answers,
            "abstained": best.abstained,
            "balanced_accuracy": round(best.balanced, 4),
        }
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write(
            f"{len(items)} labelled questions ({answerable} answerable, {len(items) - answerable} not)\n"
        )
        header = ("threshold", "right", "no fact", "missed", "false", "abstain", "bal.acc")
        self.stdout.write(" ".join(f"{h:>9}" for h in header))
        shown = [r for r in rows if abs(r.threshold - best.threshold) <= 0.1][::4]
        for row in sorted({*shown, best}, key=lambda r: r.threshold):
            mark = "  <- chosen" if row is best else ""
            self.stdout.write(
                f"{row.threshold:>9.3f} {row.answered_right:>9} {row.answered_wrong:>9} "
                f"{row.wrongly_abstained:>9} {row.false_answers:>9} {row.abstained:>9} "
                f"{row.balanced:>9.3f}{mark}"
            )
        verb = "Would set" if options["dry_run"] else "Set"
        self.stdout.write(
            f"{verb} {tenant.slug}'s abstain threshold to {best.threshold:.3f} (was {previous})."
        )
