"""The publish gate: a knowledge change checked against the company's golden answers before customers see it.

A company with published policies (ingested for real with the real embedder) answering in the quote style,
and golden questions on them. The check runs as the Celery task, eagerly in the test's thread (the golden
runner rehearses each turn inside a rolled-back transaction, which pytest-django's atomic test holds).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.messages import get_messages

from apps.audit.models import AuditEvent
from apps.knowledge import ingestion
from apps.knowledge import services as kb
from apps.knowledge.models import Document, DocumentVersion
from apps.releases.models import GatedChange, GoldenQuestion, GoldenRun
from apps.releases.runner import golden_evaluate
from helpdesk.celery import app as celery_app
from tests.conftest import TenantStaff
from tests.conversations.conftest import REFUND_POLICY, ROAMING_POLICY, answers_configure, fake_llm

pytestmark = pytest.mark.django_db

__all__ = ["fake_llm"]  # the scripted model: quote answers never call it, nothing else may reach a real one

REFUND_QUESTION = "How many days do I have to return a device for a refund?"
ROAMING_QUESTION = "How much is the World Traveller pass outside the EU?"
REFUND_POLICY_21 = REFUND_POLICY.replace(b"within 14 days", b"within 21 days")
ROAMING_POLICY_V2 = (
    ROAMING_POLICY + b"\nThe pass can be bought in the Nimbus app before or during the trip.\n"
)
STALE = "The document changed after this change was checked"


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Tasks queued with .delay() run at once in the test's thread, inside its transaction."""
    conf = celery_app.conf
    before = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield
    conf.task_always_eager, conf.task_eager_propagates = before


def _version(tenant: Any, data: bytes, filename: str, *, title: str, document: Document | None = None):
    version = kb.document_upload(
        tenant=tenant,
        actor=None,
        upload=kb.Upload(filename=filename, data=data),
        title=title,
        document=document,
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    assert ready.status == "ready", ready.error_message
    return ready


@pytest.fixture
def desk(tenant_a: TenantStaff, fake_llm: Any) -> dict[str, Any]:
    tenant = tenant_a.tenant
    answers_configure(tenant, style="quote")
    refunds = _version(tenant, REFUND_POLICY, "refunds.md", title="Refunds")
    roaming = _version(tenant, ROAMING_POLICY, "roaming.md", title="Roaming")
    kb.version_publish(version=refunds, actor=None)
    kb.version_publish(version=roaming, actor=None)
    return {"refunds": refunds.document, "roaming": roaming.document}


@pytest.fixture
def golden(tenant_a: TenantStaff, desk: dict[str, Any]) -> list[GoldenQuestion]:
    tenant = tenant_a.tenant
    return [
        GoldenQuestion.objects.create(
            tenant=tenant,
            question=REFUND_QUESTION,
            expect=["14 days"],
            document=desk["refunds"],
            document_title="Refunds",
        ),
        GoldenQuestion.objects.create(
            tenant=tenant,
            question=ROAMING_QUESTION,
            expect=["8 euros per day"],
            document=desk["roaming"],
            document_title="Roaming",
        ),
    ]


def _customer_answer(tenant: Any, question: GoldenQuestion) -> str:
    """What a customer asking now gets, through the real answer pipeline (rehearsed: it leaves no trace)."""
    (outcome,) = golden_evaluate(tenant=tenant, questions=[question])
    return outcome.answer


def _messages(response: Any) -> list[str]:
    found = [m.message for m in get_messages(response.wsgi_request)]
    if response.status_code == 302:
        # Shown (and so consumed) by the page the browser goes to next: the next action's are its own.
        response.client.get(response["Location"])
    return found


def _actions(tenant: Any) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(tenant_id=tenant.id, action__startswith="knowledge.")
        .order_by("seq")
        .values_list("action", "actor_label")
    )


def _run_queued_check(callbacks: list[Any]) -> None:
    for callback in callbacks:
        callback()


def test_a_publish_that_breaks_a_golden_answer_is_held_until_an_editor_confirms_it(
    tenant_a, client_editor_a, golden, desk, eager_celery, django_capture_on_commit_callbacks
):
    tenant = tenant_a.tenant
    refunds = desk["refunds"]
    v2 = _version(tenant, REFUND_POLICY_21, "refunds.md", title="Refunds", document=refunds)
    before_audit = _actions(tenant)

    with django_capture_on_commit_callbacks() as queued:
        response = client_editor_a.post(
            f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/",
            {"action": "publish", "version_id": str(v2.id)},
        )
    change = GatedChange.objects.get(tenant=tenant)
    assert response.status_code == 302
    assert response["Location"] == f"/staff/{tenant.slug}/knowledge/changes/{change.id}/"
    assert _messages(response) == ["Checking the change against the golden answers before customers see it."]
    assert (change.kind, change.status, change.version_number, change.requested_by) == (
        "publish",
        "checking",
        2,
        tenant_a.editor,
    )
    runs = {run.kind: run for run in GoldenRun.objects.filter(change=change)}
    assert {kind: (run.status, run.total) for kind, run in runs.items()} == {
        "gate_before": ("queued", 2),
        "gate_after": ("queued", 2),
    }
    # While it is checked, customers still get the published answer.
    refunds.refresh_from_db()
    assert refunds.published_version.number == 1
    assert "within 14 days" in _customer_answer(tenant, golden[0])
    page = client_editor_a.get(response["Location"])
    assert b"Checking the golden answers" in page.content
    progress = client_editor_a.get(f"{response['Location']}progress/", HTTP_ACCEPT="application/json").json()
    assert (progress["status"], progress["finished"]) == ("checking", False)
    assert [(r["kind"], r["done"], r["total"]) for r in progress["runs"]] == [
        ("gate_before", 0, 2),
        ("gate_after", 0, 2),
    ]

    _run_queued_check(queued)

    change.refresh_from_db()
    assert change.status == "held"
    assert [item["question"] for item in change.regressions] == [REFUND_QUESTION]
    (regression,) = change.regressions
    assert "within 14 days" in regression["before"]
    assert "within 21 days" in regression["after"]
    assert change.fixed == []
    assert {
        kind: (run.status, run.done, run.passed)
        for kind, run in ((run.kind, run) for run in GoldenRun.objects.filter(change=change))
    } == {"gate_before": ("done", 2, 2), "gate_after": ("done", 2, 1)}
    # Held: nothing reached customers, and nothing but the request and the hold was recorded.
    refunds.refresh_from_db()
    assert refunds.published_version.number == 1
    assert "within 14 days" in _customer_answer(tenant, golden[0])
    assert _actions(tenant)[len(before_audit) :] == [
        ("knowledge.gate_request", "editor_a"),
        ("knowledge.gate_held", ""),
    ]
    page = client_editor_a.get(f"/staff/{tenant.slug}/knowledge/changes/{change.id}/")
    html = page.content.decode()
    assert "1 golden answer would turn wrong" in html
    assert REFUND_QUESTION in html
    assert "Publish anyway" in html
    # An editor who left the change page finds it again from the document's page.
    document_page = client_editor_a.get(
        f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/"
    ).content.decode()
    assert "A publish of this document (version 2) is held" in document_page
    assert f'href="/staff/{tenant.slug}/knowledge/changes/{change.id}/"' in document_page

    confirmed = client_editor_a.post(
        f"/staff/{tenant.slug}/knowledge/changes/{change.id}/", {"action": "confirm"}
    )
    assert confirmed.status_code == 302
    assert _messages(confirmed) == ["Publish version 2 of Refunds: done. Customers get the change now."]
    change.refresh_from_db()
    assert (change.status, change.decided_by) == ("applied", tenant_a.editor)
    assert change.applied_at is not None
    refunds.refresh_from_db()
    assert refunds.published_version_id == v2.id
    assert "within 21 days" in _customer_answer(tenant, golden[0])
    assert _actions(tenant)[len(before_audit) + 2 :] == [
        ("knowledge.publish", "editor_a"),
        ("knowledge.gate_confirm", "editor_a"),
    ]
    # A decided change is decided: confirming or cancelling again changes nothing.
    again = client_editor_a.post(f"/staff/{tenant.slug}/knowledge/changes/{change.id}/", {"action": "cancel"})
    assert _messages(again) == ["This change is applied: it can no longer be cancelled."]
    change.refresh_from_db()
    assert change.status == "applied"
    document_page = client_editor_a.get(
        f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/"
    ).content.decode()
    assert "See the check" not in document_page  # decided: no longer pending


def test_a_publish_that_breaks_nothing_is_applied_by_the_check(
    tenant_a, api_editor_a, golden, desk, eager_celery, django_capture_on_commit_callbacks
):
    tenant = tenant_a.tenant
    roaming = desk["roaming"]
    v2 = _version(tenant, ROAMING_POLICY_V2, "roaming.md", title="Roaming", document=roaming)
    with django_capture_on_commit_callbacks() as queued:
        response = api_editor_a.post(
            f"/api/v1/tenants/{tenant.slug}/kb/versions/{v2.id}/publish/",
            {"effective_date": "2027-01-01"},
            format="json",
        )
    assert response.status_code == 202
    change = GatedChange.objects.get(tenant=tenant)
    assert response.json() == {
        "id": str(change.id),
        "kind": "publish",
        "status": "checking",
        "url": f"/api/v1/tenants/{tenant.slug}/kb/changes/{change.id}/",
        "page": f"/staff/{tenant.slug}/knowledge/changes/{change.id}/",
        "message": "The change is being checked against the company's golden answers.",
    }
    roaming.refresh_from_db()
    assert roaming.published_version.number == 1

    _run_queued_check(queued)

    change.refresh_from_db()
    assert (change.status, change.regressions, change.decided_by) == ("applied", [], None)
    roaming.refresh_from_db()
    assert roaming.published_version_id == v2.id
    v2.refresh_from_db()
    assert (v2.published_by, v2.effective_date) == (tenant_a.editor, datetime.date(2027, 1, 1))
    assert _actions(tenant)[-3:] == [
        ("knowledge.gate_request", "editor_a"),
        ("knowledge.publish", "editor_a"),
        ("knowledge.gate_pass", ""),
    ]
    body = api_editor_a.get(response.json()["url"]).json()
    assert (body["status"], body["finished"], body["regressions"]) == ("applied", True, [])


def test_a_company_without_golden_questions_publishes_directly(tenant_a, client_editor_a, desk):
    tenant = tenant_a.tenant
    refunds = desk["refunds"]
    v2 = _version(tenant, REFUND_POLICY_21, "refunds.md", title="Refunds", document=refunds)
    response = client_editor_a.post(
        f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/",
        {"action": "publish", "version_id": str(v2.id)},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/"
    refunds.refresh_from_db()
    assert refunds.published_version_id == v2.id
    assert not GatedChange.objects.exists()
    assert not GoldenRun.objects.exists()


def test_a_change_that_cannot_be_made_is_refused_at_once_with_golden_questions(
    tenant_a, client_editor_a, golden, desk
):
    tenant = tenant_a.tenant
    refunds = desk["refunds"]
    live = refunds.published_version
    response = client_editor_a.post(
        f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/",
        {"action": "publish", "version_id": str(live.id)},
    )
    assert _messages(response) == ["Version 1 is already published."]
    assert not GatedChange.objects.exists()
    assert not GoldenRun.objects.exists()


def test_a_rollback_that_fixes_an_answer_goes_through_and_a_delete_that_breaks_one_is_held(
    tenant_a, client_editor_a, api_editor_a, golden, desk, eager_celery, django_capture_on_commit_callbacks
):
    tenant = tenant_a.tenant
    refunds = desk["refunds"]
    v2 = _version(tenant, REFUND_POLICY_21, "refunds.md", title="Refunds", document=refunds)
    kb.version_publish(version=v2, actor=None)  # the golden refund answer is wrong now

    with django_capture_on_commit_callbacks() as queued:
        response = api_editor_a.post(
            f"/api/v1/tenants/{tenant.slug}/kb/documents/{refunds.id}/rollback/", {"number": 1}, format="json"
        )
    assert response.status_code == 202
    _run_queued_check(queued)
    rollback = GatedChange.objects.get(tenant=tenant, kind="rollback")
    assert (rollback.status, rollback.regressions) == ("applied", [])
    assert [item["question"] for item in rollback.fixed] == [REFUND_QUESTION]
    refunds.refresh_from_db()
    assert refunds.published_version.number == 1

    with django_capture_on_commit_callbacks() as queued:
        response = client_editor_a.post(
            f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/", {"action": "delete", "confirm": "yes"}
        )
    delete = GatedChange.objects.get(tenant=tenant, kind="delete")
    assert response["Location"] == f"/staff/{tenant.slug}/knowledge/changes/{delete.id}/"
    _run_queued_check(queued)
    delete.refresh_from_db()
    assert delete.status == "held"
    assert [item["question"] for item in delete.regressions] == [REFUND_QUESTION]
    assert Document.objects.filter(pk=refunds.pk).exists()
    assert "Delete anyway" in client_editor_a.get(response["Location"]).content.decode()

    cancelled = client_editor_a.post(response["Location"], {"action": "cancel"})
    assert _messages(cancelled) == ["Delete Refunds: cancelled. Nothing was changed."]
    delete.refresh_from_db()
    assert (delete.status, delete.decided_by) == ("cancelled", tenant_a.editor)
    assert DocumentVersion.objects.filter(document=refunds).count() == 2
    assert _actions(tenant)[-1] == ("knowledge.gate_cancel", "editor_a")


def test_a_held_change_is_refused_on_confirm_once_the_document_changed(
    tenant_a, client_editor_a, golden, desk, eager_celery, django_capture_on_commit_callbacks
):
    tenant = tenant_a.tenant
    refunds = desk["refunds"]
    with django_capture_on_commit_callbacks() as queued:
        asked = client_editor_a.post(
            f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/", {"action": "unpublish"}
        )
    assert len(_messages(asked)) == 1
    _run_queued_check(queued)
    change = GatedChange.objects.get(tenant=tenant)
    assert change.status == "held"
    assert [item["question"] for item in change.regressions] == [REFUND_QUESTION]
    v2 = _version(tenant, REFUND_POLICY_21, "refunds.md", title="Refunds", document=refunds)
    kb.version_publish(version=v2, actor=None)  # another publish meanwhile

    response = client_editor_a.post(
        f"/staff/{tenant.slug}/knowledge/changes/{change.id}/", {"action": "confirm"}
    )
    (message,) = _messages(response)
    assert message.startswith(STALE)
    change.refresh_from_db()
    assert change.status == "held"
    refunds.refresh_from_db()
    assert refunds.published_version_id == v2.id


def test_another_companys_change_is_not_found_and_agents_are_forbidden(
    tenant_a,
    tenant_b,
    client_editor_a,
    client_agent_a,
    client_editor_b,
    api_agent_a,
    api_editor_b,
    golden,
    desk,
):
    tenant = tenant_a.tenant
    refunds = desk["refunds"]
    client_editor_a.post(f"/staff/{tenant.slug}/knowledge/documents/{refunds.id}/", {"action": "unpublish"})
    change = GatedChange.objects.get(tenant=tenant)
    page = f"/staff/{tenant.slug}/knowledge/changes/{change.id}/"

    assert client_editor_b.get(page).status_code == 404
    assert client_editor_b.get(f"/staff/{tenant_b.slug}/knowledge/changes/{change.id}/").status_code == 404
    assert client_editor_b.post(page, {"action": "cancel"}).status_code == 404
    api = f"/api/v1/tenants/{tenant_b.slug}/kb/changes/{change.id}/"
    assert api_editor_b.get(api).status_code == 404
    assert api_editor_b.post(f"{api}cancel/").status_code == 404
    assert client_agent_a.get(page).status_code == 403
    assert client_agent_a.post(page, {"action": "cancel"}).status_code == 403
    assert client_agent_a.get(f"{page}progress/", HTTP_ACCEPT="application/json").status_code == 403
    assert (
        api_agent_a.post(f"/api/v1/tenants/{tenant.slug}/kb/changes/{change.id}/cancel/").status_code == 403
    )
    change.refresh_from_db()
    assert (change.status, change.decided_by) == ("checking", None)
    assert not AuditEvent.objects.filter(action="knowledge.gate_cancel").exists()
