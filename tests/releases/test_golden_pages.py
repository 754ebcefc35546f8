"""The golden answers pages: the list, the add/edit/delete forms (by hand, prefilled from a reply in the
console or from a knowledge gap), "Run now" with the run's page, and the history with its chart.

Editors and admins only: agents get 403, another company's slug or ids 404, and nothing changes. The run
test asks a real question through the real pipeline (published policies ingested with the real embedder,
quote answers, so the scripted model is never called), with the Celery task run eagerly in the test's
thread: the runner rehearses each turn inside a rolled-back savepoint of the test's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.utils.html import escape

from apps.audit.models import AuditEvent
from apps.conversations import services as conversations
from apps.conversations.models import Message
from apps.guardrails.pii import pii_redact
from apps.knowledge import ingestion
from apps.knowledge import services as kb
from apps.knowledge.models import Document
from apps.knowledge.services import knowledge_gap_record
from apps.releases.models import GoldenQuestion, GoldenRun
from apps.releases.runner import golden_run_create
from helpdesk.celery import app as celery_app
from tests.conftest import TenantStaff
from tests.conversations.conftest import REFUND_POLICY, answers_configure, fake_llm

pytestmark = pytest.mark.django_db

__all__ = ["fake_llm"]

REFUND_QUESTION = "How many days do I have to return a device for a refund?"


def home(slug: str) -> str:
    return f"/staff/{slug}/golden/"


def new(slug: str) -> str:
    return f"/staff/{slug}/golden/new/"


def edit(slug: str, question: GoldenQuestion) -> str:
    return f"/staff/{slug}/golden/questions/{question.id}/"


def run_url(slug: str, run: GoldenRun) -> str:
    return f"/staff/{slug}/golden/runs/{run.id}/"


def flashes(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def golden_state(tenant: Any) -> list[tuple]:
    return list(
        GoldenQuestion.objects.for_tenant(tenant)
        .order_by("created_at")
        .values_list("question", "expect", "document_id", "must_abstain", "source", "source_ref")
    )


def textarea(html: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    assert match, f"no textarea {name}"
    return match.group(1)


def selected_policy(html: str) -> str:
    select = re.search(r'<select[^>]*name="document"[^>]*>(.*?)</select>', html, re.S)
    assert select
    chosen = re.findall(r'<option value="([^"]*)" selected>', select.group(1))
    return chosen[0] if chosen else ""


@pytest.fixture
def policies(tenant_a: TenantStaff, tenant_b: TenantStaff) -> dict[str, Document]:
    """Documents to choose from (their passages do not matter to the forms)."""
    return {
        "refunds": Document.objects.create(tenant=tenant_a.tenant, title="Refunds"),
        "roaming": Document.objects.create(tenant=tenant_a.tenant, title="Roaming"),
        "b": Document.objects.create(tenant=tenant_b.tenant, title="Refunds of B"),
    }


def question_of(tenant: Any, document: Document, **extra: Any) -> GoldenQuestion:
    fields = {
        "question": REFUND_QUESTION,
        "expect": ["14 days"],
        "document": document,
        "document_title": document.title,
    }
    return GoldenQuestion.objects.create(tenant=tenant, **{**fields, **extra})


def reply_in_a_conversation(
    tenant: Any, *, asked: list[str], text: str, citations: list[dict[str, Any]], abstained: bool = False
) -> Message:
    """A customer's turn and the assistant's finished reply, stored through the conversation services."""
    conversation = conversations.cli_conversation_open(tenant=tenant, customer=None, conversation_id=None)
    for n, words in enumerate(asked):
        conversations.cli_message_receive(conversation=conversation, client_msg_id=f"m{n}", text=words)
    conversation.refresh_from_db()
    message = conversations.reply_start(conversation_id=conversation.id, turn=conversation.turn)
    assert message is not None
    return conversations.reply_finish(
        message=message,
        outcome=conversations.ReplyOutcome(
            status=Message.Status.COMPLETE, text=text, citations=citations, abstained=abstained
        ),
    )


def citation(document: Document, n: int = 1) -> dict[str, Any]:
    return {
        "n": n,
        "chunk_id": "00000000-0000-0000-0000-000000000001",
        "document_id": str(document.id),
        "title": document.title,
        "version": 1,
        "section": "Refunds > Refund window",
        "page": None,
        "inferred": False,
    }


# --- who may ---------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(tenant_a: TenantStaff, client_as: Any) -> None:
    for url in (home(tenant_a.slug), new(tenant_a.slug)):
        response = client_as(None).get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_agents_get_403_on_every_page_and_action_and_nothing_changes(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    question = question_of(tenant_a.tenant, policies["refunds"])
    run = golden_run_create(tenant=tenant_a.tenant, kind=GoldenRun.Kind.MANUAL)
    before = golden_state(tenant_a.tenant)
    agent = client_as(tenant_a.agent)
    for url in (
        home(tenant_a.slug),
        new(tenant_a.slug),
        edit(tenant_a.slug, question),
        run_url(tenant_a.slug, run),
    ):
        assert agent.get(url).status_code == 403, url
    assert agent.post(home(tenant_a.slug), {"action": "run"}).status_code == 403
    created = agent.post(
        new(tenant_a.slug), {"question": "Q?", "expect": "x", "document": str(policies["refunds"].id)}
    )
    assert created.status_code == 403
    assert (
        agent.post(edit(tenant_a.slug, question), {"action": "delete", "confirm": "yes"}).status_code == 403
    )
    assert golden_state(tenant_a.tenant) == before
    assert GoldenRun.objects.for_tenant(tenant_a.tenant).count() == 1


def test_another_companys_slug_and_ids_are_404_and_nothing_changes(
    tenant_a: TenantStaff, tenant_b: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    question = question_of(tenant_a.tenant, policies["refunds"])
    run = golden_run_create(tenant=tenant_a.tenant, kind=GoldenRun.Kind.MANUAL)
    gap = knowledge_gap_record(
        tenant=tenant_a.tenant,
        question=pii_redact("Do you sell routers?"),
        top_similarity=0.1,
        threshold=0.4,
        nearest=[],
    )
    reply = reply_in_a_conversation(
        tenant_a.tenant,
        asked=["How long for refunds?"],
        text="Within 14 days [1].",
        citations=[citation(policies["refunds"])],
    )
    before = golden_state(tenant_a.tenant)
    other = client_as(tenant_b.editor)
    assert other.get(home(tenant_a.slug)).status_code == 404
    assert other.post(home(tenant_a.slug), {"action": "run"}).status_code == 404
    # Under its own slug, the other company's ids are unknown.
    assert other.get(edit(tenant_b.slug, question)).status_code == 404
    assert (
        other.post(edit(tenant_b.slug, question), {"action": "delete", "confirm": "yes"}).status_code == 404
    )
    assert (
        other.post(edit(tenant_b.slug, question), {"question": "Hijacked?", "expect": "x"}).status_code == 404
    )
    assert other.get(run_url(tenant_b.slug, run)).status_code == 404
    assert other.get(f"{new(tenant_b.slug)}?message={reply.id}&verdict=right").status_code == 404
    assert other.get(f"{new(tenant_b.slug)}?gap={gap.id}").status_code == 404
    assert other.get(f"{new(tenant_b.slug)}?message=not-a-uuid&verdict=right").status_code == 404
    assert golden_state(tenant_a.tenant) == before
    assert GoldenRun.objects.for_tenant(tenant_b.tenant).count() == 0


def test_admins_may_use_the_pages(tenant_a: TenantStaff, client_as: Any) -> None:
    assert client_as(tenant_a.admin).get(home(tenant_a.slug)).status_code == 200


# --- add, edit, delete ------------------------------------------------------------------------------------


def test_empty_page_explains_what_to_add_and_offers_no_run(tenant_a: TenantStaff, client_as: Any) -> None:
    html = client_as(tenant_a.editor).get(home(tenant_a.slug)).content.decode()
    assert "No golden questions yet" in html
    assert "Run now" not in html
    assert "No finished run yet" in html
    assert f'href="{new(tenant_a.slug)}"' in html


def test_editor_adds_a_question_from_the_form(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    editor = client_as(tenant_a.editor)
    form = editor.get(new(tenant_a.slug)).content.decode()
    assert 'name="csrfmiddlewaretoken"' in form
    assert '<label for="golden-question">' in form
    assert 'id="golden-question"' in form
    assert "Refunds (not published)</option>" in form
    assert "Roaming (not published)</option>" in form
    assert "Refunds of B" not in form  # only the company's own documents
    response = editor.post(
        new(tenant_a.slug),
        {
            "question": f"  {REFUND_QUESTION} ",
            "expect": "14 days\n\n fourteen days \n",
            "document": str(policies["refunds"].id),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == home(tenant_a.slug)
    assert golden_state(tenant_a.tenant) == [
        (REFUND_QUESTION, ["14 days", "fourteen days"], policies["refunds"].id, False, "manual", None)
    ]
    assert AuditEvent.objects.filter(action="golden.question_add").count() == 1
    listed = editor.get(home(tenant_a.slug)).content.decode()
    assert escape(REFUND_QUESTION) in listed
    assert "“14 days” or “fourteen days”" in listed
    assert "cites Refunds" in listed
    assert "Not run yet" in listed
    assert "Run now" in listed


def test_a_question_without_a_fact_or_policy_is_refused_with_what_was_typed_kept(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    editor = client_as(tenant_a.editor)
    no_fact = editor.post(
        new(tenant_a.slug),
        {"question": "Can I return a phone?", "expect": "", "document": str(policies["refunds"].id)},
    )
    assert no_fact.status_code == 400
    html = no_fact.content.decode()
    assert 'role="alert"' in html
    assert "Say which fact the right answer holds, or mark that the assistant must not answer." in html
    assert textarea(html, "question") == "Can I return a phone?"
    assert selected_policy(html) == str(policies["refunds"].id)
    no_policy = editor.post(new(tenant_a.slug), {"question": "Can I return a phone?", "expect": "14 days"})
    assert no_policy.status_code == 400
    assert "Choose the policy the right answer cites" in no_policy.content.decode()
    assert textarea(no_policy.content.decode(), "expect") == "14 days"
    foreign = editor.post(
        new(tenant_a.slug),
        {"question": "Can I return a phone?", "expect": "14 days", "document": str(policies["b"].id)},
    )
    assert foreign.status_code == 400
    assert "There is no such policy in this company." in foreign.content.decode()
    assert golden_state(tenant_a.tenant) == []


def test_must_abstain_needs_no_fact_nor_policy(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    response = client_as(tenant_a.editor).post(
        new(tenant_a.slug),
        # What is typed in the now-ignored fields does not count against it.
        {
            "question": "Can you sell me shares?",
            "expect": "left over",
            "document": str(policies["refunds"].id),
            "must_abstain": "on",
        },
    )
    assert response.status_code == 302
    assert golden_state(tenant_a.tenant) == [("Can you sell me shares?", [], None, True, "manual", None)]
    assert "Must say it doesn't know" in client_as(tenant_a.editor).get(home(tenant_a.slug)).content.decode()


def test_editor_edits_then_deletes_with_confirmation(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    question = question_of(tenant_a.tenant, policies["refunds"])
    editor = client_as(tenant_a.editor)
    page = editor.get(edit(tenant_a.slug, question)).content.decode()
    assert textarea(page, "question") == escape(REFUND_QUESTION)
    assert textarea(page, "expect") == "14 days"
    assert selected_policy(page) == str(policies["refunds"].id)
    saved = editor.post(
        edit(tenant_a.slug, question),
        {
            "action": "save",
            "question": "Refund window?",
            "expect": "14 days of delivery",
            "document": str(policies["roaming"].id),
        },
    )
    assert saved.status_code == 302
    question.refresh_from_db()
    assert (question.question, question.expect, question.document_id, question.document_title) == (
        "Refund window?",
        ["14 days of delivery"],
        policies["roaming"].id,
        "Roaming",
    )
    refused = editor.post(
        edit(tenant_a.slug, question),
        {"action": "save", "question": "", "expect": "x", "document": str(policies["roaming"].id)},
    )
    assert refused.status_code == 400
    assert "Write the question a customer would ask." in refused.content.decode()
    question.refresh_from_db()
    assert question.question == "Refund window?"

    assert "Delete the question" in editor.get(edit(tenant_a.slug, question) + "?delete=1").content.decode()
    unconfirmed = editor.post(edit(tenant_a.slug, question), {"action": "delete"})
    assert unconfirmed.status_code == 302
    assert flashes(unconfirmed) == ["Confirm that you want to delete the golden question."]
    assert GoldenQuestion.objects.filter(id=question.id).exists()
    deleted = editor.post(edit(tenant_a.slug, question), {"action": "delete", "confirm": "yes"})
    assert deleted.status_code == 302
    assert deleted["Location"] == home(tenant_a.slug)
    assert not GoldenQuestion.objects.filter(id=question.id).exists()
    assert [
        e.action for e in AuditEvent.objects.filter(action__startswith="golden.").order_by("created_at")
    ] == [
        "golden.question_update",
        "golden.question_delete",
    ]


# --- one click from a reply and from a gap -----------------------------------------------------------------


def test_right_answer_prefills_the_turns_question_a_phrase_and_the_cited_policy(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    reply = reply_in_a_conversation(
        tenant_a.tenant,
        asked=["Hi, I'm Maria Lopez.", "How many days do I have to return my phone?"],
        text="Here is what our refund policy says: “Devices can be returned within 14 days of delivery.” [1]",
        citations=[citation(policies["refunds"])],
    )
    editor = client_as(tenant_a.editor)
    html = editor.get(f"{new(tenant_a.slug)}?message={reply.id}&verdict=right").content.decode()
    question = textarea(html, "question")
    assert "How many days do I have to return my phone?" in question
    assert "Maria" not in question
    assert "Lopez" not in question
    assert textarea(html, "expect") == "14 days"
    assert selected_policy(html) == str(policies["refunds"].id)
    assert "You marked this reply as right" in html
    assert "It cited: Refunds." in html

    created = editor.post(
        new(tenant_a.slug),
        {
            "message": str(reply.id),
            "verdict": "right",
            "source": "conversation",
            "source_ref": str(reply.id),
            "question": "How many days do I have to return my phone?",
            "expect": "14 days",
            "document": str(policies["refunds"].id),
        },
    )
    assert created.status_code == 302
    assert golden_state(tenant_a.tenant) == [
        (
            "How many days do I have to return my phone?",
            ["14 days"],
            policies["refunds"].id,
            False,
            "conversation",
            reply.id,
        )
    ]


def test_wrong_answer_leaves_the_fact_to_the_editor(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    reply = reply_in_a_conversation(
        tenant_a.tenant,
        asked=["Can I return my phone?"],
        text="Yes, within 30 days [1].",
        citations=[citation(policies["refunds"])],
    )
    html = (
        client_as(tenant_a.editor)
        .get(f"{new(tenant_a.slug)}?message={reply.id}&verdict=wrong")
        .content.decode()
    )
    assert textarea(html, "question") == "Can I return my phone?"
    assert textarea(html, "expect") == ""
    assert selected_policy(html) == str(policies["refunds"].id)
    assert "You marked this reply as wrong" in html
    assert "Write below what a right answer must say" in html


def test_a_right_abstention_prefills_must_abstain(tenant_a: TenantStaff, client_as: Any) -> None:
    reply = reply_in_a_conversation(
        tenant_a.tenant,
        asked=["Can you sell me shares?"],
        text="I don't know that.",
        citations=[],
        abstained=True,
    )
    html = (
        client_as(tenant_a.editor)
        .get(f"{new(tenant_a.slug)}?message={reply.id}&verdict=right")
        .content.decode()
    )
    assert re.search(r'<input type="checkbox" id="golden-abstain" name="must_abstain" checked', html)
    assert textarea(html, "expect") == ""


def test_only_an_assistant_reply_can_prefill(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    reply = reply_in_a_conversation(
        tenant_a.tenant,
        asked=["Refunds?"],
        text="Within 14 days [1].",
        citations=[citation(policies["refunds"])],
    )
    customer = Message.objects.get(conversation_id=reply.conversation_id, role=Message.Role.CUSTOMER)
    assert (
        client_as(tenant_a.editor)
        .get(f"{new(tenant_a.slug)}?message={customer.id}&verdict=right")
        .status_code
        == 404
    )


def test_add_as_golden_question_from_a_gap(
    tenant_a: TenantStaff, tenant_b: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    gap = knowledge_gap_record(
        tenant=tenant_a.tenant,
        question=pii_redact("Can I return a phone I bought for Maria Lopez?"),
        top_similarity=0.2,
        threshold=0.4,
        nearest=[{"title": "Refunds", "section": "Refund window", "similarity": 0.2}],
    )
    foreign_gap = knowledge_gap_record(
        tenant=tenant_b.tenant,
        question=pii_redact("Elsewhere?"),
        top_similarity=0.1,
        threshold=0.4,
        nearest=[],
    )
    editor = client_as(tenant_a.editor)
    gaps = editor.get(f"/staff/{tenant_a.slug}/knowledge/gaps/").content.decode()
    assert f'href="{new(tenant_a.slug)}?gap={gap.id}"' in gaps
    html = editor.get(f"{new(tenant_a.slug)}?gap={gap.id}").content.decode()
    assert textarea(html, "question") == escape(gap.question)
    assert "Maria" not in html
    assert selected_policy(html) == ""  # the editor says which policy answers it now
    assert "From a knowledge gap" in html
    assert "Refunds · Refund window" in html
    refused = editor.post(
        new(tenant_a.slug),
        {
            "gap": str(gap.id),
            "source": "gap",
            "source_ref": str(gap.id),
            "question": gap.question,
            "expect": "14 days",
        },
    )
    assert refused.status_code == 400
    assert textarea(refused.content.decode(), "question") == escape(gap.question)
    done = editor.post(
        new(tenant_a.slug),
        {
            "gap": str(gap.id),
            "source": "gap",
            "source_ref": str(gap.id),
            "question": gap.question,
            "expect": "14 days",
            "document": str(policies["refunds"].id),
        },
    )
    assert done.status_code == 302
    # A reference to another company's gap is not kept: the question counts as added by hand.
    forged = editor.post(
        new(tenant_a.slug),
        {"source": "gap", "source_ref": str(foreign_gap.id), "question": "Forged?", "must_abstain": "on"},
    )
    assert forged.status_code == 302
    assert [row[4:] for row in golden_state(tenant_a.tenant)] == [("gap", gap.id), ("manual", None)]


def test_the_console_shows_the_golden_buttons_to_editors_and_admins_only(
    tenant_a: TenantStaff, make_user: Any, client_as: Any
) -> None:
    from apps.accounts.models import Role

    both = make_user(tenant_a.tenant, roles=[Role.AGENT, Role.EDITOR])
    console = f"/staff/{tenant_a.slug}/console/"
    assert 'data-golden="false"' in client_as(tenant_a.agent).get(console).content.decode()
    assert 'data-golden="true"' in client_as(tenant_a.admin).get(console).content.decode()
    assert 'data-golden="true"' in client_as(both).get(console).content.decode()


def test_the_company_page_links_editors_to_the_golden_answers(tenant_a: TenantStaff, client_as: Any) -> None:
    html = client_as(tenant_a.editor).get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    assert f'href="{home(tenant_a.slug)}"' in html
    assert (
        f'href="{home(tenant_a.slug)}"'
        not in client_as(tenant_a.agent).get(f"/staff/{tenant_a.slug}/settings/").content.decode()
    )


# --- run now, progress, results, history ------------------------------------------------------------------


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Tasks queued with .delay() run at once in the test's thread, inside its transaction."""
    conf = celery_app.conf
    before = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield
    conf.task_always_eager, conf.task_eager_propagates = before


@pytest.fixture
def published_refunds(tenant_a: TenantStaff, fake_llm: Any) -> Document:
    answers_configure(tenant_a.tenant, style="quote")
    version = kb.document_upload(
        tenant=tenant_a.tenant,
        actor=None,
        upload=kb.Upload(filename="refunds.md", data=REFUND_POLICY),
        title="Refunds",
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    assert ready.status == "ready", ready.error_message
    kb.version_publish(version=ready, actor=None)
    return ready.document


def test_run_now_without_questions_says_what_to_do(tenant_a: TenantStaff, client_as: Any) -> None:
    response = client_as(tenant_a.editor).post(home(tenant_a.slug), {"action": "run"})
    assert response.status_code == 302
    assert flashes(response) == ["Add a golden question before running the set."]
    assert GoldenRun.objects.for_tenant(tenant_a.tenant).count() == 0


def test_a_queued_run_shows_its_progress_and_polls(
    tenant_a: TenantStaff, policies: dict[str, Document], client_as: Any
) -> None:
    question_of(tenant_a.tenant, policies["refunds"])
    run = golden_run_create(tenant=tenant_a.tenant, kind=GoldenRun.Kind.MANUAL, requested_by=tenant_a.editor)
    html = client_as(tenant_a.editor).get(run_url(tenant_a.slug, run)).content.decode()
    assert "Queued: waiting for a worker to start 1 question." in html
    assert re.search(r'<progress id="golden-progress"[^>]*max="1" value="0"', html)
    assert "js/golden-run.js" in html
    assert "Answers appear here as the questions are asked." in html


def test_run_now_runs_the_set_and_shows_results_history_and_chart(
    tenant_a: TenantStaff,
    published_refunds: Document,
    client_as: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    question_of(tenant_a.tenant, published_refunds)
    GoldenQuestion.objects.create(
        tenant=tenant_a.tenant, question="Can you sell me shares?", expect=[], must_abstain=True
    )
    editor = client_as(tenant_a.editor)
    with django_capture_on_commit_callbacks(execute=True):
        response = editor.post(home(tenant_a.slug), {"action": "run"})
    run = GoldenRun.objects.for_tenant(tenant_a.tenant).get()
    assert response.status_code == 302
    assert response["Location"] == run_url(tenant_a.slug, run)
    assert (run.kind, run.status, run.total, run.done, run.passed, run.requested_by) == (
        "manual",
        "done",
        2,
        2,
        2,
        tenant_a.editor,
    )
    html = editor.get(run_url(tenant_a.slug, run)).content.decode()
    assert "Done: 2 of 2 questions answered right (100%)." in html
    assert "js/golden-run.js" not in html  # nothing left to poll
    assert html.count('data-result="right"') == 2
    assert "14 days" in html
    assert "Refunds" in html

    listed = editor.get(home(tenant_a.slug)).content.decode()
    assert listed.count(">Right</span>") == 2
    assert '<svg class="report-chart" id="chart-golden"' in listed
    assert 'role="img"' in listed
    assert (
        '<table class="visually-hidden"><caption>Pass rate of each golden run, oldest first</caption>'
        in listed
    )
    assert "2 of 2" in listed
    assert "100%" in listed
    assert "Run by hand" in listed
