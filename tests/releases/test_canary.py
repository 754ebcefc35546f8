"""Canaries (apps/releases/canary.py): a candidate model checked on the golden answers, then answering a
share of new conversations through the real pipeline (two fake OpenAI servers: the current model and the
candidate), compared with the current model, stopped automatically when it drifts, promoted in one click.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core import mail

from apps.accounts.models import Role, Tenant, User
from apps.audit.models import AuditEvent
from apps.conversations.assistant import assistant_turn_run
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.services import cli_message_receive, conversation_start
from apps.core.errors import BadRequest, Conflict, Forbidden, NotFound
from apps.knowledge.models import Document
from apps.llm.clients import close_async_clients
from apps.llm.endpoints import endpoint_register
from apps.llm.models import Canary, ModelEndpoint, TenantModel
from apps.llm.routing import conversation_route
from apps.releases.canary import (
    NOTICE_TEXT,
    canaries_evaluate,
    canary_cancel,
    canary_check,
    canary_promote,
    canary_start,
)
from apps.releases.canary_selectors import canary_breach, canary_indicators
from apps.releases.models import GoldenQuestion
from tests.conversations.conftest import (
    REFUND_POLICY,
    ROAMING_POLICY,
    SUPPORTED_FAIR_USE,
    SUPPORTED_REFUND,
    answers_configure,
    faithful_for,
    is_compose_request,
    publish,
)
from tests.fakes.openai_server import FakeOpenAI, split_tokens

pytestmark = pytest.mark.django_db

CANDIDATE_KEY = "sk-candidate-5f3a91"
QUESTIONS = [
    "How many days do I have to return a device for a refund?",
    "How much EU data does fair use allow per month?",
]


# ---- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def current_llm(settings: Any) -> Iterator[FakeOpenAI]:
    """The company's current model: the configured one, faithful to the policies."""
    from apps.llm.breaker import reset_breakers

    with FakeOpenAI(models=["current-model"]) as fake:
        settings.LLM_BASE_URL = fake.base_url
        settings.LLM_MODEL = "current-model"
        settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
        settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 5.0
        settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 5.0
        fake.responder = lambda body: faithful_for(body) if is_compose_request(body) else ""
        reset_breakers()
        yield fake
        reset_breakers()


@pytest.fixture
def candidate_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["candidate-model"]) as fake:
        yield fake


@pytest.fixture
def company(make_tenant: Any, make_user: Any) -> tuple[Tenant, User]:
    """A company answering in compose style from two published policies, with its admin and two golden
    questions (the refund window, the EU fair use allowance)."""
    tenant = make_tenant(name="Nimbus Telecom")
    publish(tenant, ROAMING_POLICY, "roaming.md")
    publish(tenant, REFUND_POLICY, "refunds.md")
    answers_configure(tenant, style="compose")
    admin = make_user(tenant, roles=[Role.ADMIN], email="boss@nimbus.example")
    refunds = Document.objects.get(tenant=tenant, title="refunds")
    roaming = Document.objects.get(tenant=tenant, title="roaming")
    for text, expect, document in (
        (QUESTIONS[0], ["14 days"], refunds),
        (QUESTIONS[1], ["30 GB"], roaming),
    ):
        GoldenQuestion.objects.create(
            tenant=tenant, question=text, expect=expect, document=document, document_title=document.title
        )
    return tenant, admin


def register_candidate(tenant: Tenant | None, fake: FakeOpenAI, name: str = "Candidate") -> ModelEndpoint:
    return endpoint_register(
        tenant=tenant,
        name=name,
        base_url=fake.base_url,
        model=fake.models[0],
        api_key=CANDIDATE_KEY,
        style="compose",
        actor=None,
    )


def drifting(after: int) -> Any:
    """A candidate that writes the policy's sentence for its first `after` compose requests, then the same
    sentence with wrong numbers (which the support check removes)."""
    calls = {"compose": 0}

    def respond(body: dict[str, Any]) -> str:
        if not is_compose_request(body):
            return ""
        calls["compose"] += 1
        faithful = faithful_for(body)
        if calls["compose"] <= after:
            return faithful
        return re.sub(r"\d+", lambda m: str(int(m.group()) + 7), faithful)

    return respond


def ask(tenant: Tenant, conversation: Conversation, text: str) -> Message:
    receipt = cli_message_receive(conversation=conversation, client_msg_id=f"c-{uuid.uuid4()}", text=text)

    async def turn() -> Any:
        try:
            return await assistant_turn_run(
                tenant=tenant, conversation_id=conversation.id, turn=receipt.message.turn
            )
        finally:
            await close_async_clients()

    result = async_to_sync(turn)()
    assert result.message is not None
    return result.message


def running_canary(tenant: Tenant, admin: User, candidate: ModelEndpoint, **options: Any) -> Canary:
    arguments = {"share": 50, "min_conversations": 4, "bounds": None, **options}
    canary = canary_start(tenant=tenant, candidate=candidate, actor=admin, **arguments)
    assert canary.status == Canary.Status.CHECKING
    checked = canary_check(canary_id=canary.id)
    assert checked is not None
    assert (checked.status, checked.reason) == (Canary.Status.RUNNING, "")
    return checked


# ---- the drifting candidate ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # customer turns commit as in production (no test transaction)
def test_a_drifting_candidate_is_stopped_within_its_bound_and_its_conversations_go_back(
    company, current_llm, candidate_llm, client_as
):
    tenant, admin = company
    candidate = register_candidate(tenant, candidate_llm)
    candidate_llm.responder = drifting(after=len(QUESTIONS))  # faithful through the golden check only
    canary = running_canary(tenant, admin, candidate)
    assert canary.golden["candidate_passed"] == canary.golden["current_passed"] == 2

    conversations: list[Conversation] = []
    for n in range(60):
        conversation = conversation_start(tenant=tenant)
        conversations.append(conversation)
        ask(tenant, conversation, QUESTIONS[n % 2])
        canary.refresh_from_db()
        if canary.status != Canary.Status.RUNNING:
            break
    assert canary.status == Canary.Status.STOPPED
    # Stopped at the first evaluation that could judge: the candidate arm had just reached its minimum.
    assert canary.indicators["candidate"]["conversations"] == canary.min_conversations == 4
    assert canary.indicators["candidate"]["unsupported_rate"] == 100.0
    assert canary.indicators["current"]["unsupported_rate"] in (0.0, None)
    assert canary.reason.startswith("Unsupported sentences removed rose to 100 %")
    assert canary.reason.count(".") == 1
    assert canary.reason.endswith("bound.")

    on_candidate = [c for c in conversations if Conversation.objects.get(pk=c.pk).canary_arm == "candidate"]
    assert len(on_candidate) == 4
    # No conversation is left on the candidate; each of its customers was told, once.
    assert not Conversation.objects.filter(model_endpoint=candidate).exists()
    for conversation in on_candidate:
        row = Conversation.objects.get(pk=conversation.pk)
        assert (row.canary_id, row.canary_arm, row.model_endpoint_id) == (canary.id, "candidate", None)
        notices = list(ConversationEvent.objects.filter(conversation=row, type="conversation.notice"))
        assert [(n.data["code"], n.data["text"]) for n in notices] == [("model_changed", NOTICE_TEXT)]
    assert not ConversationEvent.objects.filter(
        conversation__canary_arm="current", type="conversation.notice"
    ).exists()
    [stop] = AuditEvent.objects.filter(tenant_id=tenant.id, action="canary.stop")
    assert (stop.actor_kind, stop.target_id) == ("system", str(canary.id))
    [email] = mail.outbox
    assert email.to == ["boss@nimbus.example"]
    assert "stopped automatically" in email.subject
    assert canary.reason in email.body

    # The next turn of a sent-back conversation is answered by the current model.
    before = len(candidate_llm.chat_requests), len(current_llm.chat_requests)
    # (A question not asked before: a repeated one may be answered from the answer cache, by no model.)
    later = "What does each extra gigabyte cost above the EU fair use allowance?"
    reply = ask(tenant, Conversation.objects.get(pk=on_candidate[0].pk), later)
    assert (reply.status, reply.model) == ("complete", "current-model")
    assert len(candidate_llm.chat_requests) == before[0]
    assert len(current_llm.chat_requests) > before[1]
    assert reply.text.endswith(SUPPORTED_FAIR_USE)  # the current model's faithful sentence, shown

    # Nothing lost: every customer message of the canary's conversations has its finished reply.
    for conversation in conversations:
        turns = Message.objects.filter(conversation_id=conversation.pk)
        asked = set(turns.filter(role="customer").values_list("turn", flat=True))
        answered = set(turns.filter(role="assistant", status="complete").values_list("turn", flat=True))
        assert asked == answered
        assert asked

    # The models page tells the admins, with the reason, and lists it in the history.
    page = client_as(admin).get(f"/staff/{tenant.slug}/models/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="canary-stopped-banner"' in html
    assert "stopped automatically" in html
    assert canary.reason.replace("'", "&#x27;") in html


@pytest.mark.slow
def test_the_beat_sends_back_a_conversation_that_joined_the_candidate_as_it_was_stopped(
    company, current_llm, candidate_llm
):
    tenant, admin = company
    candidate = register_candidate(tenant, candidate_llm)
    candidate_llm.responder = drifting(after=100)
    canary = running_canary(tenant, admin, candidate)
    canary_cancel(tenant=tenant, canary=canary, actor=admin)
    # A conversation whose assignment read the canary running just before it was cancelled.
    late = Conversation.objects.create(
        tenant=tenant, channel="cli", model_endpoint=candidate, canary=canary, canary_arm="candidate"
    )
    assert canaries_evaluate() == 1
    late.refresh_from_db()
    assert late.model_endpoint_id is None
    assert ConversationEvent.objects.filter(conversation=late, type="conversation.notice").count() == 1
    assert canaries_evaluate() == 1  # nothing more to do, nothing told twice
    assert ConversationEvent.objects.filter(conversation=late, type="conversation.notice").count() == 1


def test_no_judgement_before_the_candidate_arm_has_its_minimum(company, candidate_llm):
    tenant, _admin = company
    canary = Canary(
        tenant=tenant,
        candidate=register_candidate(tenant, candidate_llm),
        share=50,
        min_conversations=5,
        bounds={"abstention": 10, "unsupported": 5, "error": 5},
        status=Canary.Status.RUNNING,
    )
    bad = {"conversations": 4, "abstention_rate": 100.0, "unsupported_rate": 100.0, "error_rate": 100.0}
    good = {"conversations": 9, "abstention_rate": 0.0, "unsupported_rate": 0.0, "error_rate": 0.0}
    assert canary_breach(canary, {"candidate": bad, "current": good}) == ""
    within = {**good, "conversations": 5, "abstention_rate": 10.0, "error_rate": 5.0}
    assert canary_breach(canary, {"candidate": within, "current": good}) == ""  # at the bound, not past it
    past = {**within, "error_rate": 5.5}
    assert canary_breach(canary, {"candidate": past, "current": good}).startswith("Errors rose to 5.5 %")


# ---- the golden check -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_candidate_failing_the_golden_check_is_refused_before_any_conversation_is_routed(
    company, current_llm, candidate_llm
):
    tenant, admin = company
    GoldenQuestion.objects.filter(tenant=tenant, question=QUESTIONS[1]).delete()
    candidate = register_candidate(tenant, candidate_llm)
    # Its answers break off after the first sentence: interrupted, so wrong.
    candidate_llm.responder = lambda body: (
        faithful_for(body) + " Please keep the receipt." if is_compose_request(body) else ""
    )
    candidate_llm.behaviour = "cut"
    candidate_llm.cut_after = len(split_tokens(SUPPORTED_REFUND)) + 2
    canary = canary_start(tenant=tenant, candidate=candidate, share=100, min_conversations=1, actor=admin)
    assert canary_assign_of(tenant) == (None, "")  # checking: nobody is routed yet
    refused = canary_check(canary_id=canary.id)
    assert refused is not None
    assert refused.status == Canary.Status.REFUSED
    assert refused.reason == (
        "The candidate passed 0 of 1 golden questions, fewer than the current model's 1."
    )
    assert (refused.golden["current_passed"], refused.golden["candidate_passed"]) == (1, 0)
    assert refused.started_at is None
    assert refused.ended_at is not None
    assert not Conversation.objects.filter(canary=refused).exists()
    assert not Conversation.objects.filter(model_endpoint=candidate).exists()
    assert canary_assign_of(tenant) == (None, "")
    assert AuditEvent.objects.filter(tenant_id=tenant.id, action="canary.refuse").count() == 1
    # Redelivered: nothing changes.
    assert canary_check(canary_id=canary.id).status == Canary.Status.REFUSED  # type: ignore[union-attr]
    assert AuditEvent.objects.filter(tenant_id=tenant.id, action="canary.refuse").count() == 1


def canary_assign_of(tenant: Tenant) -> tuple[Any, str]:
    conversation = conversation_start(tenant=tenant)
    return conversation.model_endpoint_id, conversation.canary_arm


# ---- promote, start refusals, pages ------------------------------------------------------------------------


@pytest.mark.slow
def test_promote_makes_the_candidate_the_company_model(company, current_llm, candidate_llm, client_as):
    tenant, admin = company
    candidate = register_candidate(tenant, candidate_llm)
    candidate_llm.responder = drifting(after=1000)
    canary = running_canary(tenant, admin, candidate, share=100)
    on_it = conversation_start(tenant=tenant)
    assert (on_it.model_endpoint_id, on_it.canary_arm) == (candidate.id, "candidate")
    # The page shows both arms side by side, the chart, and the one-click promote (confirmed in the browser).
    html = client_as(admin).get(f"/staff/{tenant.slug}/models/").content.decode()
    assert "Golden answers before it started: current 2 of 2, candidate 2 of 2." in html
    assert '<td data-arm="candidate" data-key="conversations" data-unit="">0</td>' in html
    assert 'role="img"' in html
    assert "Rates of the current model and the candidate" in html
    assert f'action="/staff/{tenant.slug}/models/canary/{canary.id}/promote/" data-confirm=' in html
    promoted = canary_promote(tenant=tenant, canary=canary, actor=admin)
    assert promoted.status == Canary.Status.PROMOTED
    assert promoted.ended_by == admin
    assert TenantModel.objects.get(tenant=tenant).endpoint == candidate
    assert conversation_route(tenant_id=tenant.id, endpoint_id=None).model == "candidate-model"
    [row] = AuditEvent.objects.filter(tenant_id=tenant.id, action="canary.promote")
    assert (row.actor_id, row.target_id) == (admin.id, str(canary.id))
    with pytest.raises(Conflict, match=r"Only a running canary can be promoted\."):
        canary_promote(tenant=tenant, canary=promoted, actor=admin)
    # The candidate is now the current model: starting a canary of it is refused.
    with pytest.raises(BadRequest, match="already the company's current model"):
        canary_start(tenant=tenant, candidate=candidate, share=10, actor=admin)


@pytest.mark.parametrize(
    ("share", "message"),
    [
        (0, "The share must be a whole number from 1 to 100."),
        (101, "The share must be a whole number from 1 to 100."),
        ("ten", "The share must be a number from 1 to 100."),
    ],
)
def test_a_share_outside_1_to_100_is_refused_in_one_sentence(company, candidate_llm, share, message):
    tenant, admin = company
    candidate = register_candidate(tenant, candidate_llm)
    with pytest.raises(BadRequest) as refused:
        canary_start(tenant=tenant, candidate=candidate, share=share, actor=admin)
    assert refused.value.message == message
    assert not Canary.objects.exists()
    assert not AuditEvent.objects.filter(action="canary.start").exists()


def test_start_refusals_another_canary_another_company_and_roles(
    company, candidate_llm, make_tenant, make_user, django_capture_on_commit_callbacks
):
    tenant, admin = company
    candidate = register_candidate(tenant, candidate_llm)
    other = make_tenant(name="Other Co")
    theirs = register_candidate(other, candidate_llm, name="Theirs")
    with pytest.raises(NotFound) as stranger:
        canary_start(tenant=tenant, candidate=theirs, share=10, actor=admin)
    assert stranger.value.message == "That model endpoint is not one this company can use."
    agent = make_user(tenant, roles=[Role.AGENT])
    with pytest.raises(Forbidden):
        canary_start(tenant=tenant, candidate=candidate, share=10, actor=agent)
    with pytest.raises(BadRequest) as bound:
        canary_start(tenant=tenant, candidate=candidate, share=10, bounds={"error": "150"}, actor=admin)
    assert bound.value.message == "The error bound must be a number from 0 to 100."
    assert not Canary.objects.exists()

    with django_capture_on_commit_callbacks() as queued:
        first = canary_start(tenant=tenant, candidate=candidate, share=10, actor=admin)
    assert len(queued) == 1  # the golden check, queued after commit
    assert first.bounds == {"abstention": 10.0, "unsupported": 5.0, "error": 5.0}
    shared = register_candidate(None, candidate_llm, name="Operator's")
    with pytest.raises(Conflict) as busy:
        canary_start(tenant=tenant, candidate=shared, share=10, actor=admin)
    assert busy.value.message == "A canary is already checking or running for this company: stop it first."
    assert Canary.objects.filter(tenant=tenant).count() == 1


def test_the_page_form_and_api_refuse_in_one_sentence_and_guard_other_companies(
    company, candidate_llm, client_as, api_client_as, make_tenant, make_user
):
    tenant, admin = company
    candidate = register_candidate(tenant, candidate_llm)
    client = client_as(admin)
    page = client.get(f"/staff/{tenant.slug}/models/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'action="/staff/{tenant.slug}/models/canary/"' in html
    assert f'value="{candidate.id}"' in html
    assert 'name="share"' in html
    assert 'value="10"' in html

    answer = client.post(
        f"/staff/{tenant.slug}/models/canary/",
        {"candidate": str(candidate.id), "share": "0", "min_conversations": "20", "abstention": "10"},
        follow=True,
    )
    text = answer.content.decode()
    assert "The canary was not started: The share must be a whole number from 1 to 100." in text
    assert 'name="share" type="number" min="1" max="100" step="1" required value="0"' in text  # kept
    assert not Canary.objects.exists()

    api = api_client_as(admin)
    refused = api.post(
        f"/api/v1/tenants/{tenant.slug}/canaries/",
        {"candidate": str(candidate.id), "share": "101"},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == "The share must be a whole number from 1 to 100."
    started = api.post(
        f"/api/v1/tenants/{tenant.slug}/canaries/",
        {"candidate": str(candidate.id), "share": "20"},
        format="json",
    )
    assert started.status_code == 202
    body = started.json()
    assert (body["status"], body["share"], body["candidate_name"]) == ("checking", 20, "Candidate")

    checking = client.get(f"/staff/{tenant.slug}/models/").content.decode()
    assert "Status: <strong data-canary-status>Checking the golden answers</strong>" in checking
    assert f'action="/staff/{tenant.slug}/models/canary/{body["id"]}/stop/"' in checking
    assert "/promote/" not in checking  # promoted only once it runs
    assert 'name="share"' not in checking  # one canary at a time: no start form meanwhile

    other = make_tenant(name="Other Co")
    other_admin = make_user(other, roles=[Role.ADMIN])
    canary_url = f"/api/v1/tenants/{tenant.slug}/canaries/{body['id']}/"
    assert api_client_as(other_admin).get(canary_url).status_code == 404
    assert api_client_as(other_admin).post(canary_url + "stop/").status_code == 404
    assert api_client_as(make_user(tenant, roles=[Role.AGENT])).get(canary_url).status_code == 403
    assert (
        client_as(other_admin).post(f"/staff/{tenant.slug}/models/canary/{body['id']}/stop/").status_code
        == 404
    )
    assert Canary.objects.get().status == Canary.Status.CHECKING

    # The admin stops it from the page: one click (the confirm is the browser's), back to the section.
    stopped = client.post(f"/staff/{tenant.slug}/models/canary/{body['id']}/stop/")
    assert stopped.status_code == 302
    assert stopped.url.endswith("#canary-h")
    canary = Canary.objects.get()
    assert (canary.status, canary.ended_by) == (Canary.Status.CANCELLED, admin)
    assert AuditEvent.objects.filter(tenant_id=tenant.id, action="canary.cancel").count() == 1
    listed = api.get(f"/api/v1/tenants/{tenant.slug}/canaries/").json()
    assert [(c["id"], c["status"]) for c in listed] == [(str(canary.id), "cancelled")]


def test_indicators_are_read_per_arm_from_the_database(company, candidate_llm):
    tenant, admin = company
    candidate = register_candidate(tenant, candidate_llm)
    canary = Canary.objects.create(
        tenant=tenant, candidate=candidate, share=50, status=Canary.Status.RUNNING, started_by=admin
    )

    def conversation(arm: str, *, abstained: bool = False, error: str = "", ttft: float = 100.0) -> None:
        conv = Conversation.objects.create(
            tenant=tenant,
            channel="cli",
            canary=canary,
            canary_arm=arm,
            model_endpoint=candidate if arm == "candidate" else None,
        )
        Message.objects.create(tenant=tenant, conversation=conv, role="customer", turn=1, text="q")
        Message.objects.create(
            tenant=tenant,
            conversation=conv,
            role="assistant",
            turn=1,
            abstained=abstained,
            error_code=error,
            timings={"ttft_ms": ttft},
        )

    conversation("current", ttft=100.0)
    conversation("current", abstained=True, ttft=300.0)
    conversation("candidate", error="llm_unavailable", ttft=50.0)
    Conversation.objects.create(tenant=tenant, channel="cli", canary=canary, canary_arm="candidate")
    indicators = canary_indicators(canary)
    current, theirs = indicators["current"], indicators["candidate"]
    assert (current["conversations"], current["replies"], current["abstention_rate"]) == (2, 2, 50.0)
    assert (current["error_rate"], current["first_content_p50_ms"]) == (0.0, 200.0)
    assert (theirs["conversations"], theirs["assigned"], theirs["error_rate"]) == (1, 2, 100.0)
    assert (theirs["abstention_rate"], theirs["handoff_rate"], theirs["csat_average"]) == (0.0, 0.0, None)
    assert indicators["baseline"] == "arm"
