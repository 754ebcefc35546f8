"""Golden runs: a company's golden questions asked through the real answer pipeline, graded, and left
without a trace (docs/architecture/releases.md).

Each question is a rehearsal (apps/core/rehearsal.py) inside its own transaction, rolled back at the end:

    atomic ─ prepare() (a knowledge change as it would be, for the publish gate)
           ─ a "cli" conversation answered by `endpoint` (None: the company's current model)
           ─ the question stored as the customer's message (redaction, input checks, as ever)
           ─ assistant_turn_run through async_to_sync: every query of the turn on this thread, in this
             transaction; no answer cache, no metrics, no handoff, nothing queued
           ─ the reply and its AssistantTrace read back and graded (apps/releases/grading.py)
    rollback: the conversation, messages, trace, audit rows and knowledge gaps are gone.

Then, committed at once so progress pages see it, the question's GoldenResult and the run's `done`.
`golden_evaluate` must not be called inside an open transaction (the rollback would take the caller's
writes too); tests inside pytest-django's transaction get savepoints.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.models import Tenant, User
from apps.conversations.assistant import TurnResult, assistant_turn_run
from apps.conversations.models import AssistantTrace, Conversation, Message
from apps.conversations.services import cli_message_receive, conversation_start
from apps.core.errors import HelpdeskError, NotFound
from apps.core.rehearsal import rehearsal
from apps.llm.clients import close_async_clients
from apps.llm.models import ModelEndpoint
from apps.llm.profiles import style_for
from apps.llm.routing import Route, route_for, tenant_current_endpoint
from apps.releases import grading, report
from apps.releases.models import GatedChange, GoldenQuestion, GoldenResult, GoldenRun
from apps.releases.selectors import golden_questions_active

logger = logging.getLogger(__name__)

FAILURE_MAX = 64
# A run still "running" after this long lost its worker (killed, restarted): a re-delivery runs it again.
# Above the task's hard time limit (tasks.py), so a live worker's run is never started twice.
RUN_STALE_AFTER = timedelta(minutes=35)


@dataclass
class GoldenOutcome:
    question: GoldenQuestion
    ordinal: int
    right: bool
    abstained: bool
    failure: str  # "" | the reply's status ("failed", "interrupted") | "no content" | "error: ..."
    answer: str  # as the customer would have seen it
    cited: list[str]  # citation titles
    first_content_ms: float | None
    complete_ms: float | None
    # {"shown": [...], "dropped": n, "unsupported": [...], "cache": "", "style": ..., "model": ...}
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.right and not self.failure and not self.detail.get("unsupported")


class PrepareFailed(Exception):
    """The hypothetical change could not be applied: no question can be asked under it."""


def run_route(*, tenant: Tenant, endpoint: ModelEndpoint | None) -> Route:
    """The model a run's conversations are answered by."""
    return route_for(endpoint if endpoint is not None else tenant_current_endpoint(tenant.id))


def golden_evaluate(
    *,
    tenant: Tenant,
    questions: Iterable[GoldenQuestion],
    endpoint: ModelEndpoint | None = None,
    prepare: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    each: Callable[[GoldenOutcome], None] | None = None,
) -> list[GoldenOutcome]:
    """Asks each question as a rehearsal and grades the answer. `progress(done, total)` after each;
    `each(outcome)` too (the run stores it). A question whose turn raised is a failed outcome; a
    `prepare` that raised stops everything (PrepareFailed)."""
    asked = list(questions)
    label = run_route(tenant=tenant, endpoint=endpoint).label
    outcomes: list[GoldenOutcome] = []
    for ordinal, question in enumerate(asked, start=1):
        outcome = _rehearse(
            tenant=tenant, question=question, ordinal=ordinal, endpoint=endpoint, prepare=prepare, label=label
        )
        outcomes.append(outcome)
        if each is not None:
            each(outcome)
        if progress is not None:
            progress(ordinal, len(asked))
    return outcomes


def _rehearse(
    *,
    tenant: Tenant,
    question: GoldenQuestion,
    ordinal: int,
    endpoint: ModelEndpoint | None,
    prepare: Callable[[], None] | None,
    label: str,
) -> GoldenOutcome:
    try:
        with rehearsal(), transaction.atomic():
            if prepare is not None:
                try:
                    prepare()
                except Exception as exc:
                    raise PrepareFailed(_sentence(exc)) from exc
            outcome = _ask(tenant=tenant, question=question, ordinal=ordinal, endpoint=endpoint, label=label)
            transaction.set_rollback(True)
        return outcome
    except PrepareFailed:
        raise
    except Exception as exc:  # one question's failure is its result, not the run's end
        logger.warning("golden question %s failed: %s", question.id, exc.__class__.__name__, exc_info=True)
        return GoldenOutcome(
            question=question,
            ordinal=ordinal,
            right=False,
            abstained=False,
            failure=f"error: {exc.__class__.__name__}"[:FAILURE_MAX],
            answer="",
            cited=[],
            first_content_ms=None,
            complete_ms=None,
            detail={"shown": [], "dropped": 0, "unsupported": [], "cache": "", "style": "", "model": label},
        )


def _ask(
    *, tenant: Tenant, question: GoldenQuestion, ordinal: int, endpoint: ModelEndpoint | None, label: str
) -> GoldenOutcome:
    conversation = conversation_start(tenant=tenant, channel=Conversation.Channel.CLI)
    # The run's model, whatever a running canary would have drawn for a customer's new conversation.
    Conversation.objects.filter(pk=conversation.pk).update(
        model_endpoint=endpoint, canary=None, canary_arm=""
    )
    received_at = time.monotonic()
    receipt = cli_message_receive(
        conversation=conversation, client_msg_id=f"golden-{uuid.uuid4().hex[:16]}", text=question.question
    )

    async def turn() -> TurnResult:
        try:
            return await assistant_turn_run(
                tenant=tenant,
                conversation_id=conversation.id,
                turn=receipt.message.turn,
                received_at=received_at,
            )
        finally:
            await close_async_clients()  # this event loop ends with the turn

    result = async_to_sync(turn)()
    complete_ms = round((time.monotonic() - received_at) * 1000, 1)
    reply = result.message
    if reply is None:
        raise RuntimeError("the golden question's turn was superseded")
    trace = AssistantTrace.objects.filter(message=reply).first()
    retrieval: dict[str, Any] = dict(trace.retrieval) if trace is not None else {}
    return grade_reply(
        question=question,
        ordinal=ordinal,
        reply=reply,
        retrieval=retrieval,
        complete_ms=complete_ms,
        label=label,
    )


def grade_reply(
    *,
    question: GoldenQuestion,
    ordinal: int,
    reply: Message,
    retrieval: dict[str, Any],
    complete_ms: float | None,
    label: str,
) -> GoldenOutcome:
    """The outcome of one reply: graded as bench/answers.py grades the acceptance set."""
    ttft = (reply.timings or {}).get("ttft_ms")
    failure = ""
    if reply.status != Message.Status.COMPLETE:
        failure = str(reply.status)
    elif ttft is None:
        failure = "no content"
    titles = [str(c.get("title") or "") for c in reply.citations or [] if isinstance(c, dict)]
    verdict = grading.answer_grade(
        text=reply.text,
        titles=titles,
        answerable=not question.must_abstain,
        expect=question.expect or [],
        document=question.document_title,
        reply_abstained=reply.abstained,
    )
    answer_info = retrieval.get("answer") or {}
    shown = [str(s) for s in answer_info.get("shown") or []]
    return GoldenOutcome(
        question=question,
        ordinal=ordinal,
        right=verdict.right and not failure,
        abstained=verdict.abstained,
        failure=failure[:FAILURE_MAX],
        answer=reply.text,
        cited=list(dict.fromkeys(titles)),  # each policy once, in the order cited
        first_content_ms=float(ttft) if ttft is not None else None,
        complete_ms=complete_ms,
        detail={
            "shown": shown,
            "dropped": len(answer_info.get("dropped") or []),
            "unsupported": grading.unsupported_numbers(
                shown=shown,
                evidence=grading.trace_evidence_sentences(retrieval),
                question=question.question,
            ),
            "cache": str((retrieval.get("cache") or {}).get("result", "")),
            "style": str(answer_info.get("style") or ""),
            "model": label,
        },
    )


# ---- runs ------------------------------------------------------------------------------------------------


def golden_run_create(
    *,
    tenant: Tenant,
    kind: str,
    endpoint: ModelEndpoint | None = None,
    change: GatedChange | None = None,
    requested_by: User | None = None,
) -> GoldenRun:
    """A queued run of the company's active golden set (its total counted now)."""
    if kind not in GoldenRun.Kind.values:
        raise ValueError(f"unknown golden run kind {kind!r}")
    if endpoint is not None and endpoint.tenant_id not in (None, tenant.id):
        raise NotFound("There is no such model endpoint.")
    if change is not None and change.tenant_id != tenant.id:
        raise NotFound("There is no such knowledge change.")
    route = run_route(tenant=tenant, endpoint=endpoint)
    return GoldenRun.objects.create(
        tenant=tenant,
        kind=kind,
        endpoint=endpoint,
        model_label=_model_label(route),
        change=change,
        total=golden_questions_active(tenant).count(),
        requested_by=requested_by,
    )


def _model_label(route: Route) -> str:
    return f"{route.model} at {route.base_url}"[:300]


def _claim(run_id: uuid.UUID | str) -> GoldenRun | None:
    """Marks the run running, or None when it finished or another worker runs it now. A run left running
    by a lost worker starts again from its first question (rehearsals have no effects to repeat)."""
    with transaction.atomic():
        run = (
            GoldenRun.objects.select_for_update(of=("self",))
            .select_related("tenant", "endpoint")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.status in (GoldenRun.Status.DONE, GoldenRun.Status.FAILED):
            return None
        now = timezone.now()
        if (
            run.status == GoldenRun.Status.RUNNING
            and run.started_at
            and now - run.started_at < RUN_STALE_AFTER
        ):
            return None
        run.results.all().delete()
        run.status = GoldenRun.Status.RUNNING
        run.started_at = now
        run.done = run.passed = 0
        run.total = golden_questions_active(run.tenant).count()
        run.save(update_fields=["status", "started_at", "done", "passed", "total", "updated_at"])
    return run


def golden_run_execute(*, run_id: uuid.UUID | str, prepare: Callable[[], None] | None = None) -> GoldenRun:
    """Runs a queued run: running → one GoldenResult and `done` + 1 per question, each committed → done
    (passed, summary, duration) or failed (error, one sentence). Idempotent: a finished run, or one a live
    worker is running, is returned as it is."""
    run = _claim(run_id)
    if run is None:
        found = GoldenRun.objects.filter(pk=run_id).first()
        if found is None:
            raise NotFound("There is no such golden run.")
        return found
    tenant = run.tenant
    started = time.monotonic()
    route = run_route(tenant=tenant, endpoint=run.endpoint)
    style, _ = style_for(tenant, route)
    GoldenRun.objects.filter(pk=run.pk).update(model_label=_model_label(route), style=style)

    def store(outcome: GoldenOutcome) -> None:
        with transaction.atomic():
            GoldenResult.objects.create(
                run=run,
                question=outcome.question,
                ordinal=outcome.ordinal,
                question_text=outcome.question.question,
                answerable=not outcome.question.must_abstain,
                right=outcome.right,
                abstained=outcome.abstained,
                failure=outcome.failure,
                answer=outcome.answer,
                cited=outcome.cited,
                first_content_ms=outcome.first_content_ms,
                complete_ms=outcome.complete_ms,
                detail=outcome.detail,
            )
            GoldenRun.objects.filter(pk=run.pk).update(
                done=F("done") + 1, passed=F("passed") + int(outcome.passed), updated_at=timezone.now()
            )

    try:
        outcomes = golden_evaluate(
            tenant=tenant,
            questions=golden_questions_active(tenant),
            endpoint=run.endpoint,
            prepare=prepare,
            each=store,
        )
    except Exception as exc:
        logger.warning("golden run %s failed: %s", run.pk, exc.__class__.__name__, exc_info=True)
        GoldenRun.objects.filter(pk=run.pk).update(
            status=GoldenRun.Status.FAILED,
            error=_run_error(exc),
            finished_at=timezone.now(),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            updated_at=timezone.now(),
        )
        return GoldenRun.objects.get(pk=run.pk)
    styles = {o.detail.get("style") for o in outcomes if o.detail.get("style")}
    GoldenRun.objects.filter(pk=run.pk).update(
        status=GoldenRun.Status.DONE,
        style=styles.pop() if len(styles) == 1 else style,
        summary=summary_row(outcomes),
        finished_at=timezone.now(),
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        updated_at=timezone.now(),
    )
    return GoldenRun.objects.get(pk=run.pk)


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, HelpdeskError):
        return exc.message
    return f"{exc.__class__.__name__}."


def _run_error(exc: Exception) -> str:
    if isinstance(exc, PrepareFailed):
        return f"The change could not be tried out on the golden answers: {exc}"
    return f"The golden run stopped on an error ({exc.__class__.__name__}); run it again."


def summary_row(outcomes: list[GoldenOutcome]) -> dict[str, Any]:
    """bench/answers.py's row for the run (report.table_row reads it)."""
    answerable = [o for o in outcomes if not o.question.must_abstain]
    unanswerable = [o for o in outcomes if o.question.must_abstain]
    unsupported = [u for o in outcomes for u in o.detail.get("unsupported") or []]
    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "right": sum(o.right for o in answerable),
        "unanswerable": len(unanswerable),
        "abstained_right": sum(o.right for o in unanswerable),
        "wrongly_abstained": sum(o.abstained for o in answerable),
        "answered_unanswerable": sum(not o.abstained and not o.failure for o in unanswerable),
        "composed_shown": sum(len(o.detail.get("shown") or []) for o in outcomes),
        "unsupported_shown": len(unsupported),
        "dropped": sum(int(o.detail.get("dropped") or 0) for o in outcomes),
        "cache_hits": sum(str(o.detail.get("cache", "")).startswith("hit") for o in outcomes),
        "failed": sum(bool(o.failure) for o in outcomes),
        "passed": sum(o.passed for o in outcomes),
        "first_content_ms": report.p50_p95(
            [o.first_content_ms for o in outcomes if o.first_content_ms is not None]
        ),
        "complete_ms": report.p50_p95([o.complete_ms for o in outcomes if o.complete_ms is not None]),
    }


def golden_run_compare(before: GoldenRun, after: GoldenRun) -> dict[str, list[dict[str, Any]]]:
    """By question: passed before and not after is a regression; not before and passed after, fixed."""

    def passed(result: GoldenResult) -> bool:
        return result.right and not result.failure and not (result.detail or {}).get("unsupported")

    def by_question(run: GoldenRun) -> dict[uuid.UUID, GoldenResult]:
        return {r.question_id: r for r in run.results.order_by("ordinal") if r.question_id is not None}

    old, new = by_question(before), by_question(after)
    regressions, fixed = [], []
    for question_id, result in new.items():
        earlier = old.get(question_id)
        if earlier is None:
            continue
        item = {
            "question_id": str(question_id),
            "question": result.question_text,
            "before": earlier.answer,
            "after": result.answer,
            "before_cited": list(earlier.cited or []),
            "after_cited": list(result.cited or []),
            "after_failure": result.failure,
        }
        if passed(earlier) and not passed(result):
            regressions.append(item)
        elif passed(result) and not passed(earlier):
            fixed.append(item)
    return {"regressions": regressions, "fixed": fixed}
