"""Erasing one customer everywhere, resumably (docs/architecture/erasure.md).

    customer_erase_request ──→ ErasureRequest (pending) ──on commit──→ erasure_run task
    erasure_request_run: scope → cache → knowledge_gaps → tool_runs → voice → memory → handoff
                         → messages → conversations → contact → verify (done | failed, audit tombstone)

Each step runs in its own transaction, which also appends the step's name and counts to the request: a
worker killed between steps loses nothing, one killed inside a step rolls that step back, and the next
run starts at the first step not recorded. Two runs of one request never overlap: a run holds a session
advisory lock on the request while it works, and another finding it taken leaves.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.accounts.models import Tenant
from apps.audit.trail import audit_record
from apps.core.errors import NotFound
from apps.erasure.models import ErasureRequest
from apps.erasure.steps import DATA_STEPS, SCOPE_STEP, STEP_NAMES, VERIFY_STEP, Counts
from apps.erasure.subjects import Scope, Subject, subject_exists, subject_hash, subject_scope

logger = logging.getLogger(__name__)

# A request left running this long without finishing is resumed by the sweep (its worker died).
STALE_AFTER = timedelta(minutes=5)
ERROR_MAX = 500


def customer_erase_request(
    *, tenant: Tenant, subject: Subject, actor: Any, run_now: bool = False
) -> ErasureRequest:
    """Records a request to erase `subject` (cleaned by `subjects.subject_clean`) and runs it: in a Celery
    worker once this commits, or here when `run_now` (the management command).

    A customer this company does not hold is `NotFound`, and nothing is written. Asking again while a
    request for the same customer is unfinished returns that request.
    """
    if not subject_exists(tenant=tenant, subject=subject):
        raise NotFound("This company has no such customer.")
    digest = subject_hash(tenant_id=tenant.id, subject=subject)
    unfinished = ErasureRequest.objects.for_tenant(tenant).filter(
        subject_hash=digest, state__in=ErasureRequest.UNFINISHED
    )
    request = unfinished.first()
    if request is None:
        try:
            with transaction.atomic():
                request = ErasureRequest.objects.create(
                    tenant=tenant,
                    subject_kind=subject.kind,
                    subject_hash=digest,
                    subject_value=subject.value,
                    requested_by=actor if getattr(actor, "pk", None) else None,
                )
        except IntegrityError:  # a concurrent request for the same customer won
            request = unfinished.get()
    if run_now:
        return erasure_request_run(request_id=request.id)
    request_id = str(request.id)
    transaction.on_commit(lambda: _enqueue(request_id))
    return request


def _enqueue(request_id: str) -> None:
    from apps.erasure.tasks import erasure_run as erasure_run_task

    try:
        erasure_run_task.delay(request_id)
    except Exception as exc:  # the broker is down: the startup sweep and the command resume it
        logger.warning("erasure %s not queued: %s", request_id, exc.__class__.__name__)


@contextmanager
def _run_lock(request_id: uuid.UUID) -> Iterator[bool]:
    """A session advisory lock on the request: True when this run holds it."""
    key = f"erasure:{request_id}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])


def erasure_request_run(*, request_id: uuid.UUID | str) -> ErasureRequest:
    """Runs the request's remaining steps. A step that raises records its error on the request (which
    stays `running`, to be resumed) and the exception propagates to the caller (the task retries)."""
    request = ErasureRequest.objects.filter(id=request_id).select_related("tenant").first()
    if request is None:
        raise NotFound()
    if request.state not in ErasureRequest.UNFINISHED:
        return request
    with _run_lock(request.id) as held:
        if not held:
            return request  # another worker is running it
        request.refresh_from_db()
        if request.state not in ErasureRequest.UNFINISHED:
            return request
        request.state = ErasureRequest.State.RUNNING
        request.started_at = request.started_at or timezone.now()
        request.attempts += 1
        request.save(update_fields=["state", "started_at", "attempts", "updated_at"])
        for name in STEP_NAMES:
            if name in request.steps:
                continue
            try:
                _step_run(request, name)
            except Exception as exc:
                request.refresh_from_db()
                request.error = f"Step {name} failed ({exc.__class__.__name__}); it will be resumed."[
                    :ERROR_MAX
                ]
                request.save(update_fields=["error", "updated_at"])
                raise
    return request


def _step_run(request: ErasureRequest, name: str) -> None:
    tenant_id = request.tenant_id
    with transaction.atomic():
        if name == SCOPE_STEP:
            scope = subject_scope(tenant=request.tenant, subject=_subject(request))
            request.scope = scope.as_json()
            counts: Counts = {}
        elif name == VERIFY_STEP:
            _verify_and_finish(request)
            return
        else:
            step = dict(DATA_STEPS)[name]
            counts = step(tenant_id, Scope.from_json(request.scope))
        request.steps = [*request.steps, name]
        request.counts = _added(request.counts, counts)
        request.error = ""
        request.save(update_fields=["scope", "steps", "counts", "error", "updated_at"])


def _subject(request: ErasureRequest) -> Subject:
    return Subject(kind=request.subject_kind, value=request.subject_value)


def _added(total: dict[str, int], more: Counts) -> dict[str, int]:
    merged = dict(total)
    for kind, n in more.items():
        merged[kind] = merged.get(kind, 0) + int(n)
    return merged


def _verify_and_finish(request: ErasureRequest) -> None:
    """Looks again everywhere, for the scope the request started with and for the customer as they are
    found now (a conversation that appeared meanwhile): every step run again must find nothing. What it
    does find is removed too, and the request ends `failed`, naming the kinds, so someone looks at why.
    Then the identifier and the scope are forgotten and the audit trail gets its tombstone."""
    scope = Scope.from_json(request.scope).union(
        subject_scope(tenant=request.tenant, subject=_subject(request))
    )
    leftovers: Counts = {}
    for _name, step in DATA_STEPS:
        for kind, n in step(request.tenant_id, scope).items():
            if n:
                leftovers[kind] = leftovers.get(kind, 0) + int(n)
    request.steps = [*request.steps, VERIFY_STEP]
    request.counts = _added(request.counts, leftovers)
    if leftovers:
        request.state = ErasureRequest.State.FAILED
        found = ", ".join(f"{kind} {n}" for kind, n in sorted(leftovers.items()))
        request.error = f"Found again after their step (now removed): {found}."[:ERROR_MAX]
    else:
        request.state = ErasureRequest.State.DONE
        request.error = ""
    request.subject_value = ""
    request.scope = {}
    request.finished_at = timezone.now()
    request.save(
        update_fields=[
            "steps",
            "counts",
            "state",
            "error",
            "subject_value",
            "scope",
            "finished_at",
            "updated_at",
        ]
    )
    audit_record(
        tenant_id=request.tenant_id,
        action="customer.erase",
        actor=request.requested_by,
        target_type="ErasureRequest",
        target_id=str(request.id),
        data={
            # A UUID object, kept as is: a string of ids can look like a number to the audit redactor.
            "request": request.id,
            "subject_kind": request.subject_kind,
            "state": request.state,
            "counts": dict(request.counts),
            "leftovers": leftovers,
        },
    )


def erasures_resume(*, stale_after: timedelta = STALE_AFTER) -> int:
    """Runs every unfinished request nobody has touched for `stale_after` (its worker died, or its task was
    lost); returns how many finished. Called when a worker starts and by `manage.py customer_erase`."""
    cutoff = timezone.now() - stale_after
    ids = list(
        ErasureRequest.objects.filter(state__in=ErasureRequest.UNFINISHED, updated_at__lte=cutoff)
        .order_by("created_at")
        .values_list("id", flat=True)
    )
    finished = 0
    for request_id in ids:
        try:
            request = erasure_request_run(request_id=request_id)
        except Exception:
            logger.exception("erasure %s did not finish; it will be resumed again", request_id)
            continue
        finished += request.state not in ErasureRequest.UNFINISHED
    return finished
