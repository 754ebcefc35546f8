"""The golden answers REST API: questions (list, add, read, change, delete) and runs (history, start, one
run's progress and results). Editors and admins; agents 403, another company's slug or ids 404, and a
refused request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from apps.knowledge.models import Document
from apps.releases.models import GoldenQuestion, GoldenResult, GoldenRun
from apps.releases.runner import golden_run_create
from tests.conftest import TenantStaff

pytestmark = pytest.mark.django_db

QUESTION = "How many days do I have to return a device for a refund?"


def api(slug: str, rest: str = "") -> str:
    return f"/api/v1/tenants/{slug}/golden/{rest}"


@pytest.fixture
def refunds(tenant_a: TenantStaff) -> Document:
    return Document.objects.create(tenant=tenant_a.tenant, title="Refunds")


@pytest.fixture
def foreign(tenant_b: TenantStaff) -> Document:
    return Document.objects.create(tenant=tenant_b.tenant, title="Refunds of B")


def rows(tenant: Any) -> list[tuple]:
    return list(
        GoldenQuestion.objects.for_tenant(tenant)
        .order_by("created_at")
        .values_list("question", "expect", "document_id", "document_title", "must_abstain", "source")
    )


def test_editor_adds_lists_reads_changes_and_deletes_questions(
    tenant_a: TenantStaff, refunds: Document, api_client_as: Any
) -> None:
    client = api_client_as(tenant_a.editor)
    assert client.get(api(tenant_a.slug, "questions/")).json() == []
    created = client.post(
        api(tenant_a.slug, "questions/"),
        {"question": QUESTION, "expect": ["14 days"], "document_id": str(refunds.id)},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert {
        k: body[k]
        for k in (
            "question",
            "expect",
            "document_id",
            "document_title",
            "must_abstain",
            "source",
            "source_ref",
            "created_by",
        )
    } == {
        "question": QUESTION,
        "expect": ["14 days"],
        "document_id": str(refunds.id),
        "document_title": "Refunds",
        "must_abstain": False,
        "source": "manual",
        "source_ref": None,
        "created_by": tenant_a.editor.username,
    }
    by_title = client.post(
        api(tenant_a.slug, "questions/"),
        {"question": "Refund window?", "expect": ["14 days"], "document_title": "refunds"},
        format="json",
    )
    assert by_title.status_code == 201
    assert by_title.json()["document_id"] == str(refunds.id)
    listed = client.get(api(tenant_a.slug, "questions/")).json()
    assert [q["question"] for q in listed] == [QUESTION, "Refund window?"]

    one = api(tenant_a.slug, f"questions/{body['id']}/")
    assert client.get(one).json()["expect"] == ["14 days"]
    patched = client.patch(one, {"expect": ["14 days of delivery", "fourteen days"]}, format="json")
    assert patched.status_code == 200
    assert patched.json()["expect"] == ["14 days of delivery", "fourteen days"]
    assert patched.json()["document_id"] == str(refunds.id)  # kept when not given
    abstain = client.patch(one, {"must_abstain": True, "expect": [], "document_id": None}, format="json")
    assert abstain.status_code == 200
    assert abstain.json()["must_abstain"] is True
    assert client.delete(one).status_code == 204
    assert client.get(one).status_code == 404
    assert [r[0] for r in rows(tenant_a.tenant)] == ["Refund window?"]


@pytest.mark.parametrize(
    ("payload", "sentence"),
    [
        (
            {"question": QUESTION, "expect": []},
            "Say which fact the right answer holds, or mark that the assistant must not answer.",
        ),
        (
            {"question": QUESTION, "expect": ["14 days"]},
            "Choose the policy the right answer cites, or mark that the assistant must not answer.",
        ),
        ({"question": "  ", "expect": ["14 days"]}, "Write the question a customer would ask."),
        ({"question": "x" * 1001, "expect": ["14 days"]}, "A golden question is at most 1000 characters."),
        (
            {"question": QUESTION, "expect": ["14 days"], "document_title": "Shipping"},
            "This company has no policy titled 'Shipping'.",
        ),
    ],
)
def test_bad_questions_are_refused_in_one_sentence_and_nothing_is_stored(
    tenant_a: TenantStaff, refunds: Document, api_client_as: Any, payload: dict[str, Any], sentence: str
) -> None:
    response = api_client_as(tenant_a.editor).post(api(tenant_a.slug, "questions/"), payload, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == sentence
    assert rows(tenant_a.tenant) == []


def test_another_companys_policy_is_an_unknown_one(
    tenant_a: TenantStaff, foreign: Document, api_client_as: Any
) -> None:
    response = api_client_as(tenant_a.editor).post(
        api(tenant_a.slug, "questions/"),
        {"question": QUESTION, "expect": ["14 days"], "document_id": str(foreign.id)},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["message"] == "There is no such policy in this company."
    assert rows(tenant_a.tenant) == []


def test_agents_get_403_and_nothing_changes(
    tenant_a: TenantStaff, refunds: Document, api_client_as: Any
) -> None:
    question = GoldenQuestion.objects.create(
        tenant=tenant_a.tenant,
        question=QUESTION,
        expect=["14 days"],
        document=refunds,
        document_title="Refunds",
    )
    before = rows(tenant_a.tenant)
    agent = api_client_as(tenant_a.agent)
    assert agent.get(api(tenant_a.slug, "questions/")).status_code == 403
    assert (
        agent.post(
            api(tenant_a.slug, "questions/"), {"question": "Q", "must_abstain": True}, format="json"
        ).status_code
        == 403
    )
    assert (
        agent.patch(
            api(tenant_a.slug, f"questions/{question.id}/"), {"question": "Changed?"}, format="json"
        ).status_code
        == 403
    )
    assert agent.delete(api(tenant_a.slug, f"questions/{question.id}/")).status_code == 403
    assert agent.get(api(tenant_a.slug, "runs/")).status_code == 403
    assert agent.post(api(tenant_a.slug, "runs/")).status_code == 403
    assert rows(tenant_a.tenant) == before
    assert GoldenRun.objects.count() == 0
    assert api_client_as(None).get(api(tenant_a.slug, "questions/")).status_code == 401


def test_another_company_gets_404_for_the_slug_and_the_ids(
    tenant_a: TenantStaff, tenant_b: TenantStaff, refunds: Document, api_client_as: Any
) -> None:
    question = GoldenQuestion.objects.create(
        tenant=tenant_a.tenant,
        question=QUESTION,
        expect=["14 days"],
        document=refunds,
        document_title="Refunds",
    )
    run = golden_run_create(tenant=tenant_a.tenant, kind=GoldenRun.Kind.MANUAL)
    before = rows(tenant_a.tenant)
    other = api_client_as(tenant_b.editor)
    assert other.get(api(tenant_a.slug, "questions/")).status_code == 404
    assert other.post(api(tenant_a.slug, "runs/")).status_code == 404
    assert other.get(api(tenant_b.slug, f"questions/{question.id}/")).status_code == 404
    assert (
        other.patch(
            api(tenant_b.slug, f"questions/{question.id}/"), {"question": "Mine?"}, format="json"
        ).status_code
        == 404
    )
    assert other.delete(api(tenant_b.slug, f"questions/{question.id}/")).status_code == 404
    assert other.get(api(tenant_b.slug, f"runs/{run.id}/")).status_code == 404
    assert other.get(api(tenant_b.slug, "runs/")).json() == []
    assert rows(tenant_a.tenant) == before


def test_starting_a_run_queues_it_and_its_progress_and_results_are_readable(
    tenant_a: TenantStaff, refunds: Document, api_client_as: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = api_client_as(tenant_a.editor)
    refused = client.post(api(tenant_a.slug, "runs/"))
    assert refused.status_code == 400
    assert refused.json()["message"] == "Add a golden question before running the set."
    question = GoldenQuestion.objects.create(
        tenant=tenant_a.tenant,
        question=QUESTION,
        expect=["14 days"],
        document=refunds,
        document_title="Refunds",
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        started = client.post(api(tenant_a.slug, "runs/"))
    assert started.status_code == 202
    assert len(queued) == 1  # the task, handed over once the run is committed
    body = started.json()
    assert {
        k: body[k] for k in ("kind", "status", "total", "done", "passed", "pass_rate", "requested_by")
    } == {
        "kind": "manual",
        "status": "queued",
        "total": 1,
        "done": 0,
        "passed": 0,
        "pass_rate": None,
        "requested_by": tenant_a.editor.username,
    }
    detail = client.get(api(tenant_a.slug, f"runs/{body['id']}/")).json()
    assert (detail["status"], detail["done"], detail["total"], detail["results"]) == ("queued", 0, 1, [])
    # Pressed again while it is queued: the same run, nothing queued twice.
    with django_capture_on_commit_callbacks(execute=False) as again:
        repeated = client.post(api(tenant_a.slug, "runs/"))
    assert (repeated.status_code, repeated.json()["id"], len(again)) == (202, body["id"], 0)
    assert GoldenRun.objects.filter(tenant=tenant_a.tenant).count() == 1

    # What a worker leaves behind, read back through the API.
    run = GoldenRun.objects.get(id=body["id"])
    GoldenResult.objects.create(
        run=run,
        question=question,
        ordinal=1,
        question_text=QUESTION,
        answerable=True,
        right=True,
        answer="Within 14 days [1].",
        cited=["Refunds"],
        first_content_ms=120.0,
        complete_ms=300.0,
    )
    GoldenRun.objects.filter(id=run.id).update(
        status=GoldenRun.Status.DONE, done=1, passed=1, duration_ms=450.0
    )
    detail = client.get(api(tenant_a.slug, f"runs/{run.id}/")).json()
    assert (
        detail["status"],
        detail["done"],
        detail["passed"],
        detail["pass_rate"],
        detail["duration_ms"],
    ) == ("done", 1, 1, 1.0, 450.0)
    assert [(r["question"], r["right"], r["answer"], r["cited"]) for r in detail["results"]] == [
        (QUESTION, True, "Within 14 days [1].", ["Refunds"])
    ]
    assert [r["id"] for r in client.get(api(tenant_a.slug, "runs/")).json()] == [str(run.id)]


def test_the_golden_api_is_in_the_openapi_schema(api_client_as: Any, tenant_a: TenantStaff) -> None:
    schema = api_client_as(tenant_a.admin).get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path, methods in {
        "/api/v1/tenants/{slug}/golden/questions/": {"get", "post"},
        "/api/v1/tenants/{slug}/golden/questions/{question_id}/": {"get", "patch", "delete"},
        "/api/v1/tenants/{slug}/golden/runs/": {"get", "post"},
        "/api/v1/tenants/{slug}/golden/runs/{run_id}/": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
