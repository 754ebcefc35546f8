"""When the assistant hands a conversation to a person (apps/conversations/triggers.py), end to end over the
widget socket with a scripted model: the customer asks in words, raises something sensitive, sounds
upset, a company rule (topic, tier) applies, the assistant could not answer twice, a tool failed or a
change needs an agent. Each ends with the conversation waiting and one handoff with the right reason and
priority; a turn trigger is answered with one honest sentence, never with the model. A model that is down
is not one of them while the policies answer: the customer gets the quoted policy and the offer of a
person instead."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.accounts import services as accounts
from apps.accounts.models import Contact, Tenant
from apps.conversations import services as conv
from apps.conversations.answering.pipeline import UNAVAILABLE_NOTE as NOTE
from apps.conversations.identity import IdentityClaim, identity_signature
from apps.conversations.models import Conversation, ConversationEvent, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger
from apps.conversations.triggers import HANDOVER_TEXT, after_answer_trigger, turn_trigger
from apps.guardrails.pii import RedactedText
from apps.handoff import listeners
from apps.handoff.models import Handoff, HandoffRule, Team
from apps.tools.models import Approval, RunStatus, ToolRun
from tests.conftest import celery_worker_in_process
from tests.conversations.conftest import widget_connect
from tests.fakes.openai_server import FakeOpenAI
from tests.handoff.conftest import (
    Desk,
    answers_in,
    chat_start,
    evidence_of,
    is_compose_request,
    quote_of,
)
from tests.tools.conftest import tools_enable

FINAL = ("assistant.completed", "assistant.failed", "assistant.interrupted")


def _anonymous(tenant: Tenant) -> conv.WidgetSession:
    return conv.widget_session_open(tenant=tenant, token=None, claim=None)


def _verified(tenant: Tenant, external_id: str = "cust-1001") -> conv.WidgetSession:
    issued = int(time.time())
    claim = IdentityClaim(
        external_id=external_id,
        issued_at=issued,
        signature=identity_signature(
            secret=tenant.identity_secret, external_id=external_id, issued_at=issued
        ),
    )
    return conv.widget_session_open(tenant=tenant, token=None, claim=claim)


async def _ask(tenant: Tenant, session: conv.WidgetSession, *texts: str) -> list[dict[str, Any]]:
    """Sends each text and waits for its final answer; returns every frame the widget got until it has
    been quiet for a second (a handoff follows the answer at once)."""
    widget, _ = await widget_connect(tenant, token=session.token)
    try:
        for text in texts:
            await widget.send({"type": "message", "text": text})
            await widget.until(lambda f: f["type"] in FINAL, timeout=40)
        while not await widget.ws.receive_nothing(timeout=1.0):
            await widget.recv()
        return widget.received
    finally:
        await widget.close()


def _outcome(conversation_id: Any) -> tuple[str, list[tuple[str, str, int, Any]], list[str]]:
    conversation = Conversation.objects.get(id=conversation_id)
    handoffs = [
        (h.reason, h.detail, h.priority, h.team_id)
        for h in Handoff.objects.filter(conversation_id=conversation_id).order_by("created_at")
    ]
    events = list(
        ConversationEvent.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("type", flat=True)
    )
    return conversation.status, handoffs, events


def _final_texts(frames: list[dict[str, Any]]) -> list[str]:
    return [f["message"]["text"] for f in frames if f["type"] == "assistant.completed"]


# ---- before an answer: the turn itself ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("text", "reason", "detail", "priority"),
    [
        ("Can I talk to a human please?", HandoffReason.CUSTOMER_REQUEST, "asked in words", 0),
        (
            "My husband passed away last month and I need to close his account.",
            HandoffReason.SENSITIVE,
            "bereavement",
            1,
        ),
        (
            "There are unauthorized charges on my bill, I think someone is committing fraud.",
            HandoffReason.SENSITIVE,
            "fraud",
            1,
        ),
        (
            "This is the THIRD time I'm asking!!! Your service is useless and I am furious.",
            HandoffReason.ANGRY,
            None,
            1,
        ),
    ],
    ids=["asks-for-a-human", "bereavement", "fraud", "angry"],
)
async def test_a_turn_for_a_person_is_answered_with_one_sentence_and_queued(
    kb_desk: Desk, fake_llm: FakeOpenAI, text: str, reason: str, detail: str | None, priority: int
) -> None:
    tenant = kb_desk.tenant
    session = await database_sync_to_async(_anonymous)(tenant)
    frames = await _ask(tenant, session, text)

    assert _final_texts(frames) == [HANDOVER_TEXT[HandoffReason(reason)]]
    assert fake_llm.chat_requests == []  # the model never saw the turn
    requested = next(f for f in frames if f["type"] == "handoff.requested")
    assert (requested["owner"], requested["reason"]) == ("waiting", reason)
    status, handoffs, events = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert status == "waiting"
    [(got_reason, got_detail, got_priority, team)] = handoffs
    assert (got_reason, got_priority, team) == (reason, priority, None)
    if detail is not None:
        assert got_detail == detail
    else:  # the words behind the verdict, for the agent
        assert "useless" in got_detail
        assert "furious" in got_detail
    assert events == [
        "message.created",
        "assistant.started",
        "assistant.completed",
        "handoff.requested",
        "handoff.status",
    ]


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_saying_a_human_is_not_needed_is_answered_by_the_assistant(
    kb_desk: Desk, fake_llm: FakeOpenAI
) -> None:
    tenant = kb_desk.tenant
    session = await database_sync_to_async(_anonymous)(tenant)
    # "European Union", not "EU": the ranking does not expand acronyms (docs/adr/0008), and this test is
    # about the turn staying with the assistant, not about ranking.
    frames = await _ask(
        tenant, session, "I don't need a human, just tell me: is roaming in the European Union free?"
    )
    [final] = [f["message"] for f in frames if f["type"] == "assistant.completed"]
    evidence = await database_sync_to_async(evidence_of)(final["id"])
    assert final["text"] == quote_of(evidence)  # the policy, quoted: answered, not handed over
    assert "in all European Union countries at no extra charge" in final["text"]
    assert (final["abstained"], final["offer_handoff"]) == (False, False)
    assert fake_llm.chat_requests == []  # no model profile: the company's answers are quoted
    status, handoffs, _ = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert (status, handoffs) == ("assistant", [])


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_company_topic_rule_sends_the_turn_to_its_team(kb_desk: Desk, fake_llm: FakeOpenAI) -> None:
    tenant = kb_desk.tenant

    def rules() -> Team:
        porting = Team.objects.create(tenant=tenant, name="Porting")
        HandoffRule.objects.create(
            tenant=tenant, kind="topic", value="porting, number transfer", priority=2, team=porting
        )
        HandoffRule.objects.create(tenant=tenant, kind="topic", value="roaming", enabled=False)
        return porting

    porting = await database_sync_to_async(rules)()
    session = await database_sync_to_async(_anonymous)(tenant)
    frames = await _ask(tenant, session, "How long does a number transfer from another network take?")
    assert _final_texts(frames) == [HANDOVER_TEXT[HandoffReason.TENANT_RULE]]
    assert fake_llm.chat_requests == []
    status, handoffs, _ = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert (status, handoffs) == ("waiting", [("tenant_rule", "topic: number transfer", 2, porting.id)])


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_customer_of_a_tier_the_company_serves_in_person_goes_to_a_person(
    kb_desk: Desk, fake_llm: FakeOpenAI
) -> None:
    tenant = kb_desk.tenant

    def premium() -> conv.WidgetSession:
        session = _verified(tenant)
        Contact.objects.filter(tenant=tenant, external_id="cust-1001").update(tier="Premium")
        HandoffRule.objects.create(tenant=tenant, kind="tier", value="premium", priority=1)
        return session

    session = await database_sync_to_async(premium)()
    frames = await _ask(tenant, session, "Is roaming in the European Union free?")
    assert _final_texts(frames) == [HANDOVER_TEXT[HandoffReason.TENANT_RULE]]
    status, handoffs, _ = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert (status, handoffs) == ("waiting", [("tenant_rule", "tier: Premium", 1, None)])


# ---- after an answer ---------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_two_answers_in_a_row_the_assistant_could_not_give_bring_in_a_person(
    kb_desk: Desk, fake_llm: FakeOpenAI, settings: Any
) -> None:
    settings.HANDOFF_AFTER_UNANSWERED = 2
    tenant = kb_desk.tenant
    session = await database_sync_to_async(_anonymous)(tenant)
    frames = await _ask(tenant, session, "Can I bring my parrot to the opera?")
    status, handoffs, _ = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert (status, handoffs) == ("assistant", [])  # one abstention is not enough
    frames = await _ask(tenant, session, "Which opera houses accept parrots?")
    # (the second socket is sent the first answer again: it resumes from seq 0)
    abstained = [f["message"]["abstained"] for f in frames if f["type"] == "assistant.completed"]
    assert abstained == [True, True]
    status, handoffs, events = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert (status, handoffs) == ("waiting", [("assistant_abstained", "2 answers in a row", 0, None)])
    assert events[-2:] == ["handoff.requested", "handoff.status"]
    assert fake_llm.chat_requests == []


def _answers(conversation_id: Any) -> list[tuple[str, bool, bool, str, str]]:
    """(status, abstained, offer_handoff, error_code, text) of each stored answer, oldest first."""
    answers = Message.objects.filter(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
    return [
        (m.status, m.abstained, m.offer_handoff, m.error_code, m.text) for m in answers.order_by("created_at")
    ]


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_model_that_stays_down_does_not_strand_the_customer(
    kb_desk: Desk, fake_llm: FakeOpenAI, settings: Any
) -> None:
    """Composing company, dead model: every answerable question still gets the quoted policy, a note that
    the summary is missing and the offer of a person (CONTRACTS §3), each stored `complete`, so the
    "unanswered in a row" count never starts on them; questions the policies cannot answer still bring in a
    person after two in a row, as they do with the model up."""
    settings.HANDOFF_AFTER_UNANSWERED = 2
    tenant = kb_desk.tenant
    await database_sync_to_async(answers_in)(tenant, "compose")
    fake_llm.behaviour = "error_500"
    session = await database_sync_to_async(_anonymous)(tenant)
    conversation_id = session.claims.conversation_id
    questions = ("Is roaming in the European Union free?", "Is roaming in the European Union free in France?")

    for n, question in enumerate(questions, start=1):
        frames = await _ask(tenant, session, question)
        assert "assistant.failed" not in [f["type"] for f in frames]
        answers = await database_sync_to_async(_answers)(conversation_id)
        evidence = await database_sync_to_async(evidence_of)(
            [f["message"]["id"] for f in frames if f["type"] == "assistant.completed"][-1]
        )
        assert answers[-1] == ("complete", False, True, "llm_unavailable", f"{quote_of(evidence)}\n\n{NOTE}")
        assert len(answers) == n
        status, handoffs, _ = await database_sync_to_async(_outcome)(conversation_id)
        assert (status, handoffs) == ("assistant", [])
    assert any(is_compose_request(body) for body in fake_llm.chat_requests)  # it was asked, and failed

    await _ask(tenant, session, "Can I bring my parrot to the opera?")
    status, handoffs, _ = await database_sync_to_async(_outcome)(conversation_id)
    assert (status, handoffs) == ("assistant", [])  # one abstention after answers is not two in a row
    await _ask(tenant, session, "Which opera houses accept parrots?")
    answers = await database_sync_to_async(_answers)(conversation_id)
    assert [(a[0], a[1], a[2]) for a in answers[2:]] == [("complete", True, True)] * 2
    status, handoffs, events = await database_sync_to_async(_outcome)(conversation_id)
    assert (status, handoffs) == ("waiting", [("assistant_abstained", "2 answers in a row", 0, None)])
    assert events[-3:] == ["assistant.completed", "handoff.requested", "handoff.status"]


@pytest.fixture
def tools_tenant(kb_desk: Desk) -> Tenant:
    tools_enable(kb_desk.tenant)
    return kb_desk.tenant


@pytest.fixture
def tools_worker() -> Iterator[None]:
    with celery_worker_in_process():
        yield


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_change_that_needs_an_agents_approval_brings_one_in(
    tools_tenant: Tenant, fake_llm: FakeOpenAI
) -> None:
    fake_llm.tool_caller = lambda body: [("plan_change", '{"plan_code": "unlimited-max"}')]
    session = await database_sync_to_async(_verified)(tools_tenant)
    frames = await _ask(tools_tenant, session, "Please move me to the unlimited plan")
    [final] = _final_texts(frames)
    assert "I've asked a colleague to approve this" in final
    status, handoffs, _ = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert (status, handoffs) == ("waiting", [("tool_approval", "plan_change", 1, None)])
    run = await ToolRun.objects.aget()
    assert (run.status, run.approval) == (RunStatus.AWAITING_APPROVAL, Approval.AGENT)


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_tool_that_failed_brings_in_a_person(
    kb_desk: Desk, fake_llm: FakeOpenAI, tools_worker: None, settings: Any
) -> None:
    from tests.fakes.business_server import FakeBusiness

    tenant = kb_desk.tenant
    with FakeBusiness(token="tok") as business:
        settings.TOOLS_ALLOWED_HOSTS = [business.host_port]
        business.behaviour = "error_500"
        await database_sync_to_async(tools_enable)(
            tenant, adapter="http", base_url=business.base_url, auth_secret="tok", timeout_seconds=2
        )
        fake_llm.tool_caller = lambda body: [("order_lookup", '{"order_number": "NM-1"}')]
        session = await database_sync_to_async(_verified)(tenant)
        frames = await _ask(tenant, session, "Where is my order NM-1?")
    assert _final_texts(frames) == [
        "Our account system isn't answering right now. I can connect you with a person instead."
    ]
    status, handoffs, _ = await database_sync_to_async(_outcome)(session.claims.conversation_id)
    assert (status, handoffs) == ("waiting", [("tool_failed", "order_lookup: unavailable", 0, None)])


# ---- the trigger functions on their own ------------------------------------------------------------------


@pytest.mark.django_db
def test_turn_trigger_order_and_rules(desk: Desk, make_tenant: Any) -> None:
    chat = chat_start(desk.tenant, "Hello")
    HandoffRule.objects.create(tenant=desk.tenant, kind="topic", value="porting", priority=2)

    def trigger(text: str) -> HandoffTrigger | None:
        return turn_trigger(conversation_id=chat.id, question=RedactedText.stored(text))

    assert trigger("Is roaming free in Spain?") is None
    assert trigger("I work in customer supporting roles") is None  # a topic is matched as whole words
    assert trigger("Porting my number, how?") == HandoffTrigger(
        reason="tenant_rule", detail="topic: porting", priority=2
    )
    # Asking for a person outranks everything else the same turn says.
    assert trigger("I'm furious about porting, let me speak to a manager!").reason == "customer_request"  # type: ignore[union-attr]
    assert trigger("Someone hacked my account, this is ridiculous").reason == "sensitive"  # type: ignore[union-attr]
    # Which topics are sensitive is the company's choice: without fraud, the same words only sound upset.
    accounts.tenant_answers_configure(
        tenant=desk.tenant, handoff_topics=["bereavement", "vulnerability", "legal"]
    )
    assert trigger("Someone hacked my account, this is ridiculous").reason == "angry"  # type: ignore[union-attr]
    assert trigger("Someone hacked my account") is None
    # Rules of another company never apply.
    other = make_tenant()
    assert listeners.rule_check(other.id, "", "porting") is None
    assert listeners.rule_check(desk.tenant.id, "", "porting") is not None


@pytest.mark.django_db
def test_after_answer_trigger_order(desk: Desk, settings: Any) -> None:
    settings.HANDOFF_AFTER_UNANSWERED = 2
    chat = chat_start(desk.tenant)
    chat.say("one")
    first = chat.answer("I couldn't find this.", abstained=True)
    assert after_answer_trigger(message=first, tools=[]) is None
    chat.say("two")
    second = chat.answer("", status=Message.Status.FAILED, error_code="temporarily_unavailable")
    assert after_answer_trigger(message=second, tools=[]) == HandoffTrigger(
        reason="assistant_failed", detail="2 answers in a row"
    )
    chat.say("three")
    good = chat.answer("Roaming is free [1].")
    assert after_answer_trigger(message=good, tools=[]) is None
    failed_run = ToolRun(tool="order_lookup", status=RunStatus.FAILED, error_code="timeout")
    waiting_run = ToolRun(tool="plan_change", status=RunStatus.AWAITING_APPROVAL, approval=Approval.AGENT)
    customer_run = ToolRun(
        tool="ticket_create", status=RunStatus.AWAITING_APPROVAL, approval=Approval.CUSTOMER
    )
    assert after_answer_trigger(message=good, tools=[customer_run]) is None
    assert after_answer_trigger(message=good, tools=[failed_run, waiting_run]) == HandoffTrigger(
        reason="tool_approval", detail="plan_change", priority=1
    )
    assert after_answer_trigger(message=good, tools=[failed_run]) == HandoffTrigger(
        reason="tool_failed", detail="order_lookup: timeout"
    )
    # A mistyped order number is the customer's to fix: offered a person, not handed off.
    for code in ("not_found", "invalid_plan", "same_plan"):
        fixable = ToolRun(tool="order_lookup", status=RunStatus.FAILED, error_code=code)
        assert after_answer_trigger(message=good, tools=[fixable]) is None
    # With the model down a quoted answer is still an answer: it breaks a run of unanswered turns.
    chat.say("four")
    chat.answer("I couldn't find this.", abstained=True)
    chat.say("five")
    quoted = chat.answer(
        "Here is what our policy says: ...", error_code="llm_unavailable", offer_handoff=True
    )
    assert after_answer_trigger(message=quoted, tools=[]) is None
    chat.say("six")
    after = chat.answer("I couldn't find this either.", abstained=True)
    assert after_answer_trigger(message=after, tools=[]) is None
    settings.HANDOFF_AFTER_UNANSWERED = 0
    assert after_answer_trigger(message=second, tools=[]) is None


@pytest.mark.django_db
def test_abstentions_before_a_person_handed_the_conversation_back_do_not_count(
    desk: Desk, settings: Any
) -> None:
    from apps.handoff import services

    settings.HANDOFF_AFTER_UNANSWERED = 2
    chat = chat_start(desk.tenant)
    for text in ("one", "two"):
        chat.say(text)
        abstained = chat.answer("I couldn't find this.", abstained=True)
    assert after_answer_trigger(message=abstained, tools=[]) is not None
    services.conversation_take_over(tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice)
    services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    chat.say("three")
    again = chat.answer("I couldn't find this either.", abstained=True)
    assert after_answer_trigger(message=again, tools=[]) is None  # a fresh count after the hand back
    chat.say("four")
    twice = chat.answer("Nor this.", abstained=True)
    assert after_answer_trigger(message=twice, tools=[]) is not None


@pytest.mark.django_db
def test_abstentions_of_an_earlier_episode_do_not_count(desk: Desk, settings: Any) -> None:
    from apps.conversations.ownership import conversation_transition

    settings.HANDOFF_AFTER_UNANSWERED = 2
    chat = chat_start(desk.tenant)
    chat.say("one")
    chat.answer("I couldn't find this.", abstained=True)
    conversation_transition(conversation_id=chat.id, to="resolved", event="conversation.resolved")
    chat.say("two")
    again = chat.answer("I couldn't find this either.", abstained=True)
    assert after_answer_trigger(message=again, tools=[]) is None
