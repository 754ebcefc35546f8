"""Setting a company's retention policy: refused periods get a sentence each and change nothing; a change
is audited with the fields changed; the API and the settings page are for the company's admins only."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.core.errors import Forbidden
from apps.retention.models import PERIOD_FIELDS, RetentionPolicy
from apps.retention.policy import RetentionPolicyInvalid, periods_parse
from apps.retention.selectors import retention_policy_for
from apps.retention.services import retention_policy_set

pytestmark = pytest.mark.django_db

FOREVER = dict.fromkeys(PERIOD_FIELDS)
ZERO = (
    "Keep closed conversations for at least 1 day (not 0): a period of 0 would delete them as soon as they "
    "are written. Leave it empty to keep them forever."
)
NEGATIVE = (
    "Keep voice recordings for at least 1 day (not -5): a period of -5 would delete them as soon as they are "
    "written. Leave it empty to keep them forever."
)
TOO_LONG = (
    "Keep answer traces for at most 3650 days (ten years), not 3651; leave it empty to keep them forever."
)
NOT_A_NUMBER = (
    "Enter the days to keep case files as a whole number, such as 90, or leave it empty to keep them forever."
)


@pytest.mark.parametrize(
    ("values", "field", "sentence"),
    [
        ({"conversations_days": 0}, "conversations_days", ZERO),
        ({"conversations_days": "0"}, "conversations_days", ZERO),
        ({"audio_days": -5}, "audio_days", NEGATIVE),
        ({"audio_days": "-5"}, "audio_days", NEGATIVE),
        ({"traces_days": 3651}, "traces_days", TOO_LONG),
        ({"case_files_days": "ninety"}, "case_files_days", NOT_A_NUMBER),
        ({"case_files_days": 1.5}, "case_files_days", NOT_A_NUMBER),
        ({"case_files_days": True}, "case_files_days", NOT_A_NUMBER),
        ({"case_files_days": [30]}, "case_files_days", NOT_A_NUMBER),
    ],
)
def test_each_refused_period_has_its_sentence(values, field, sentence):
    with pytest.raises(RetentionPolicyInvalid) as raised:
        periods_parse(values)
    assert raised.value.fields == {field: sentence}
    assert raised.value.message == sentence
    assert raised.value.as_payload() == {
        "code": "bad_request",
        "message": sentence,
        "retryable": False,
        "fields": {field: sentence},
    }


def test_accepted_periods_and_forever():
    assert periods_parse(
        {"conversations_days": 1, "audio_days": "3650", "traces_days": "", "messages_days": None}
    ) == {
        "conversations_days": 1,
        "audio_days": 3650,
        "traces_days": None,
        "messages_days": None,
    }
    with pytest.raises(RetentionPolicyInvalid) as raised:
        periods_parse({"conversation_days": 30})
    assert raised.value.fields == {
        "conversation_days": "'conversation_days' is not a retention period; the periods are "
        "conversations_days, messages_days, audio_days, tool_runs_days, case_files_days, traces_days, "
        "knowledge_gaps_days."
    }


def test_one_refused_period_saves_none_of_them(tenant_a):
    with pytest.raises(RetentionPolicyInvalid) as raised:
        retention_policy_set(
            tenant=tenant_a.tenant,
            actor=tenant_a.admin,
            values={"messages_days": 30, "conversations_days": 0, "audio_days": -5},
        )
    assert raised.value.fields == {"conversations_days": ZERO, "audio_days": NEGATIVE}
    assert raised.value.message == f"{ZERO} {NEGATIVE}"
    assert not RetentionPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="settings.retention").exists()


def test_the_database_refuses_a_zero_period_whatever_the_path(tenant_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        RetentionPolicy.objects.create(tenant=tenant_a.tenant, audio_days=0)


def test_a_change_is_audited_with_the_fields_changed(tenant_a):
    policy = retention_policy_set(
        tenant=tenant_a.tenant, actor=tenant_a.admin, values={"conversations_days": 365, "audio_days": 30}
    )
    assert policy.periods() == {**FOREVER, "conversations_days": 365, "audio_days": 30}
    first = AuditEvent.objects.get(tenant=tenant_a.tenant, action="settings.retention")
    assert (first.actor_id, first.actor_kind, first.target_type, first.target_id) == (
        tenant_a.admin.id,
        "staff",
        "RetentionPolicy",
        str(policy.id),
    )
    assert first.data == {
        "fields": ["audio_days", "conversations_days"],
        "before": {"audio_days": None, "conversations_days": None},
        "after": {"audio_days": 30, "conversations_days": 365},
    }

    # The same periods again: nothing changed, nothing recorded. Then one change, one row.
    retention_policy_set(tenant=tenant_a.tenant, actor=tenant_a.admin, values={"conversations_days": 365})
    assert AuditEvent.objects.filter(action="settings.retention").count() == 1
    retention_policy_set(
        tenant=tenant_a.tenant, actor=tenant_a.admin, values={"conversations_days": 365, "audio_days": None}
    )
    last = AuditEvent.objects.filter(action="settings.retention").order_by("-seq").first()
    assert last is not None
    assert last.data == {
        "fields": ["audio_days"],
        "before": {"audio_days": 30},
        "after": {"audio_days": None},
    }
    assert retention_policy_for(tenant=tenant_a.tenant).periods() == {**FOREVER, "conversations_days": 365}
    assert list(chain_verify(tenant_id=tenant_a.tenant.id)) == []


def test_only_an_admin_changes_it(tenant_a, tenant_b):
    for actor in (tenant_a.agent, tenant_a.editor, tenant_b.admin):
        with pytest.raises(Forbidden):
            retention_policy_set(tenant=tenant_a.tenant, actor=actor, values={"audio_days": 1})
    assert not RetentionPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="settings.retention").exists()
