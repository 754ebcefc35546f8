"""Canaries (docs/architecture/releases.md): a candidate model answers a share of a company's new
conversations, compared with the current model, and is stopped when it does worse.

    canary_start     an admin asks: checked at once (share, candidate, no other canary), then CHECKING
    canary_check     Celery: the golden set through the current model and the candidate; a candidate that
                     passes fewer questions, or fails one the current passes, is REFUSED; else RUNNING
    canary_evaluate  after each reply of a canary conversation and every 30 s: once the candidate arm has
                     `min_conversations`, a guardrail rate (abstention, unsupported, error) above the
                     current's by more than its bound STOPS it (canary_stop)
    canary_promote   an admin: the candidate becomes the company's model (TenantModel)
    canary_cancel    an admin stops it

Stopping or cancelling sends every candidate conversation back to the current model: its endpoint is
cleared (its arm is kept for the comparison) and the customer is told in the conversation. Status changes
are compare-and-set updates (`filter(status=...).update(...)`): two evaluations, or an evaluation and an
admin, can race and exactly one of them wins; no row lock outside the desk's lock order is taken.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.mail import tenant_admins_email
from apps.accounts.models import Tenant, User
from apps.audit.trail import audit_record
from apps.conversations.events import event_append
from apps.conversations.locks import conversation_lock
from apps.conversations.models import Conversation, Message
from apps.llm.models import Canary, ModelEndpoint
from apps.releases.canary_actions import CanaryCancel, CanaryPromote, CanaryStart
from apps.releases.canary_selectors import GUARDRAILS, canary_breach, canary_indicators
from apps.releases.models import GoldenRun

logger = logging.getLogger(__name__)

Status = Canary.Status
# What a customer whose conversation leaves the candidate is told (event `conversation.notice`).
NOTICE_CODE = "model_changed"
NOTICE_TEXT = (
    "We've switched this chat back to our usual assistant to keep answers reliable; "
    "your messages are all still here."
)


# ---- starting ----------------------------------------------------------------------------------------------


def canary_start(
    *,
    tenant: Tenant,
    candidate: ModelEndpoint | uuid.UUID | str | None,
    share: Any,
    min_conversations: Any = 20,
    bounds: dict[str, Any] | None = None,
    actor: User,
) -> Canary:
    """A canary of `candidate` at `share` percent of new conversations, checking its golden answers first.
    Refused (one sentence) for a share outside 1..100, another company's or the current endpoint, or while
    another canary is checking or running."""
    return CanaryStart(
        tenant=tenant,
        actor=actor,
        candidate=candidate,
        share=share,
        min_conversations=min_conversations,
        bounds=bounds,
    ).execute()


# ---- the golden check -------------------------------------------------------------------------------------


def canary_check(*, canary_id: uuid.UUID | str) -> Canary | None:
    """The golden set through the current model and the candidate; REFUSED or RUNNING. Idempotent: a
    redelivered task reuses the runs it created and does nothing once the canary has left CHECKING."""
    from apps.releases.runner import golden_run_compare, golden_run_create, golden_run_execute

    canary = Canary.objects.filter(pk=canary_id).select_related("tenant", "candidate").first()
    if canary is None or canary.status != Status.CHECKING:
        return canary
    golden = dict(canary.golden)
    if not golden.get("current_run"):
        kind = GoldenRun.Kind.CANARY
        runs = (
            golden_run_create(
                tenant=canary.tenant, kind=kind, endpoint=canary.current, requested_by=canary.started_by
            ),
            golden_run_create(
                tenant=canary.tenant, kind=kind, endpoint=canary.candidate, requested_by=canary.started_by
            ),
        )
        golden = {"current_run": str(runs[0].id), "candidate_run": str(runs[1].id)}
        Canary.objects.filter(pk=canary.pk, status=Status.CHECKING).update(golden=golden)
    try:
        current = golden_run_execute(run_id=golden["current_run"])
        candidate = golden_run_execute(run_id=golden["candidate_run"])
    except Exception as exc:
        logger.exception("golden check of canary %s failed", canary.pk)
        return _check_decide(
            canary, golden, refused=f"The golden check could not run ({exc.__class__.__name__})."
        )
    if any(r.status in (GoldenRun.Status.QUEUED, GoldenRun.Status.RUNNING) for r in (current, candidate)):
        return canary  # another worker is running a run now (a duplicated task): it decides
    failed = next((r for r in (current, candidate) if r.status != GoldenRun.Status.DONE), None)
    if failed is not None:
        return _check_decide(
            canary, golden, refused=f"The golden check could not run: {failed.error or 'it did not finish.'}"
        )
    regressions = golden_run_compare(current, candidate)["regressions"]
    golden.update(
        {
            "total": current.total,
            "current_passed": current.passed,
            "candidate_passed": candidate.passed,
            "regressions": [str(r.get("question", "")) for r in regressions],
        }
    )
    return _check_decide(canary, golden, refused=_golden_verdict(current, candidate, regressions))


def _golden_verdict(current: GoldenRun, candidate: GoldenRun, regressions: list[dict[str, Any]]) -> str:
    """Why the candidate is refused, one sentence; empty when it may run."""
    if candidate.passed < current.passed:
        return (
            f"The candidate passed {candidate.passed} of {candidate.total} golden questions, "
            f"fewer than the current model's {current.passed}."
        )
    if regressions:
        first = str(regressions[0].get("question", ""))[:120]
        more = f" and {len(regressions) - 1} more" if len(regressions) > 1 else ""
        return f"The candidate got wrong golden questions the current model answers right: “{first}”{more}."
    return ""


def _check_decide(canary: Canary, golden: dict[str, Any], *, refused: str) -> Canary:
    now = timezone.now()
    with transaction.atomic():
        if refused:
            won = Canary.objects.filter(pk=canary.pk, status=Status.CHECKING).update(
                status=Status.REFUSED, reason=refused, golden=golden, ended_at=now, updated_at=now
            )
            if won:
                _audit(canary, "canary.refuse", {"reason": refused, "golden": _golden_counts(golden)})
        else:
            won = Canary.objects.filter(pk=canary.pk, status=Status.CHECKING).update(
                status=Status.RUNNING, golden=golden, started_at=now, updated_at=now
            )
            if won:
                _audit(canary, "canary.run", {"golden": _golden_counts(golden)})
    canary.refresh_from_db()
    return canary


def _golden_counts(golden: dict[str, Any]) -> dict[str, Any]:
    return {k: golden.get(k) for k in ("total", "current_passed", "candidate_passed")}


def _audit(canary: Canary, action: str, data: dict[str, Any], actor: User | None = None) -> None:
    audit_record(
        tenant_id=canary.tenant_id,
        action=action,
        actor=actor,
        target_type="Canary",
        target_id=str(canary.pk),
        data={"candidate_id": str(canary.candidate_id), **data},
    )


# ---- watching ---------------------------------------------------------------------------------------------


def canary_evaluate(canary: Canary | uuid.UUID | str) -> Canary | None:
    """Compares the arms of a running canary, keeps the comparison on the row and stops the canary when a
    guardrail indicator of the candidate regressed past its bound."""
    canary_id = canary.pk if isinstance(canary, Canary) else canary
    row = Canary.objects.filter(pk=canary_id).select_related("tenant").first()
    if row is None or row.status != Status.RUNNING:
        return row
    indicators = canary_indicators(row)
    Canary.objects.filter(pk=row.pk, status=Status.RUNNING).update(
        indicators=indicators, updated_at=timezone.now()
    )
    row.indicators = indicators
    breach = canary_breach(row, indicators)
    if breach:
        return canary_stop(canary=row, reason=breach)
    return row


def canary_stop(*, canary: Canary, reason: str) -> Canary:
    """Stopped automatically: audited as the system, admins emailed, candidate conversations sent back."""
    now = timezone.now()
    with transaction.atomic():
        won = Canary.objects.filter(pk=canary.pk, status=Status.RUNNING).update(
            status=Status.STOPPED, reason=reason, ended_at=now, updated_at=now
        )
        if won:
            _audit(canary, "canary.stop", {"reason": reason, "indicators": _arm_rates(canary.indicators)})
            tenant, canary_id = canary.tenant, canary.pk
            transaction.on_commit(lambda: _admins_tell(tenant, canary_id, reason))
    canary.refresh_from_db()
    if won:
        logger.warning("canary %s of %s stopped: %s", canary.pk, canary.tenant.slug, reason)
        canary_send_back(canary=canary)
    return canary


def _arm_rates(indicators: dict[str, Any]) -> dict[str, Any]:
    return {
        arm: {k: (indicators.get(arm) or {}).get(f"{k}_rate") for k in GUARDRAILS}
        for arm in ("current", "candidate")
    }


def _admins_tell(tenant: Tenant, canary_id: uuid.UUID, reason: str) -> None:
    tenant_admins_email(
        tenant=tenant,
        subject="A model canary was stopped automatically",
        body=(
            f"{reason}\n\nIts conversations are back on the current model.\n"
            f"See the models page: /staff/{tenant.slug}/models/#canary-{canary_id}\n"
        ),
        what="canary",
    )


def canary_send_back(*, canary: Canary) -> int:
    """Every conversation still on the candidate of an ended canary goes back to the current model, one
    conversation per transaction (under its row lock, with its notice). Returns how many moved."""
    moved = 0
    pending = Conversation.objects.filter(
        tenant_id=canary.tenant_id, canary=canary, model_endpoint_id=canary.candidate_id
    ).values_list("id", flat=True)
    for conversation_id in list(pending):
        with transaction.atomic():
            conversation = conversation_lock(conversation_id=conversation_id, tenant_id=canary.tenant_id)
            if conversation.model_endpoint_id != canary.candidate_id:
                continue
            conversation.model_endpoint = None
            conversation.save(update_fields=["model_endpoint", "updated_at"])
            event_append(
                conversation,
                "conversation.notice",
                data={"code": NOTICE_CODE, "text": NOTICE_TEXT},
            )
            moved += 1
    return moved


def canary_reply_finished(message: Message) -> None:
    """The conversations hook after each reply: evaluates its running canary, or sends the conversation
    back if its canary ended while it was being created (its assignment raced the stop)."""
    row = (
        Conversation.objects.filter(pk=message.conversation_id, canary__isnull=False)
        .values("canary_id", "canary__status", "model_endpoint_id", "canary__candidate_id")
        .first()
    )
    if row is None:
        return
    if row["canary__status"] == Status.RUNNING:
        canary_evaluate(row["canary_id"])
    elif (
        row["model_endpoint_id"]
        and row["model_endpoint_id"] == row["canary__candidate_id"]
        and row["canary__status"] in (Status.STOPPED, Status.CANCELLED)
    ):
        ended = Canary.objects.filter(pk=row["canary_id"]).first()
        if ended is not None:
            canary_send_back(canary=ended)


def canaries_evaluate() -> int:
    """The beat task: every running canary evaluated; stragglers of ended ones sent back. Returns how many
    canaries were looked at."""
    seen = 0
    for canary in Canary.objects.filter(status=Status.RUNNING).select_related("tenant"):
        canary_evaluate(canary)
        seen += 1
    recent = timezone.now() - datetime.timedelta(days=1)
    ended = Canary.objects.filter(status__in=(Status.STOPPED, Status.CANCELLED), ended_at__gte=recent)
    for canary in ended.select_related("tenant"):
        if Conversation.objects.filter(canary=canary, model_endpoint_id=canary.candidate_id).exists():
            canary_send_back(canary=canary)
        seen += 1
    return seen


# ---- admins' decisions ------------------------------------------------------------------------------------


def canary_promote(*, tenant: Tenant, canary: Canary, actor: User) -> Canary:
    """The candidate becomes the company's model; its conversations stay on it (it is now the current)."""
    return CanaryPromote(tenant=tenant, actor=actor, canary=canary).execute()


def canary_cancel(*, tenant: Tenant, canary: Canary, actor: User) -> Canary:
    """An admin stops a checking or running canary; its candidate conversations are sent back."""
    result = CanaryCancel(tenant=tenant, actor=actor, canary=canary).execute()
    canary_send_back(canary=result)
    return result
