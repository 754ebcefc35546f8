"""Golden question services (apps/releases/services.py): what a golden question must say, who may write
one, the audit row each write leaves, and that another company's policy is never accepted."""

from __future__ import annotations

from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.knowledge import services as kb
from apps.knowledge.models import Document
from apps.releases import services
from apps.releases.models import GoldenQuestion
from apps.releases.selectors import golden_questions_active

pytestmark = pytest.mark.django_db

POLICY = b"# Roaming\n\nRoaming in the EU is at no extra charge.\n"


def _document(tenant, title: str) -> Document:
    version = kb.document_upload(
        tenant=tenant, actor=None, upload=kb.Upload(filename=f"{title}.md", data=POLICY), title=title
    )
    return version.document


def _rows(tenant) -> list[tuple[str, str, dict]]:
    return list(
        AuditEvent.objects.filter(tenant_id=tenant.id, action__startswith="golden.")
        .order_by("seq")
        .values_list("action", "target_id", "data")
    )


def test_an_editor_adds_updates_and_deletes_a_question_each_audited_without_its_words(tenant_a):
    tenant, editor = tenant_a.tenant, tenant_a.editor
    roaming = _document(tenant, "Roaming and Travel Policy")
    question = services.golden_question_create(
        tenant=tenant,
        question="  Is roaming in the EU free? ",
        expect=["no extra charge", "", "no extra charge", "as you do at home"],
        document_id=str(roaming.id),
        actor=editor,
    )
    assert (question.question, question.expect, question.document, question.document_title) == (
        "Is roaming in the EU free?",
        ["no extra charge", "as you do at home"],
        roaming,
        "Roaming and Travel Policy",
    )
    assert (question.must_abstain, question.source, question.created_by, question.active) == (
        False,
        GoldenQuestion.Source.MANUAL,
        editor,
        True,
    )

    updated = services.golden_question_update(golden=question, expect=["at no extra charge"], actor=editor)
    assert updated.expect == ["at no extra charge"]
    assert updated.document == roaming
    # Saved as it was: no change, no row.
    services.golden_question_update(golden=updated, question="Is roaming in the EU free?", actor=editor)
    abstain = services.golden_question_update(
        golden=updated, must_abstain=True, expect=[], document_id=None, actor=editor
    )
    assert (abstain.must_abstain, abstain.expect, abstain.document, abstain.document_title) == (
        True,
        [],
        None,
        "",
    )
    services.golden_question_delete(question=abstain, actor=editor)
    assert not GoldenQuestion.objects.filter(id=question.id).exists()

    rows = _rows(tenant)
    assert [(action, target) for action, target, _ in rows] == [
        ("golden.question_add", str(question.id)),
        ("golden.question_update", str(question.id)),
        ("golden.question_update", str(question.id)),
        ("golden.question_delete", str(question.id)),
    ]
    assert rows[0][2] == {
        "must_abstain": False,
        "expect_count": 2,
        "document_id": str(roaming.id),
        "source": "manual",
    }
    assert "roaming" not in str(rows).casefold()  # neither the question nor the policy's title
    actors = set(
        AuditEvent.objects.filter(tenant_id=tenant.id, action__startswith="golden.").values_list(
            "actor_id", flat=True
        )
    )
    assert actors == {editor.id}


def test_a_question_by_policy_title_and_one_that_must_be_abstained_on(tenant_a):
    tenant = tenant_a.tenant
    _document(tenant, "Billing and Payments Policy")
    by_title = services.golden_question_create(
        tenant=tenant,
        question="When do I pay?",
        expect=["14 days"],
        document_title="billing AND payments policy",
        actor=None,
    )
    assert by_title.document_title == "Billing and Payments Policy"
    abstain = services.golden_question_create(
        tenant=tenant, question="Do you sell laptops?", must_abstain=True, source="demo", actor=None
    )
    assert (abstain.expect, abstain.document, abstain.source) == ([], None, "demo")
    assert list(golden_questions_active(tenant)) == [by_title, abstain]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"question": "   "}, "Write the question a customer would ask."),
        ({"question": "x" * 1001}, "A golden question is at most 1000 characters."),
        (
            {"expect": []},
            "Say which fact the right answer holds, or mark that the assistant must not answer.",
        ),
        (
            {"expect": ["  "]},
            "Say which fact the right answer holds, or mark that the assistant must not answer.",
        ),
        (
            {"document_id": None},
            "Choose the policy the right answer cites, or mark that the assistant must not answer.",
        ),
        ({"document_id": "not-a-uuid"}, "'not-a-uuid' is not a policy id."),
        ({"document_id": "00000000-0000-0000-0000-000000000000"}, "There is no such policy in this company."),
        ({"document_id": None, "document_title": "Nope"}, "This company has no policy titled 'Nope'."),
        ({"must_abstain": True}, "A question the assistant must not answer expects no phrase and no policy."),
        ({"expect": ["x" * 201]}, "An expected phrase is at most 200 characters."),
        ({"source": "robot"}, "'robot' is not a source of golden questions."),
    ],
)
def test_refusals_are_one_sentence_and_store_nothing(tenant_a, arguments, message):
    tenant = tenant_a.tenant
    roaming = _document(tenant, "Roaming")
    values: dict[str, Any] = {
        "question": "Is roaming free?",
        "expect": ["no extra charge"],
        "document_id": roaming.id,
        **arguments,
    }
    with pytest.raises(BadRequest) as refused:
        services.golden_question_create(tenant=tenant, actor=tenant_a.editor, **values)
    assert refused.value.message == message
    assert not GoldenQuestion.objects.exists()
    assert _rows(tenant) == []


def test_another_companys_policy_is_refused_as_unknown(tenant_a, tenant_b):
    theirs = _document(tenant_b.tenant, "Roaming")
    with pytest.raises(BadRequest) as refused:
        services.golden_question_create(
            tenant=tenant_a.tenant,
            question="Is roaming free?",
            expect=["free"],
            document_id=theirs.id,
            actor=tenant_a.editor,
        )
    assert refused.value.message == "There is no such policy in this company."
    with pytest.raises(BadRequest):
        services.golden_question_create(
            tenant=tenant_a.tenant,
            question="Is roaming free?",
            expect=["free"],
            document_title="Roaming",
            actor=None,
        )
    assert not GoldenQuestion.objects.exists()


def test_agents_are_forbidden_strangers_not_found_and_nothing_changes(tenant_a, tenant_b):
    tenant = tenant_a.tenant
    roaming = _document(tenant, "Roaming")
    values: dict[str, Any] = {
        "question": "Is roaming free?",
        "expect": ["no extra charge"],
        "document_id": roaming.id,
    }
    with pytest.raises(Forbidden):
        services.golden_question_create(tenant=tenant, actor=tenant_a.agent, **values)
    with pytest.raises(NotFound):
        services.golden_question_create(tenant=tenant, actor=tenant_b.editor, **values)
    question = services.golden_question_create(tenant=tenant, actor=tenant_a.admin, **values)
    with pytest.raises(Forbidden):
        services.golden_question_update(golden=question, question="Changed?", actor=tenant_a.agent)
    with pytest.raises(NotFound):
        services.golden_question_delete(question=question, actor=tenant_b.admin)
    question.refresh_from_db()
    assert question.question == "Is roaming free?"
    assert [action for action, _, _ in _rows(tenant)] == ["golden.question_add"]
    assert _rows(tenant_b.tenant) == []
