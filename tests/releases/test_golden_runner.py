"""Golden runs (apps/releases/runner.py) through the real answer pipeline, database, Redis and embedder:
a rehearsal leaves nothing behind, runs store results and progress, a failing question is a failed result,
and comparing two runs finds the answers a knowledge change breaks or fixes."""

from __future__ import annotations

import threading
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit.metrics import metrics_render
from apps.audit.models import AuditEvent
from apps.conversations.models import AssistantTrace, CachedAnswer, Conversation, Message
from apps.core.redis import state_redis
from apps.knowledge import ingestion
from apps.knowledge import services as kb
from apps.knowledge.models import Document, KnowledgeGap
from apps.releases import services
from apps.releases.models import GoldenQuestion, GoldenResult, GoldenRun
from apps.releases.runner import golden_evaluate, golden_run_compare, golden_run_create, golden_run_execute
from tests.conversations.conftest import REFUND_POLICY, ROAMING_POLICY, answers_configure, publish

ROAMING_Q = "Is roaming in the European Union free?"
REFUND_Q = "Within how many days can I return a device for a refund?"
LAPTOP_Q = "Do you sell laptops?"
PHONES_POLICY = b"""# Phones

## Phones we sell

Nimbus sells smartphones and tablets in its shops and online; it does not sell laptops or desktop computers.
"""


def _golden_set(tenant: Any) -> list[GoldenQuestion]:
    return [
        services.golden_question_create(
            tenant=tenant,
            question=ROAMING_Q,
            expect=["no extra charge"],
            document_title="roaming",
            actor=None,
        ),
        services.golden_question_create(
            tenant=tenant, question=REFUND_Q, expect=["14 days"], document_title="refunds", actor=None
        ),
        services.golden_question_create(tenant=tenant, question=LAPTOP_Q, must_abstain=True, actor=None),
    ]


@pytest.fixture
def golden_tenant(make_tenant: Any) -> Any:
    tenant = make_tenant(slug=f"golden-{uuid.uuid4().hex[:8]}", name="Nimbus Telecom")
    publish(tenant, ROAMING_POLICY, "roaming.md")
    publish(tenant, REFUND_POLICY, "refunds.md")
    answers_configure(tenant, style="quote")
    _golden_set(tenant)
    return tenant


def _counts(tenant: Any) -> dict[str, int]:
    return {
        "conversations": Conversation.objects.filter(tenant=tenant).count(),
        "messages": Message.objects.filter(tenant=tenant).count(),
        "traces": AssistantTrace.objects.filter(tenant=tenant).count(),
        "audit": AuditEvent.objects.filter(tenant_id=tenant.id).count(),
        "gaps": KnowledgeGap.objects.filter(tenant=tenant).count(),
        "cached": CachedAnswer.objects.filter(tenant=tenant).count(),
    }


@pytest.mark.django_db(transaction=True)
def test_a_rehearsal_answers_for_real_and_leaves_no_trace(golden_tenant):
    # A customer asked the roaming question before: its answer is cached, and a golden run must not use it.
    asked = StringIO()
    call_command("ask", ROAMING_Q, "--tenant", golden_tenant.slug, "--json", stdout=asked)
    before = _counts(golden_tenant)
    assert before["cached"] == 1
    keys_before = _redis_keys(golden_tenant)
    assert any(key.startswith("hd:turn:") for key in keys_before)  # the customer's turn marker

    outcomes = golden_evaluate(
        tenant=golden_tenant,
        questions=GoldenQuestion.objects.filter(tenant=golden_tenant).order_by("created_at"),
    )

    assert [(o.ordinal, o.question.question, o.passed, o.failure) for o in outcomes] == [
        (1, ROAMING_Q, True, ""),
        (2, REFUND_Q, True, ""),
        (3, LAPTOP_Q, True, ""),
    ]
    roaming, refund, laptop = outcomes
    assert "at no extra charge" in roaming.answer
    assert roaming.cited == ["roaming"]
    assert "14 days" in refund.answer
    assert refund.cited == ["refunds"]
    assert (laptop.abstained, laptop.cited) == (True, [])
    assert "couldn't find" in laptop.answer
    for outcome in outcomes:
        # Not even looked up: a cache lookup writes "miss" or "hit_..." here.
        assert outcome.detail["cache"] == ""
        assert outcome.first_content_ms is not None
        assert outcome.first_content_ms > 0
        assert outcome.complete_ms is not None
        assert outcome.complete_ms >= outcome.first_content_ms
    assert roaming.detail["style"] == "quote"
    assert roaming.detail["dropped"] == 0
    # The abstention would record a knowledge gap, every reply a trace, the messages their redaction audit:
    # all rolled back, and the cached answer neither replaced nor added to.
    assert _counts(golden_tenant) == before
    # No turn marker (written after a commit that never came), no partial reply left in Redis.
    assert _redis_keys(golden_tenant) == keys_before


def _redis_keys(tenant: Any) -> set[str]:
    """The company's realtime state in Redis (turn markers, partial replies, token budget)."""
    return {key.decode() for key in state_redis().scan_iter(match=f"hd:*{tenant.id}*", count=1000)}


def _replies_counted(slug: str) -> int:
    """Replies /metrics counted for the company (the one `manage.py ask` answered)."""
    total = 0
    for line in metrics_render().splitlines():
        if line.startswith("helpdesk_assistant_replies_total{") and f'tenant="{slug}"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@pytest.mark.django_db(transaction=True)
def test_replies_of_a_rehearsal_are_not_counted_in_the_metrics(golden_tenant):
    assert _replies_counted(golden_tenant.slug) == 0
    golden_evaluate(tenant=golden_tenant, questions=GoldenQuestion.objects.filter(tenant=golden_tenant))
    assert _replies_counted(golden_tenant.slug) == 0
    call_command("ask", REFUND_Q, "--tenant", golden_tenant.slug, "--json", stdout=StringIO())
    assert _replies_counted(golden_tenant.slug) == 1  # the same pipeline, not rehearsing, is counted


@pytest.mark.django_db(transaction=True)
def test_execute_commits_each_result_and_the_progress_then_the_summary(golden_tenant, settings):
    run = golden_run_create(tenant=golden_tenant, kind=GoldenRun.Kind.MANUAL)
    assert (run.status, run.total, run.done) == (GoldenRun.Status.QUEUED, 3, 0)
    seen_done: list[int] = []

    def committed_done() -> None:
        # What a progress page polling from another connection sees while the next question is asked.
        def read() -> None:
            seen_done.append(GoldenRun.objects.get(pk=run.pk).done)
            connection.close()

        thread = threading.Thread(target=read)
        thread.start()
        thread.join()

    done = golden_run_execute(run_id=run.id, prepare=committed_done)

    assert seen_done == [0, 1, 2]
    assert (done.status, done.total, done.done, done.passed, done.error) == (
        GoldenRun.Status.DONE,
        3,
        3,
        3,
        "",
    )
    assert done.pass_rate == 1.0
    assert done.style == "quote"
    assert done.model_label == f"{settings.LLM_MODEL} at {settings.LLM_BASE_URL}"
    assert done.started_at is not None
    assert done.finished_at is not None
    assert (done.duration_ms or 0) > 0
    summary = done.summary
    assert {
        k: summary[k] for k in ("questions", "answerable", "right", "unanswerable", "abstained_right")
    } == {
        "questions": 3,
        "answerable": 2,
        "right": 2,
        "unanswerable": 1,
        "abstained_right": 1,
    }
    assert (summary["wrongly_abstained"], summary["failed"], summary["unsupported_shown"]) == (0, 0, 0)
    assert summary["first_content_ms"]["n"] == 3
    assert summary["first_content_ms"]["p50"] > 0
    results = list(GoldenResult.objects.filter(run=done).order_by("ordinal"))
    assert [(r.ordinal, r.question_text, r.answerable, r.right, r.abstained) for r in results] == [
        (1, ROAMING_Q, True, True, False),
        (2, REFUND_Q, True, True, False),
        (3, LAPTOP_Q, False, True, True),
    ]
    assert results[0].cited == ["roaming"]
    assert "no extra charge" in results[0].answer
    assert Conversation.objects.filter(tenant=golden_tenant).count() == 0
    assert KnowledgeGap.objects.filter(tenant=golden_tenant).count() == 0

    # Delivered again (acks_late): a finished run is left as it is.
    again = golden_run_execute(run_id=run.id)
    assert (again.status, again.done, again.finished_at) == (done.status, 3, done.finished_at)
    assert GoldenResult.objects.filter(run=done).count() == 3


@pytest.mark.django_db
def test_a_failing_question_is_a_failed_result_and_the_run_goes_on(golden_tenant, settings):
    # Longer than customers may write: the inbound path refuses it, as it would a customer's.
    settings.WIDGET_MAX_MESSAGE_CHARS = max(len(ROAMING_Q), len(REFUND_Q), len(LAPTOP_Q))
    services.golden_question_create(
        tenant=golden_tenant,
        question=ROAMING_Q + " And what about Switzerland?",
        expect=["no extra charge"],
        document_title="roaming",
        actor=None,
    )
    run = golden_run_execute(run_id=golden_run_create(tenant=golden_tenant, kind=GoldenRun.Kind.COMMAND).id)

    assert (run.status, run.total, run.done, run.passed) == (GoldenRun.Status.DONE, 4, 4, 3)
    failed = GoldenResult.objects.get(run=run, ordinal=4)
    assert (failed.right, failed.failure, failed.answer) == (False, "error: MessageTooLong", "")
    assert run.summary["failed"] == 1
    assert run.summary["right"] == 2
    assert run.pass_rate == 0.75


@pytest.mark.django_db
def test_a_change_that_cannot_be_tried_fails_the_run_in_one_sentence(golden_tenant):
    def prepare() -> None:
        raise kb_error()

    run = golden_run_execute(
        run_id=golden_run_create(tenant=golden_tenant, kind=GoldenRun.Kind.GATE_AFTER).id, prepare=prepare
    )
    assert run.status == GoldenRun.Status.FAILED
    assert run.error == "The change could not be tried out on the golden answers: This version is not ready."
    assert run.done == 0
    assert not GoldenResult.objects.filter(run=run).exists()


def kb_error() -> Exception:
    from apps.core.errors import Conflict

    return Conflict("This version is not ready.")


@pytest.mark.django_db
def test_compare_finds_the_answers_a_change_breaks_and_those_it_fixes(golden_tenant):
    # A policy drafted (ingested, not published) that would answer the laptop question.
    uploaded = kb.document_upload(
        tenant=golden_tenant, actor=None, upload=kb.Upload(filename="phones.md", data=PHONES_POLICY)
    )
    draft = ingestion.version_ingest(version_id=str(uploaded.id))
    assert draft is not None
    assert draft.status == "ready"
    laptops = services.golden_question_create(
        tenant=golden_tenant,
        question="Can I buy a laptop from Nimbus?",
        expect=["does not sell laptops"],
        document_title="phones",
        actor=None,
    )
    roaming = Document.objects.get(tenant=golden_tenant, title="roaming")
    before = golden_run_execute(
        run_id=golden_run_create(tenant=golden_tenant, kind=GoldenRun.Kind.GATE_BEFORE).id
    )

    def prepare() -> None:
        # The change as it would be: roaming unpublished, phones published.
        kb.document_unpublish(document=Document.objects.get(pk=roaming.pk), actor=None)
        kb.version_publish(version=type(draft).objects.get(pk=draft.pk), actor=None)

    after = golden_run_execute(
        run_id=golden_run_create(tenant=golden_tenant, kind=GoldenRun.Kind.GATE_AFTER).id, prepare=prepare
    )
    diff = golden_run_compare(before, after)

    # Roaming is gone; and "Do you sell laptops?", which had to be abstained on, is now answered from the
    # phones policy: a must-abstain question answered is a regression too, for the editor to judge.
    assert [r["question"] for r in diff["regressions"]] == [ROAMING_Q, LAPTOP_Q]
    assert diff["regressions"][1]["after_cited"] == ["phones"]
    regression = diff["regressions"][0]
    assert regression["before_cited"] == ["roaming"]
    assert "roaming" not in regression["after_cited"]
    assert "no extra charge" in regression["before"]
    assert "no extra charge" not in regression["after"]
    assert regression["after_failure"] == ""
    assert regression["question_id"] == str(
        GoldenQuestion.objects.get(tenant=golden_tenant, question=ROAMING_Q).id
    )
    assert [(f["question"], f["after_cited"]) for f in diff["fixed"]] == [(laptops.question, ["phones"])]
    # Nothing of the change itself survived the rehearsals.
    roaming.refresh_from_db()
    assert roaming.published_version_id is not None
    assert Document.objects.get(tenant=golden_tenant, title="phones").published_version_id is None
    assert golden_run_compare(before, before) == {"regressions": [], "fixed": []}
