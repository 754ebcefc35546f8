"""The ownership state machine (apps/conversations/ownership.py): every move it allows with its one numbered
event, the moves it refuses (nothing changes), the database constraint behind "agent iff human", the
handoff row that follows each trip, and the assistant's memory across episodes and hand backs."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from apps.conversations import selectors
from apps.conversations.models import Conversation, ConversationEvent, HandoffReason, Message
from apps.conversations.ownership import (
    ALLOWED,
    HandoffTrigger,
    conversation_handoff,
    conversation_transition,
)
from apps.conversations.services import ReplyOutcome, handoff_cancel, reply_finish, reply_start
from apps.core.errors import BadRequest, Conflict
from apps.handoff import services
from apps.handoff.models import Handoff, Team
from tests.handoff.conftest import (
    COMPOSED,
    Chat,
    Desk,
    answers_in,
    chat_start,
    evidence_of,
    is_compose_request,
    model_composes,
    quote_of,
    to_human,
    to_waiting,
)

pytestmark = pytest.mark.django_db

Status = Conversation.Status
A, W, H, R = Status.ASSISTANT, Status.WAITING, Status.HUMAN, Status.RESOLVED


def in_state(desk: Desk, status: str) -> Chat:
    """A conversation brought to `status` the way production brings it there (no handoff for resolved)."""
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    if status == W:
        to_waiting(chat)
    elif status == H:
        to_human(chat, desk.alice)
    elif status == R:
        conversation_transition(conversation_id=chat.id, to=R, event="conversation.resolved")
    assert chat.row().status == status
    return chat


def snapshot(chat: Chat) -> dict[str, Any]:
    row = chat.row()
    return {
        "conversation": (row.status, row.agent_id, row.last_seq, row.episode, row.episode_turn, row.turn),
        "events": chat.events(),
        "handoffs": [(h.status, h.agent_id, h.team_id, h.priority) for h in chat.handoffs()],
    }


# (from, to) -> the event, and what the transition is given.
MOVES: dict[tuple[str, str], dict[str, Any]] = {
    (A, W): {"event": "handoff.requested", "trigger": HandoffReason.SENSITIVE},
    (A, H): {"event": "handoff.claimed", "agent": "alice", "trigger": HandoffReason.AGENT_TAKEOVER},
    (A, R): {"event": "conversation.resolved", "data": {"csat": True}},
    (W, H): {"event": "handoff.claimed", "agent": "alice"},
    (W, W): {"event": "handoff.transferred", "data": {"to": "team", "team": "Billing"}, "team": True},
    (W, A): {"event": "handoff.cancelled"},
    (W, R): {"event": "conversation.resolved", "data": {"csat": True}},
    (H, H): {"event": "handoff.transferred", "agent": "bob", "data": {"to": "agent"}},
    (H, W): {"event": "handoff.transferred", "data": {"to": "team", "team": "Billing"}, "team": True},
    (H, A): {"event": "handoff.returned", "actor": True},
    (H, R): {"event": "conversation.resolved", "data": {"csat": True}},
    (R, A): {"event": "conversation.reopened"},
    (R, W): {"event": "handoff.requested", "trigger": HandoffReason.EMAIL_REPLY},
}

# What the conversation's handoff rows are after the move: (status, agent) of each, oldest first.
HANDOFFS_AFTER: dict[tuple[str, str], list[tuple[str, str | None]]] = {
    (A, W): [("waiting", None)],
    (A, H): [("claimed", "alice")],
    (A, R): [],
    (W, H): [("claimed", "alice")],
    (W, W): [("waiting", None)],
    (W, A): [("cancelled", None)],
    (W, R): [("resolved", None)],
    (H, H): [("claimed", "bob")],
    (H, W): [("waiting", None)],
    (H, A): [("returned", "alice")],
    (H, R): [("resolved", "alice")],
    (R, A): [],
    (R, W): [("waiting", None)],
}


def test_the_moves_listed_are_exactly_the_allowed_ones() -> None:
    assert set(MOVES) == set(ALLOWED)


@pytest.mark.parametrize(("before", "after"), sorted(MOVES), ids=lambda s: str(s))
def test_an_allowed_move_changes_the_owner_with_one_numbered_event(
    desk: Desk, before: str, after: str
) -> None:
    chat = in_state(desk, before)
    spec = MOVES[(before, after)]
    people = {"alice": desk.alice, "bob": desk.bob}
    team = Team.objects.create(tenant=desk.tenant, name="Billing") if spec.get("team") else None
    last_seq = chat.row().last_seq
    trigger = HandoffTrigger(reason=spec["trigger"], priority=1) if "trigger" in spec else None

    change = conversation_transition(
        conversation_id=chat.id,
        to=after,
        event=spec["event"],
        agent=people.get(spec.get("agent", "")),
        actor=desk.alice if spec.get("actor") else None,
        trigger=trigger,
        data=spec.get("data"),
        context={"team_id": team.id} if team else None,
    )

    row = chat.row()
    expected_agent = people[spec["agent"]].id if "agent" in spec else None
    assert (row.status, row.agent_id) == (after, expected_agent)
    assert (change.before, change.after) == (before, after)
    expected_data: dict[str, Any] = {"owner": after}
    if "agent" in spec:
        expected_data["agent"] = spec["agent"].capitalize()
    if trigger is not None:
        expected_data["reason"] = trigger.reason
    expected_data.update(spec.get("data") or {})
    assert (change.event.seq, change.event.type, change.event.data) == (
        last_seq + 1,
        spec["event"],
        expected_data,
    )
    new = chat.events(after=last_seq)
    assert new[0] == (last_seq + 1, spec["event"], expected_data)
    # Going to the queue from elsewhere also tells the customer what happens next; nothing else is added.
    told = after == W and before != W
    assert [t for _, t, _ in new[1:]] == (["handoff.status"] if told else [])
    assert row.last_seq == last_seq + len(new)

    names = {desk.alice.id: "alice", desk.bob.id: "bob", None: None}
    assert [(h.status, names[h.agent_id]) for h in chat.handoffs()] == HANDOFFS_AFTER[(before, after)]
    if team is not None:
        assert chat.handoffs()[0].team_id == team.id
    if before == R:
        assert (row.episode, row.episode_turn) == (2, row.turn + 1)
    else:
        assert (row.episode, row.episode_turn) == (1, 0)


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (A, A, "The assistant has this conversation; nobody is waiting in it."),
        (R, R, "This conversation is resolved."),
        (R, H, "This conversation is resolved."),
    ],
)
def test_a_move_the_state_machine_does_not_allow_is_a_conflict_and_changes_nothing(
    desk: Desk, before: str, after: str, message: str
) -> None:
    chat = in_state(desk, before)
    before_snapshot = snapshot(chat)
    with pytest.raises(Conflict) as caught:
        conversation_transition(conversation_id=chat.id, to=after, event="handoff.claimed", agent=desk.alice)
    assert caught.value.message == message
    assert snapshot(chat) == before_snapshot


def test_expect_narrows_the_states_a_move_may_start_from(desk: Desk) -> None:
    chat = in_state(desk, A)
    before_snapshot = snapshot(chat)
    with pytest.raises(Conflict) as caught:
        conversation_transition(
            conversation_id=chat.id, to=H, event="handoff.claimed", agent=desk.alice, expect=(W,)
        )
    assert caught.value.message == "Nobody is waiting in this conversation; take it over instead."
    assert snapshot(chat) == before_snapshot


def test_a_person_owning_a_conversation_needs_an_agent(desk: Desk) -> None:
    chat = in_state(desk, W)
    before_snapshot = snapshot(chat)
    with pytest.raises(BadRequest):
        conversation_transition(conversation_id=chat.id, to=H, event="handoff.claimed")
    assert snapshot(chat) == before_snapshot


def test_the_database_keeps_an_agent_exactly_when_a_person_owns_it(desk: Desk) -> None:
    assistant_owned, human_owned = in_state(desk, A), in_state(desk, H)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(id=assistant_owned.id).update(status=H)  # human without an agent
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(id=assistant_owned.id).update(agent=desk.alice)  # assistant with one
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(id=human_owned.id).update(agent=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(id=human_owned.id).update(status=R)  # resolved, agent still set
    assert (assistant_owned.row().status, assistant_owned.row().agent_id) == (A, None)
    assert (human_owned.row().status, human_owned.row().agent_id) == (H, desk.alice.id)


def test_only_one_open_handoff_per_conversation_is_possible(desk: Desk) -> None:
    chat = in_state(desk, W)
    with pytest.raises(IntegrityError), transaction.atomic():
        Handoff.objects.create(
            tenant=desk.tenant,
            conversation_id=chat.id,
            reason=HandoffReason.ANGRY,
            status="claimed",
            agent=desk.bob,
        )
    assert [(h.status, h.reason) for h in chat.handoffs()] == [("waiting", "customer_request")]


def test_a_second_handoff_request_is_not_a_second_handoff(desk: Desk) -> None:
    chat = in_state(desk, W)
    before_snapshot = snapshot(chat)
    again = conversation_handoff(conversation_id=chat.id, trigger=HandoffTrigger(reason=HandoffReason.ANGRY))
    assert again is None
    assert snapshot(chat) == before_snapshot
    to_human(chat, desk.alice)
    before_snapshot = snapshot(chat)
    assert conversation_handoff(conversation_id=chat.id, trigger=HandoffTrigger(reason="angry")) is None
    assert snapshot(chat) == before_snapshot


def test_a_late_trigger_does_not_reopen_a_resolved_conversation(desk: Desk) -> None:
    chat = in_state(desk, R)
    before_snapshot = snapshot(chat)
    assert conversation_handoff(conversation_id=chat.id, trigger=HandoffTrigger(reason="tool_failed")) is None
    assert snapshot(chat) == before_snapshot


def test_each_trip_to_people_has_exactly_one_handoff_opened_and_closed(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    # Trip 1: queued, claimed, transferred to Bob, resolved.
    to_waiting(chat, reason=HandoffReason.ANGRY, priority=1)
    services.handoff_claim(tenant=desk.tenant, handoff_id=chat.handoffs()[0].id, agent=desk.alice)
    services.conversation_transfer(
        tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice, to_agent_id=desk.bob.id
    )
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob)
    [first] = chat.handoffs()
    assert (first.status, first.reason, first.priority, first.agent_id) == (
        "resolved",
        "angry",
        1,
        desk.bob.id,
    )
    assert first.claimed_at is not None
    assert first.closed_at is not None
    # Trip 2: the customer writes again (a new episode with the assistant), then asks for a person and
    # changes their mind.
    chat.say("One more thing about roaming")
    assert len(chat.handoffs()) == 1
    to_waiting(chat)
    handoff_cancel(tenant=desk.tenant, claims=chat.claims)
    # Trip 3: taken over from the assistant, handed back.
    to_human(chat, desk.alice)
    services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    assert [(h.status, h.reason, h.agent_id) for h in chat.handoffs()] == [
        ("resolved", "angry", desk.bob.id),
        ("cancelled", "customer_request", None),
        ("returned", "agent_takeover", desk.alice.id),
    ]
    assert all(h.closed_at is not None for h in chat.handoffs())
    assert [t for _, t, _ in chat.events() if t.startswith(("handoff.", "conversation."))] == [
        "handoff.requested",
        "handoff.status",
        "handoff.claimed",
        "handoff.transferred",
        "conversation.resolved",
        "conversation.reopened",
        "handoff.requested",
        "handoff.status",
        "handoff.cancelled",
        "handoff.claimed",
        "handoff.returned",
    ]


def test_leaving_the_assistant_marks_the_reply_being_written_interrupted(desk: Desk) -> None:
    chat = chat_start(desk.tenant)
    chat.say("Is roaming free in Spain?")
    streaming = reply_start(conversation_id=chat.id, turn=1)
    assert streaming is not None
    Message.objects.filter(id=streaming.id).update(text="Roaming in the EU is")
    to_human(chat, desk.alice)
    streaming.refresh_from_db()
    assert (streaming.status, streaming.error_code, streaming.text) == (
        "interrupted",
        "interrupted",
        "Roaming in the EU is",
    )
    assert [(t, d) for _, t, d in chat.events()] == [
        ("message.created", {}),
        ("assistant.started", {"turn": 1}),
        ("assistant.interrupted", {"code": "interrupted", "retryable": False, "by": "handoff"}),
        ("handoff.claimed", {"owner": "human", "agent": "Alice", "reason": "agent_takeover"}),
    ]
    # The writer finishing afterwards changes nothing: the reply is never stored as complete.
    final = reply_finish(
        message=streaming, outcome=ReplyOutcome(status="complete", text="Roaming in the EU is free.")
    )
    assert (final.status, final.text) == ("interrupted", "Roaming in the EU is")
    assert len(chat.events()) == 4
    # A new reply cannot start while a person owns the conversation.
    assert reply_start(conversation_id=chat.id, turn=1) is None
    assert ConversationEvent.objects.filter(conversation_id=chat.id).count() == 4


# ---- the assistant's memory ------------------------------------------------------------------------------


def _texts(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.role, m.text_redacted) for m in messages]


def test_writing_after_a_resolution_starts_a_new_episode_the_assistant_remembers_alone(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    services.agent_reply(
        tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text="Yes it is.", client_msg_id="r1"
    )
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    last_seq = chat.row().last_seq

    receipt = chat.say("How do I return a phone?")

    row = chat.row()
    assert (receipt.owner, receipt.message.turn) == ("assistant", 2)
    assert (row.status, row.agent_id, row.episode, row.episode_turn, row.turn) == ("assistant", None, 2, 2, 2)
    assert [(t, d) for _, t, d in chat.events(after=last_seq)] == [
        ("conversation.reopened", {"owner": "assistant"}),
        ("message.created", {}),
    ]
    assert len(chat.handoffs()) == 1  # the reopening is the assistant's: no new trip to people
    assert _texts(selectors.turn_messages(conversation_id=chat.id, turn=2)) == [
        ("customer", "How do I return a phone?")
    ]
    assert selectors.history_messages(conversation_id=chat.id, before_turn=2) == []
    chat.answer("Within 14 days.")
    chat.say("And the refund?")
    assert _texts(selectors.history_messages(conversation_id=chat.id, before_turn=3)) == [
        ("customer", "How do I return a phone?"),
        ("assistant", "Within 14 days."),
    ]
    assert _texts(selectors.turn_messages(conversation_id=chat.id, turn=3)) == [
        ("customer", "And the refund?")
    ]


def test_after_a_hand_back_the_assistant_answers_only_what_is_said_from_then_on(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    assert chat.say("My order NM-1 is late").owner == "human"
    services.agent_reply(
        tenant=desk.tenant,
        conversation_id=chat.id,
        agent=desk.alice,
        text="It ships today.",
        client_msg_id="r1",
    )
    assert chat.say("Thanks, and cancel the other one").owner == "human"  # the agent never answered this
    services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)

    receipt = chat.say("Is roaming free in France?")

    assert (receipt.owner, receipt.message.turn) == ("assistant", 4)
    assert _texts(selectors.turn_messages(conversation_id=chat.id, turn=4)) == [
        ("customer", "Is roaming free in France?")
    ]
    # Its memory keeps the whole episode, the agent's words included.
    assert _texts(selectors.history_messages(conversation_id=chat.id, before_turn=4)) == [
        ("customer", "Is roaming free in Spain?"),
        ("assistant", "Answer to: Is roaming free in Spain?"),
        ("customer", "My order NM-1 is late"),
        ("agent", "It ships today."),
        ("customer", "Thanks, and cancel the other one"),
    ]


def test_what_was_said_while_waiting_is_not_answered_after_the_customer_cancels(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    assert chat.say("Hello? Anyone there?").owner == "waiting"
    event = handoff_cancel(tenant=desk.tenant, claims=chat.claims)
    assert event is not None
    assert (event.type, event.data) == ("handoff.cancelled", {"owner": "assistant"})
    assert chat.say("OK, is roaming free in France?").owner == "assistant"
    assert _texts(selectors.turn_messages(conversation_id=chat.id, turn=3)) == [
        ("customer", "OK, is roaming free in France?")
    ]
    assert [h.status for h in chat.handoffs()] == ["cancelled"]
    # Cancelling again changes nothing.
    before_snapshot = snapshot(chat)
    assert handoff_cancel(tenant=desk.tenant, claims=chat.claims) is None
    assert snapshot(chat) == before_snapshot


def test_an_answer_cut_off_by_a_take_over_cannot_be_retried_after_the_hand_back(desk: Desk) -> None:
    chat = chat_start(desk.tenant)
    chat.say("Is roaming free in Spain?")
    streaming = reply_start(conversation_id=chat.id, turn=1)
    assert streaming is not None
    to_human(chat, desk.alice)
    with pytest.raises(Conflict) as caught:
        selectors.retry_turn(tenant=desk.tenant, claims=chat.claims, message_id=streaming.id)
    assert caught.value.message == "A person is looking after this conversation now."
    services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    with pytest.raises(Conflict) as caught:
        selectors.retry_turn(tenant=desk.tenant, claims=chat.claims, message_id=streaming.id)
    assert caught.value.message.startswith("A person has looked after this question since")


# ---- CONTRACTS I6 through the real ASGI application -------------------------------------------------------

# The company composes answers: after the quoted policy, a slow scripted model writes three checked
# sentences (about three seconds at 0.1 s a word), so the answer is still being written when a person takes
# over.
LONG_ANSWER = " ".join(COMPOSED)


async def _compose_slowly(tenant: Any, fake_llm: Any) -> None:
    from channels.db import database_sync_to_async

    await database_sync_to_async(answers_in)(tenant, "compose")
    model_composes(fake_llm, LONG_ANSWER)
    fake_llm.token_delay = 0.1


def _cut_short(text: str, quote: str) -> None:
    """What a taken-over answer keeps: the quote and the checked sentence shown before the take-over, and
    not the end the model never got to send."""
    assert text.startswith(f"{quote}\n\n{COMPOSED[0]}"), text
    assert COMPOSED[2] not in text


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_an_agent_taking_over_while_the_assistant_streams_stops_it_and_it_stays_silent(
    kb_desk: Desk, fake_llm: Any
) -> None:
    import anyio
    from channels.db import database_sync_to_async

    from tests.conversations.conftest import asession_for, widget_connect

    tenant = kb_desk.tenant
    await _compose_slowly(tenant, fake_llm)
    session = await asession_for(tenant)
    conversation_id = session.claims.conversation_id
    widget, _ = await widget_connect(tenant, token=session.token)
    try:
        await widget.send({"type": "message", "text": "Is roaming in the European Union free?"})
        first = await widget.until(lambda f: f["type"] == "assistant.delta")
        quote = first["text"]  # the evidence comes at once; the model's sentences follow it
        assert quote.startswith("Here is what our polic")
        await widget.until(lambda f: f["type"] == "assistant.delta" and COMPOSED[0] in f["text"])
        assert [is_compose_request(b) for b in fake_llm.chat_requests] == [True]

        await database_sync_to_async(services.conversation_take_over)(
            tenant=tenant, conversation_id=conversation_id, agent=kb_desk.alice
        )

        interrupted = await widget.until(lambda f: f["type"] == "assistant.interrupted")
        assert interrupted["message"]["id"] == first["message_id"]
        assert interrupted["message"]["status"] == "interrupted"
        _cut_short(interrupted["message"]["text"], quote)
        assert (interrupted["code"], interrupted["retryable"], interrupted["by"]) == (
            "interrupted",
            False,
            "handoff",
        )
        claimed = await widget.until(lambda f: f["type"] == "handoff.claimed")
        assert (claimed["seq"], claimed["owner"], claimed["agent"], claimed["reason"]) == (
            interrupted["seq"] + 1,
            "human",
            "Alice",
            "agent_takeover",
        )
        # The model's stream was abandoned: the answer task is gone, not left running to the end.
        assert await anyio.to_thread.run_sync(fake_llm.wait_for_disconnects, 1, 5.0)
        await anyio.sleep(1.0)
        from apps.conversations import assistant

        assert conversation_id not in assistant._running

        # While Alice owns the conversation the customer's messages reach her, never the assistant.
        for n, text in enumerate(["Hello, are you a person?", "I want to change my plan"]):
            await widget.send({"type": "message", "text": text, "client_msg_id": f"h{n}"})
            ack = await widget.until(lambda f: f["type"] == "ack")
            created = await widget.until(lambda f: f["type"] == "message.created")
            assert created["seq"] == ack["seq"]
        reply = await database_sync_to_async(services.agent_reply)(
            tenant=tenant,
            conversation_id=conversation_id,
            agent=kb_desk.alice,
            text="Hi, Alice here.",
            client_msg_id="a1",
        )
        shown = await widget.until(lambda f: f["type"] == "agent.message")
        assert (shown["seq"], shown["message"]["author"], shown["message"]["text"]) == (
            reply.seq,
            "Alice",
            "Hi, Alice here.",
        )
        await anyio.sleep(1.5)  # time enough for an answer to have started, had one been scheduled
        assert len(fake_llm.chat_requests) == 1
        types = [f["type"] for f in widget.received]
        assert types.count("assistant.started") == 1  # the first question's, cut off above
        assert types.count("assistant.interrupted") == 1
        assert "assistant.completed" not in types

        def stored() -> tuple[list[tuple[str, str]], list[str]]:
            messages = [
                (m.role, m.status)
                for m in Message.objects.filter(conversation_id=conversation_id).order_by("created_at")
            ]
            events = list(
                ConversationEvent.objects.filter(conversation_id=conversation_id)
                .order_by("seq")
                .values_list("type", flat=True)
            )
            return messages, events

        messages, events = await database_sync_to_async(stored)()
        assert messages == [
            ("customer", "complete"),
            ("assistant", "interrupted"),
            ("customer", "complete"),
            ("customer", "complete"),
            ("agent", "complete"),
        ]
        assert events == [
            "message.created",
            "assistant.started",
            "assistant.interrupted",
            "handoff.claimed",
            "message.created",
            "message.created",
            "agent.message",
        ]

        # Handed back, the assistant answers the next message, and only that message.
        fake_llm.token_delay = 0.0
        model_composes(fake_llm, COMPOSED[0])
        await database_sync_to_async(services.conversation_hand_back)(
            tenant=tenant, conversation_id=conversation_id, actor=kb_desk.alice
        )
        await widget.until(lambda f: f["type"] == "handoff.returned")
        await widget.send({"type": "message", "text": "Is roaming in the European Union free in France?"})
        await widget.until(lambda f: f["type"] == "assistant.started")
        completed = await widget.until(lambda f: f["type"] == "assistant.completed")
        evidence = await database_sync_to_async(evidence_of)(completed["message"]["id"])
        assert completed["message"]["text"] == f"{quote_of(evidence)}\n\n{COMPOSED[0]}"
        composed = [b for b in fake_llm.chat_requests if is_compose_request(b)]
        assert len(composed) == 2
        question = composed[-1]["messages"][-1]["content"]
        assert "free in France" in question
        assert "change my plan" not in question
    finally:
        await widget.close()


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_an_answer_written_by_another_process_stops_through_the_owner_marker(
    kb_desk: Desk, fake_llm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process writing the answer is not the one whose transition committed: no in-process cancel
    reaches it, the owner marker in Redis does (within a quarter second)."""
    import anyio
    from channels.db import database_sync_to_async

    from apps.conversations import assistant, hooks
    from tests.conversations.conftest import asession_for, widget_connect

    monkeypatch.setattr(hooks, "cancel_listeners", lambda: [])
    tenant = kb_desk.tenant
    await _compose_slowly(tenant, fake_llm)
    session = await asession_for(tenant)
    conversation_id = session.claims.conversation_id
    widget, _ = await widget_connect(tenant, token=session.token)
    try:
        await widget.send({"type": "message", "text": "Is roaming in the European Union free?"})
        first = await widget.until(lambda f: f["type"] == "assistant.delta")
        await widget.until(lambda f: f["type"] == "assistant.delta" and COMPOSED[0] in f["text"])
        await database_sync_to_async(services.conversation_take_over)(
            tenant=tenant, conversation_id=conversation_id, agent=kb_desk.bob
        )
        interrupted = await widget.until(lambda f: f["type"] == "assistant.interrupted")
        assert (interrupted["message"]["id"], interrupted["by"]) == (first["message_id"], "handoff")
        _cut_short(interrupted["message"]["text"], first["text"])
        assert await anyio.to_thread.run_sync(fake_llm.wait_for_disconnects, 1, 5.0)
        await anyio.sleep(0.5)
        assert conversation_id not in assistant._running
        types = [f["type"] for f in widget.received]
        assert (types.count("assistant.interrupted"), types.count("assistant.completed")) == (1, 0)
        message = await Message.objects.aget(id=first["message_id"])
        assert (message.status, message.text) == ("interrupted", interrupted["message"]["text"])
    finally:
        await widget.close()
