"""The publish gate (docs/architecture/releases.md): a knowledge change checked against the company's golden
answers before customers see it.

An editor's publish, roll back, unpublish or delete reaches `change_request` through the knowledge app's
hook (apps/knowledge/gate.py). A company without golden questions gets None: the change is applied at once
as before. Otherwise the change is validated now (the knowledge action's own check and a rolled-back dry
run, so a change that cannot be made is refused with the usual sentence at once), recorded as CHECKING with
two golden runs, and `gate_check_task` is queued. The check runs the golden set as published now and as it
would be (the action's `perform()` inside each question's rolled-back transaction), compares them, and
either applies the change for real through the audited knowledge action, as the editor who asked for it,
or holds it with the answers that would turn wrong until an editor confirms or cancels it.

A change is stale once its document changed after the change was requested (another publish, a roll back,
an unpublish): its comparison no longer says what it would do, so it is never applied, neither by the
check nor on confirmation.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.audit.actions import Action
from apps.audit.trail import audit_record
from apps.core.errors import Conflict, HelpdeskError, NotFound
from apps.knowledge import actions as knowledge_actions
from apps.knowledge.models import Document, DocumentVersion
from apps.releases.models import GatedChange, GoldenQuestion, GoldenRun

EDITORS = (Role.EDITOR,)  # admins hold every role (access_tenant)
STALE = (
    "The document changed after this change was checked: make the change again so the golden answers are "
    "checked against the document as it is now."
)


class _DryRun(Exception):
    """Raised to roll back a dry run's savepoint."""


def _knowledge_action(change: GatedChange, *, actor: User | None) -> knowledge_actions.KnowledgeAction[Any]:
    """The audited knowledge action that makes `change` (its `perform()` alone makes it unaudited)."""
    document = change.document
    if document is None:
        raise Conflict(f"{change.document_title} was deleted: there is nothing left to change.")
    tenant = change.tenant
    kind = change.kind
    if kind in (GatedChange.Kind.PUBLISH, GatedChange.Kind.ROLLBACK) and change.version_number is None:
        raise Conflict("Choose the version to publish.")
    if kind == GatedChange.Kind.PUBLISH:
        number = change.version_number or 0
        version = DocumentVersion.objects.filter(document=document, number=number).first()
        if version is None:
            raise Conflict(f"{document.title} no longer has a version {change.version_number}.")
        return knowledge_actions.VersionPublish(
            tenant=tenant, actor=actor, version=version, effective_date=None
        )
    if kind == GatedChange.Kind.ROLLBACK:
        return knowledge_actions.VersionRollback(
            tenant=tenant, actor=actor, document=document, number=change.version_number
        )
    if kind == GatedChange.Kind.UNPUBLISH:
        return knowledge_actions.DocumentUnpublish(tenant=tenant, actor=actor, document=document)
    return knowledge_actions.DocumentDelete(tenant=tenant, actor=actor, document=document)


def _stale(change: GatedChange) -> bool:
    document = Document.objects.filter(pk=change.document_id).first() if change.document_id else None
    return document is None or document.updated_at > change.created_at


def _audit(change: GatedChange, action: str, *, actor: User | None) -> None:
    audit_record(
        tenant_id=change.tenant_id,
        action=action,
        actor=actor,
        target=change,
        data=_audit_data(change),
    )


def _audit_data(change: GatedChange) -> dict[str, Any]:
    # Ids and counts only: the questions and answers stay on the change page.
    return {
        "document_id": str(change.document_id) if change.document_id else None,
        "kind": change.kind,
        "version": change.version_number,
        "regressions": len(change.regressions),
        "fixed": len(change.fixed),
    }


def _json_safe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {key: str(value) if isinstance(value, uuid.UUID) else value for key, value in item.items()}
        for item in items
    ]


# --- the hook: asking for a change -------------------------------------------------------------------


def change_request(
    *,
    tenant: Tenant,
    kind: str,
    document: Document,
    version_number: int | None,
    actor: User,
    effective_date: datetime.date | None = None,
) -> GatedChange | None:
    """Records the change and queues its check; None when the company has no golden questions (apply it
    directly). Raises the knowledge action's own error when the change cannot be made at all."""
    if not GoldenQuestion.objects.filter(tenant=tenant, active=True).exists():
        return None
    # Imported here: the runner pulls in the whole answer pipeline, and this module is imported at start-up
    # by every process (the hook is registered in AppConfig.ready()).
    from apps.releases.runner import golden_run_create

    with transaction.atomic():
        change = GatedChange.objects.create(
            tenant=tenant,
            kind=kind,
            document=document,
            document_title=document.title[:300],
            version_number=version_number,
            requested_by=actor,
        )
        action = _knowledge_action(change, actor=actor)
        action.check()
        try:
            with transaction.atomic():
                action.perform()
                raise _DryRun
        except _DryRun:
            pass
        if kind == GatedChange.Kind.PUBLISH and effective_date is not None and version_number is not None:
            # The draft keeps the date the editor chose, so applying it later publishes it as asked.
            DocumentVersion.objects.filter(document=document, number=version_number).update(
                effective_date=effective_date, updated_at=timezone.now()
            )
        golden_run_create(tenant=tenant, kind=GoldenRun.Kind.GATE_BEFORE, change=change, requested_by=actor)
        golden_run_create(tenant=tenant, kind=GoldenRun.Kind.GATE_AFTER, change=change, requested_by=actor)
        _audit(change, "knowledge.gate_request", actor=actor)
        change_id = str(change.id)

        def enqueue() -> None:
            from apps.releases.gate_tasks import gate_check as gate_check_task

            gate_check_task.delay(change_id)

        # robust: a broker outage must not turn the editor's request into an error once it is stored; the
        # change stays CHECKING and the editor can cancel it and ask again.
        transaction.on_commit(enqueue, robust=True)
    return change


# --- the check (gate_check_task) ---------------------------------------------------------------------


def _runs(change: GatedChange) -> tuple[GoldenRun, GoldenRun]:
    runs = {run.kind: run for run in GoldenRun.objects.filter(change=change)}
    return runs[GoldenRun.Kind.GATE_BEFORE], runs[GoldenRun.Kind.GATE_AFTER]


def _finish_failed(change_id: uuid.UUID | str, error: str) -> GatedChange:
    with transaction.atomic():
        change = GatedChange.objects.select_for_update().get(pk=change_id)
        if change.status == GatedChange.Status.CHECKING:
            change.status = GatedChange.Status.FAILED
            change.error = error
            change.save(update_fields=["status", "error", "updated_at"])
    return change


def change_check(*, change_id: uuid.UUID | str) -> GatedChange | None:
    """Runs the golden set before and after the change, then applies or holds it. Idempotent: a change
    that is no longer being checked (decided, cancelled, re-delivered after it finished) is left alone."""
    change = GatedChange.objects.select_related("tenant", "requested_by").filter(pk=change_id).first()
    if change is None or change.status != GatedChange.Status.CHECKING:
        return change
    if _stale(change):
        return _finish_failed(change.id, STALE)
    from apps.releases.runner import golden_run_compare, golden_run_execute

    before_run, after_run = _runs(change)
    change_pk = change.pk

    def prepare() -> None:
        # Inside the rolled-back transaction of each question: the knowledge as it would be, unaudited.
        fresh = GatedChange.objects.select_related("tenant").get(pk=change_pk)
        _knowledge_action(fresh, actor=fresh.requested_by).perform()

    before = golden_run_execute(run_id=before_run.id)
    after = golden_run_execute(run_id=after_run.id, prepare=prepare)
    for run in (before, after):
        if run.status != GoldenRun.Status.DONE:
            return _finish_failed(change.id, run.error or "The golden answers could not be checked.")
    diff = golden_run_compare(before, after)
    with transaction.atomic():
        change = (
            GatedChange.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=change.id)
        )
        if change.status != GatedChange.Status.CHECKING:
            return change  # cancelled while it was being checked
        change.regressions = _json_safe(diff["regressions"])
        change.fixed = _json_safe(diff["fixed"])
        fields = ["status", "regressions", "fixed", "error", "updated_at"]
        if change.regressions:
            change.status = GatedChange.Status.HELD
            _audit(change, "knowledge.gate_held", actor=None)
        elif change.requested_by is None:
            change.status = GatedChange.Status.FAILED
            change.error = "The editor who asked for this change no longer works here: make it again."
        elif _stale(change):
            change.status = GatedChange.Status.FAILED
            change.error = STALE
        else:
            try:
                with transaction.atomic():
                    _knowledge_action(change, actor=change.requested_by).execute()
            except HelpdeskError as exc:
                change.status = GatedChange.Status.FAILED
                change.error = exc.message
            else:
                change.status = GatedChange.Status.APPLIED
                change.applied_at = timezone.now()
                fields.append("applied_at")
                _audit(change, "knowledge.gate_pass", actor=None)
        change.save(update_fields=fields)
    return change


# --- an editor's decision on a held change --------------------------------------------------------------


class _Decision(Action[GatedChange]):
    target_type = "GatedChange"
    tenant: Tenant

    def check(self) -> None:
        access_tenant(actor=self.actor, slug=self.tenant.slug, roles=EDITORS)
        if self.params["change"].tenant_id != self.tenant.id:
            raise NotFound()

    def _locked(self, allowed: tuple[str, ...], verb: str) -> GatedChange:
        change = (
            GatedChange.objects.select_for_update(of=("self",))
            .select_related("tenant")
            .get(pk=self.params["change"].pk)
        )
        if change.status not in allowed:
            raise Conflict(
                f"This change is {change.get_status_display().lower()}: it can no longer be {verb}."
            )
        return change

    def audit_data(self, result: GatedChange) -> dict[str, Any]:
        return _audit_data(result)


class GateConfirm(_Decision):
    """'Publish anyway': the held change applied, as the editor who confirms it."""

    action = "knowledge.gate_confirm"

    def perform(self) -> GatedChange:
        change = self._locked((GatedChange.Status.HELD,), "confirmed")
        if _stale(change):
            raise Conflict(STALE)
        _knowledge_action(change, actor=self.actor).execute()
        now = timezone.now()
        change.status = GatedChange.Status.APPLIED
        change.decided_by = self.actor
        change.decided_at = now
        change.applied_at = now
        change.save(update_fields=["status", "decided_by", "decided_at", "applied_at", "updated_at"])
        return change


class GateCancel(_Decision):
    action = "knowledge.gate_cancel"

    def perform(self) -> GatedChange:
        change = self._locked((GatedChange.Status.CHECKING, GatedChange.Status.HELD), "cancelled")
        change.status = GatedChange.Status.CANCELLED
        change.decided_by = self.actor
        change.decided_at = timezone.now()
        change.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
        return change


def change_confirm(*, change: GatedChange, actor: User) -> GatedChange:
    return GateConfirm(tenant=change.tenant, actor=actor, change=change).execute()


def change_cancel(*, change: GatedChange, actor: User) -> GatedChange:
    return GateCancel(tenant=change.tenant, actor=actor, change=change).execute()


# --- reads ---------------------------------------------------------------------------------------------


def changes_pending(*, document: Document) -> list[GatedChange]:
    """The document's changes still being checked or held, oldest first (the document page links them)."""
    return list(
        GatedChange.objects.filter(
            tenant_id=document.tenant_id,
            document=document,
            status__in=(GatedChange.Status.CHECKING, GatedChange.Status.HELD),
        ).order_by("created_at")
    )


def access_change(*, tenant: Tenant, change_id: str | uuid.UUID) -> GatedChange:
    """The company's change, or NotFound (another company's id, or no such change)."""
    try:
        key = uuid.UUID(str(change_id))
    except ValueError:
        raise NotFound() from None
    change = (
        GatedChange.objects.select_related("tenant", "document", "requested_by", "decided_by")
        .filter(tenant=tenant, pk=key)
        .first()
    )
    if change is None:
        raise NotFound()
    return change


def change_title(change: GatedChange) -> str:
    if change.kind == GatedChange.Kind.PUBLISH:
        return f"Publish version {change.version_number} of {change.document_title}"
    if change.kind == GatedChange.Kind.ROLLBACK:
        return f"Roll {change.document_title} back to version {change.version_number}"
    if change.kind == GatedChange.Kind.UNPUBLISH:
        return f"Unpublish {change.document_title}"
    return f"Delete {change.document_title}"


def change_progress(change: GatedChange) -> dict[str, Any]:
    """What the change page polls while the golden answers are checked."""
    runs = sorted(
        GoldenRun.objects.filter(change=change), key=lambda run: run.kind != GoldenRun.Kind.GATE_BEFORE
    )
    return {
        "id": str(change.id),
        "kind": change.kind,
        "status": change.status,
        "status_label": change.get_status_display(),
        "finished": change.status != GatedChange.Status.CHECKING,
        "regression_count": len(change.regressions),
        "fixed_count": len(change.fixed),
        "error": change.error,
        "runs": [
            {
                "kind": run.kind,
                "label": run.get_kind_display(),
                "status": run.status,
                "done": run.done,
                "total": run.total,
            }
            for run in runs
        ],
    }
