"""`manage.py customer_erase --tenant SLUG (--contact ID | --visitor UUID | --address X | --resume)`.

Erases one customer of one company now, in this process, and prints what was removed. `--resume` instead
finishes every request a dead worker left unfinished.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.selectors import tenant_by_slug
from apps.core.errors import HelpdeskError
from apps.erasure import services
from apps.erasure.models import ErasureRequest, SubjectKind
from apps.erasure.selectors import erasure_steps_pending
from apps.erasure.subjects import subject_clean


class Command(BaseCommand):
    help = "Erase one customer of one company everywhere (or --resume unfinished erasures)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="The company's slug.")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--contact", help="The company's own id of a verified customer.")
        who.add_argument("--visitor", help="An anonymous widget visitor's id (a UUID).")
        who.add_argument("--address", help="A phone number or email address the customer wrote from.")
        who.add_argument("--resume", action="store_true", help="Finish every unfinished erasure.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["resume"]:
            finished = services.erasures_resume(stale_after=timedelta(0))
            self.stdout.write(f"resumed: {finished} erasure(s) finished")
            return
        tenant = tenant_by_slug(slug=options["tenant"] or "")
        if tenant is None:
            raise CommandError("No company has that slug.")
        kind = next(k for k in SubjectKind.values if options.get(k))
        try:
            subject = subject_clean(kind=kind, value=options[kind])
            request = services.customer_erase_request(
                tenant=tenant, subject=subject, actor=None, run_now=True
            )
        except HelpdeskError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
        except Exception as error:
            # The request stays running with the steps it finished; `--resume` (or a worker) goes on.
            raise CommandError(
                f"erasure interrupted ({error.__class__.__name__}); "
                "run `customer_erase --resume` to finish it"
            ) from error
        self._report(request)
        if request.state != ErasureRequest.State.DONE:
            raise CommandError(request.error or f"erasure {request.id} ended {request.state}")

    def _report(self, request: ErasureRequest) -> None:
        self.stdout.write(f"erasure {request.id}: {request.state}")
        self.stdout.write(f"steps done: {', '.join(request.steps)}")
        pending = erasure_steps_pending(request=request)
        if pending:
            self.stdout.write(f"steps pending: {', '.join(pending)}")
        for kind, n in sorted(request.counts.items()):
            self.stdout.write(f"  {kind:<16} {n}")
        if request.error:
            self.stdout.write(f"error: {request.error}")
