"""Retention with a frozen clock deletes (or blanks) exactly what expired, for each kind, in one company
only; in bounded batches; and records what it removed in the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.conversations.models import Conversation
from apps.knowledge.models import KnowledgeGap
from apps.retention.services import retention_apply, retention_apply_all, retention_policy_set
from apps.retention.sweeps import KINDS, REMOVED_TEXT
from apps.retention.tasks import retention_run
from tests.retention.plant import CASE_FILE, NOW, POLICY, Planted, exists, expired, fresh, gap, message, plant

pytestmark = pytest.mark.django_db

EXPECTED = {
    "conversations": 2,  # the old resolved one and the idle one with the assistant
    "messages": 1,
    "audio": 1,
    "tool_runs": 1,
    "case_files": 1,
    "traces": 1,
    "knowledge_gaps": 1,
    "cached_answers": 1,
}


def assert_untouched(p: Planted) -> None:
    """Everything planted is still there, as planted."""
    for conv in (
        p.conv_resolved_old,
        p.conv_assistant_idle,
        p.conv_resolved_recent,
        p.conv_resolved_recent_message,
        p.conv_waiting_old,
    ):
        assert exists(conv)
    assert all(exists(row) for row in p.deleted_with_conversation)
    assert fresh(p.msg_old).text == "My number is 07700 900123"
    assert fresh(p.clip_old).audio is not None
    assert fresh(p.run_old).arguments == {"order_id": "NM-100234"}
    assert fresh(p.handoff_closed_old).case_file == CASE_FILE
    assert exists(p.trace_old)
    assert exists(p.gap_old)
    assert exists(p.cached_stale)


def test_each_kind_loses_exactly_what_expired_and_the_other_company_nothing(tenant_a, tenant_b):
    a = plant(tenant_a.tenant, tenant_a.admin)
    b = plant(tenant_b.tenant, tenant_b.admin)
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values=POLICY)

    report = retention_apply(tenant=tenant_a.tenant, now=NOW)

    assert report.counts == EXPECTED
    # Conversations: closed (resolved, or idle with the assistant) past the period go whole, with
    # everything that hangs off them, tool runs and voice clips (which name them by id) included.
    assert not exists(a.conv_resolved_old)
    assert not exists(a.conv_assistant_idle)
    assert [type(row).__name__ for row in a.deleted_with_conversation if exists(row)] == []
    assert exists(a.conv_resolved_recent)
    assert exists(a.conv_resolved_recent_message)
    assert exists(a.conv_waiting_old)  # a person owes it an answer: never deleted
    # Messages of a kept conversation: the words go, the row (its order, its author) stays.
    old = fresh(a.msg_old)
    assert (old.text, old.text_redacted, old.pii_types, old.role) == (
        REMOVED_TEXT,
        REMOVED_TEXT,
        [],
        "customer",
    )
    assert fresh(a.msg_recent).text == "My number is 07700 900123"
    assert fresh(a.msg_streaming_old).text == "My number is 07700 900123"
    # Audio: the kept recording goes, the transcript stays; a recording not yet transcribed is not "kept".
    clip = fresh(a.clip_old)
    assert (clip.audio, clip.audio_deleted_at, clip.transcript) == (None, NOW, "My number is 07700 900123")
    assert fresh(a.clip_recent).audio is not None
    assert fresh(a.clip_not_kept_old).audio is not None
    # Tool runs: arguments and results blanked, the run row kept; a run still waiting keeps its arguments.
    run = fresh(a.run_old)
    assert (run.arguments, run.arguments_raw, run.result, run.summary) == ({}, "", None, "")
    assert (run.tool, run.status) == ("order_status", "done")
    assert fresh(a.run_recent).result == {"status": "shipped", "address": "1 Long Lane"}
    assert fresh(a.run_waiting_old).arguments == {"order_id": "NM-100234"}
    # Case files: emptied on closed handoffs past the period; an open handoff keeps its case file.
    assert fresh(a.handoff_closed_old).case_file == {}
    assert fresh(a.handoff_closed_old).status == "resolved"
    assert fresh(a.handoff_closed_recent).case_file == CASE_FILE
    assert fresh(a.handoff_open_old).case_file == CASE_FILE
    # Traces, knowledge gaps, answers cached under an older knowledge epoch.
    assert not exists(a.trace_old)
    assert exists(a.trace_recent)
    assert not exists(a.gap_old)
    assert exists(a.gap_recent)
    assert not exists(a.cached_stale)
    assert exists(a.cached_current)

    assert_untouched(b)

    # Run again at the same clock: nothing is found twice, and no audit row is written for nothing.
    rows = AuditEvent.objects.filter(tenant=tenant_a.tenant, action="retention.apply").count()
    again = retention_apply(tenant=tenant_a.tenant, now=NOW)
    assert again.counts == dict.fromkeys(KINDS, 0)
    assert AuditEvent.objects.filter(tenant=tenant_a.tenant, action="retention.apply").count() == rows


def test_without_a_policy_only_dead_cache_rows_go(tenant_a, tenant_b):
    """A company that never set a period keeps everything; answers of an older knowledge epoch, which are
    never served again, are still removed."""
    b = plant(tenant_b.tenant, tenant_b.admin)
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values=POLICY)

    reports = {r.tenant_id: r for r in retention_apply_all(now=NOW)}

    assert reports[tenant_b.tenant.id].counts == {**dict.fromkeys(KINDS, 0), "cached_answers": 1}
    assert not exists(b.cached_stale)
    assert exists(b.cached_current)
    b.cached_stale.save(force_insert=True)  # put it back: the rest must be exactly as planted
    assert_untouched(b)


def test_a_period_left_empty_keeps_that_kind_forever(tenant_a):
    a = plant(tenant_a.tenant, tenant_a.admin)
    retention_policy_set(
        tenant=tenant_a.tenant, actor=tenant_a.admin, values={**POLICY, "conversations_days": None}
    )
    report = retention_apply(tenant=tenant_a.tenant, now=NOW)
    assert report.counts["conversations"] == 0
    assert exists(a.conv_resolved_old)
    assert exists(a.conv_assistant_idle)
    # The old conversation is kept, so its old message loses its words with the others.
    assert report.counts["messages"] == 2


def test_the_run_is_audited_once_per_company_with_its_counts(tenant_a, tenant_b):
    plant(tenant_a.tenant, tenant_a.admin)
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values=POLICY)

    retention_apply(tenant=tenant_a.tenant, now=NOW)

    row = AuditEvent.objects.get(tenant=tenant_a.tenant, action="retention.apply")
    assert row.data == EXPECTED
    assert (row.actor_kind, row.actor_id, row.target_type, row.target_id) == (
        "system",
        None,
        "Tenant",
        str(tenant_a.tenant.id),
    )
    assert list(chain_verify(tenant_id=tenant_a.tenant.id)) == []
    assert not AuditEvent.objects.filter(tenant=tenant_b.tenant, action="retention.apply").exists()


def test_batches_are_bounded_and_each_is_its_own_statement(tenant_a):
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"knowledge_gaps_days": 60})
    for _ in range(5):
        gap(tenant_a.tenant, expired(60))

    with CaptureQueriesContext(connection) as queries:
        report = retention_apply(tenant=tenant_a.tenant, now=NOW, batch=2)

    assert (report.counts["knowledge_gaps"], report.batches["knowledge_gaps"]) == (5, 3)
    assert KnowledgeGap.objects.filter(tenant=tenant_a.tenant).count() == 0
    deletes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('DELETE FROM "knowledge_knowledgegap"')
    ]
    selects = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "knowledge_knowledgegap"' in q["sql"] and "LIMIT 2" in q["sql"]
    ]
    assert len(deletes) == 3
    assert len(selects) == 3  # each batch chose at most 2 ids


def test_blanking_batches_too(tenant_a):
    conv = Conversation.objects.create(tenant=tenant_a.tenant, status=Conversation.Status.WAITING)
    for _ in range(5):
        message(conv, expired(10))
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"messages_days": 10})
    with CaptureQueriesContext(connection) as queries:
        report = retention_apply(tenant=tenant_a.tenant, now=NOW, batch=2)
    assert (report.counts["messages"], report.batches["messages"]) == (5, 3)
    updates = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "conversations_message"') and "LIMIT 2" in q["sql"]
    ]
    assert len(updates) == 3
    assert set(conv.messages.values_list("text", flat=True)) == {REMOVED_TEXT}


def test_the_task_runs_every_company(tenant_a, tenant_b, settings):
    settings.RETENTION_BATCH_SIZE = 2
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"knowledge_gaps_days": 1})
    retention_policy_set(tenant=tenant_b.tenant, actor=tenant_b.admin, values={"knowledge_gaps_days": 1})
    for tenant in (tenant_a.tenant, tenant_b.tenant):
        for _ in range(3):
            gap(tenant, timezone.now() - timedelta(days=2))
    gap(tenant_a.tenant, timezone.now())

    result = retention_run.apply().get()

    assert result["removed"] == 6
    assert result["tenants"] == 2
    assert KnowledgeGap.objects.filter(tenant=tenant_a.tenant).count() == 1
    assert KnowledgeGap.objects.filter(tenant=tenant_b.tenant).count() == 0
