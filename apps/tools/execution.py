"""Executing a tool run in a Celery worker, exactly once or failed, visibly (CONTRACTS.md I3;
docs/architecture/tools.md, "Exactly once, or failed, visibly")."""

from __future__ import annotations

import datetime
import logging
import random
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from apps.audit.models import AuditEvent
from apps.core import tracing
from apps.tools.breaker import AdapterBreaker
from apps.tools.connections import adapter_for
from apps.tools.errors import AdapterError, TransientAdapterError
from apps.tools.hooks import run_changed
from apps.tools.locks import tool_run_lock
from apps.tools.models import RunStatus, ToolRun
from apps.tools.registry import ToolContext, tool_spec
from apps.tools.services import FAILURES, GENERIC_FAILURE, run_audit, run_count, run_enqueue, run_limits

logger = logging.getLogger(__name__)
SYSTEM = AuditEvent.ActorKind.SYSTEM  # the worker changes a run on its own


class RetryLater(Exception):
    """The worker should try this run again after `countdown` seconds (a transient failure or a run
    another worker still holds)."""

    def __init__(self, countdown: float, reason: str) -> None:
        super().__init__(reason)
        self.countdown = countdown
        self.reason = reason


def tool_run_execute(*, run_id: str) -> ToolRun:
    """`_execute` in a span of the turn's trace (the task carries it: docs/architecture/tracing.md)."""
    with tracing.span("tool.execute", {"helpdesk.tool_run_id": run_id}) as current:
        run = _execute(run_id)
        current.set_attribute("helpdesk.tool", run.tool)
        current.set_attribute("helpdesk.status", str(run.status))
        current.set_attribute("helpdesk.attempts", run.attempts)
        return run


def _execute(run_id: str) -> ToolRun:
    """Runs a queued run once. Safe to call for a run delivered twice or re-delivered after its worker was
    killed: a finished run is returned unchanged, a run another worker holds is retried after its lease,
    and the business system sees the idempotency key, so a repeated change applies at most once."""
    run = _claim(run_id)
    if run.status != RunStatus.RUNNING:
        return run
    spec = tool_spec(run.tool)
    if spec is None:  # the tool was removed after the call was accepted
        return _finish(run, status=RunStatus.FAILED, error_code="unknown_tool")
    started = time.monotonic()
    try:
        adapter = adapter_for(run.tenant)
    except AdapterError as exc:
        return _finish(run, status=RunStatus.FAILED, error_code=exc.code, started=started)
    breaker = AdapterBreaker(adapter.breaker_key)
    if not breaker.allow():
        logger.warning("tool run %s (%s) not attempted: adapter circuit open", run.id, run.tool)
        return _finish(run, status=RunStatus.FAILED, error_code="unavailable", started=started)
    context = ToolContext(
        tenant_id=run.tenant_id, customer=run.customer, idempotency_key=run.idempotency_key, adapter=adapter
    )
    try:
        arguments = spec.input_model.model_validate(run.arguments)
        output = spec.output_model.model_validate(spec.run(context, arguments).model_dump())
    except TransientAdapterError as exc:
        breaker.record_failure()
        if run.attempts <= int(settings.TOOLS_MAX_RETRIES) and breaker.state().state == "closed":
            _release(run, error_code=exc.code)
            countdown = min(10.0, 0.5 * 2 ** (run.attempts - 1)) * random.uniform(0.8, 1.2)  # noqa: S311
            logger.warning(
                "tool run %s (%s) attempt %d failed: %s; retrying in %.1fs",
                run.id,
                run.tool,
                run.attempts,
                exc.code,
                countdown,
            )
            raise RetryLater(countdown, exc.code) from None
        return _finish(run, status=RunStatus.FAILED, error_code=exc.code, started=started)
    except AdapterError as exc:
        breaker.record_success()  # the system answered; the answer was no
        return _finish(
            run, status=RunStatus.FAILED, error_code=exc.code, message=exc.message, started=started
        )
    except SoftTimeLimitExceeded:
        breaker.record_failure()
        return _finish(run, status=RunStatus.FAILED, error_code="timeout", started=started)
    except ValidationError:
        return _finish(run, status=RunStatus.FAILED, error_code="bad_response", started=started)
    breaker.record_success()
    return _finish(
        run,
        status=RunStatus.DONE,
        result=output.model_dump(mode="json"),
        summary=spec.summarize(output),
        started=started,
    )


def _claim(run_id: str) -> ToolRun:
    now = timezone.now()
    with transaction.atomic():
        run = tool_run_lock(run_id=run_id)
        if run.status == RunStatus.RUNNING and run.lease_until and run.lease_until > now:
            remaining = (run.lease_until - now).total_seconds()
            raise RetryLater(remaining + 0.5, "another worker holds the run")
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return run  # finished, refused, or waiting for approval: nothing to do
        if run.status == RunStatus.RUNNING:
            logger.warning(
                "tool run %s (%s): the worker of attempt %d vanished; running it again with the same key",
                run.id,
                run.tool,
                run.attempts,
            )
        _, _, lease = run_limits(tool_spec(run.tool))
        run.status = RunStatus.RUNNING
        run.attempts += 1
        run.lease_until = now + datetime.timedelta(seconds=lease)
        run.started_at = run.started_at or now
        run.save(update_fields=["status", "attempts", "lease_until", "started_at", "updated_at"])
        run_audit(run, actor_kind=SYSTEM)
        run_changed(run)
    return run


def _release(run: ToolRun, *, error_code: str) -> None:
    """Back to queued after a transient failure of this attempt, for the retry to claim."""
    with transaction.atomic():
        released = ToolRun.objects.filter(id=run.id, status=RunStatus.RUNNING, attempts=run.attempts).update(
            status=RunStatus.QUEUED, lease_until=None, updated_at=timezone.now()
        )
        if released:
            run_audit(run, actor_kind=SYSTEM, status=RunStatus.QUEUED, error_code=error_code)


def _finish(
    run: ToolRun,
    *,
    status: str,
    error_code: str = "",
    message: str = "",
    result: dict[str, Any] | None = None,
    summary: str = "",
    started: float | None = None,
) -> ToolRun:
    now = timezone.now()
    if status == RunStatus.FAILED and not summary:
        summary = FAILURES.get(error_code, GENERIC_FAILURE)
    with transaction.atomic():
        # Only the holder of this attempt may end the run: exactly one `done` or `failed`.
        updated = ToolRun.objects.filter(id=run.id, status=RunStatus.RUNNING, attempts=run.attempts).update(
            status=status,
            error_code=error_code,
            error_message=message[:300],
            result=result,
            summary=summary,
            finished_at=now,
            lease_until=None,
            duration_ms=int((time.monotonic() - started) * 1000) if started is not None else None,
            updated_at=now,
        )
        run.refresh_from_db()
        if updated:
            run_audit(run, actor_kind=SYSTEM)
            run_changed(run)
    if updated:
        run_count(run)
        log = logger.info if status == RunStatus.DONE else logger.warning
        log("tool run %s (%s) %s %s in %s ms", run.id, run.tool, status, error_code, run.duration_ms)
    return run


def tool_runs_recover(*, older_than_seconds: float = 60.0) -> int:
    """Re-sends runs a lost message or a dead worker left behind: queued for long, or running past their
    lease. Safe to run anywhere, any time: execution is idempotent."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=older_than_seconds)
    stale = list(
        ToolRun.objects.filter(status=RunStatus.QUEUED, queued_at__lt=cutoff).values_list("id", flat=True)
    ) + list(
        ToolRun.objects.filter(status=RunStatus.RUNNING, lease_until__lt=now).values_list("id", flat=True)
    )
    for run_id in stale:
        run = ToolRun.objects.get(id=run_id)
        run_enqueue(run)
    if stale:
        logger.warning("re-sent %d tool run(s) left queued or running past their lease", len(stale))
    return len(stale)
