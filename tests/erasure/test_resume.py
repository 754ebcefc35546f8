"""An erasure interrupted half way (a step that fails, or a worker killed inside a step) resumes at the
first step it had not recorded, finishes, and reports every step and the same counts as an uninterrupted
run."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from apps.conversations.models import Conversation, Message
from apps.erasure import services
from apps.erasure.models import ErasureRequest, SubjectKind
from apps.erasure.steps import DATA_STEPS, STEP_NAMES, Counts
from apps.erasure.subjects import Scope, Subject
from apps.handoff.models import Note
from apps.knowledge.models import KnowledgeGap
from tests.conftest import TenantStaff
from tests.erasure.planting import database_hits, plant_customer

pytestmark = pytest.mark.django_db


class WorkerKilled(Exception):
    pass


def _killed_inside(step_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`step_name` does its work, then dies before its transaction commits."""
    real = dict(DATA_STEPS)[step_name]

    def dying(tenant_id: uuid.UUID, scope: Scope) -> Counts:
        real(tenant_id, scope)
        raise WorkerKilled()

    steps = tuple((name, dying if name == step_name else fn) for name, fn in DATA_STEPS)
    monkeypatch.setattr(services, "DATA_STEPS", steps)


def test_interrupted_in_the_middle_step_then_resumed(
    tenant_a: TenantStaff, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    subject = Subject(kind=SubjectKind.CONTACT, value=planted.contact.external_id)
    _killed_inside("handoff", monkeypatch)

    with pytest.raises(WorkerKilled):
        services.customer_erase_request(
            tenant=tenant_a.tenant, subject=subject, actor=tenant_a.admin, run_now=True
        )

    request = ErasureRequest.objects.get(tenant=tenant_a.tenant)
    assert request.state == ErasureRequest.State.RUNNING
    assert request.steps == ["scope", "cache", "knowledge_gaps", "tool_runs", "voice", "memory"]
    assert request.error == "Step handoff failed (WorkerKilled); it will be resumed."
    assert request.subject_value == planted.contact.external_id  # still needed to resume
    # The killed step rolled back whole: its notes are still there; the steps before it are done.
    assert Note.objects.filter(conversation__in=planted.conversations).count() == 2
    assert KnowledgeGap.objects.filter(tenant=tenant_a.tenant).count() == 0

    monkeypatch.undo()
    # Asking again while it is unfinished resumes the same request rather than starting another.
    again = services.customer_erase_request(
        tenant=tenant_a.tenant, subject=subject, actor=tenant_a.admin, run_now=True
    )

    assert again.id == request.id
    assert again.state == ErasureRequest.State.DONE
    assert again.steps == list(STEP_NAMES)
    assert again.attempts == 2
    assert (again.counts["notes"], again.counts["messages"], again.counts["knowledge_gaps"]) == (2, 4, 2)
    assert database_hits(planted.marker) == {}


def test_the_sweep_resumes_what_a_dead_worker_left(
    tenant_a: TenantStaff, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    _killed_inside("messages", monkeypatch)
    with pytest.raises(WorkerKilled):
        services.customer_erase_request(
            tenant=tenant_a.tenant,
            subject=Subject(kind=SubjectKind.CONTACT, value=planted.contact.external_id),
            actor=None,
            run_now=True,
        )
    assert Message.objects.filter(conversation__in=planted.conversations).count() == 4
    monkeypatch.undo()

    assert services.erasures_resume(stale_after=timedelta(minutes=5)) == 0  # too recent: its worker may live
    assert services.erasures_resume(stale_after=timedelta(0)) == 1

    request = ErasureRequest.objects.get(tenant=tenant_a.tenant)
    assert request.state == ErasureRequest.State.DONE
    assert request.steps == list(STEP_NAMES)
    assert not Conversation.objects.filter(id__in=[c.id for c in planted.conversations]).exists()


def test_a_conversation_that_appears_mid_erasure_is_found_by_the_verification(
    tenant_a: TenantStaff, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    real = dict(DATA_STEPS)["contact"]
    written: list[Conversation] = []

    def contact_step_after_a_new_conversation(tenant_id: uuid.UUID, scope: Scope) -> Counts:
        if not written:  # the visitor writes again while their erasure runs
            written.append(Conversation.objects.create(tenant=tenant_a.tenant, visitor_id=planted.visitor_id))
        return real(tenant_id, scope)

    steps = tuple(
        (n, contact_step_after_a_new_conversation if n == "contact" else fn) for n, fn in DATA_STEPS
    )
    monkeypatch.setattr(services, "DATA_STEPS", steps)
    request = services.customer_erase_request(
        tenant=tenant_a.tenant,
        subject=Subject(kind=SubjectKind.VISITOR, value=str(planted.visitor_id)),
        actor=None,
        run_now=True,
    )

    assert request.state == ErasureRequest.State.FAILED
    assert request.error == "Found again after their step (now removed): conversations 1."
    assert request.subject_value == ""
    assert not Conversation.objects.filter(visitor_id=planted.visitor_id).exists()
