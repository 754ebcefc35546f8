"""The customer's side of a handoff over the widget socket (the real ASGI application): asking for a person
and changing their mind, rating a resolved conversation once per episode (the comment stored redacted),
and what agents' consoles are told when a customer writes to a person."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.conversations import services as conv
from apps.conversations.models import Conversation, ConversationEvent, ConversationRating
from apps.core.errors import BadRequest, Conflict
from apps.handoff import services
from apps.handoff.models import Handoff
from tests.conversations.conftest import widget_connect
from tests.handoff.conftest import Chat, Desk, agent_online, chat_start, open_all_day, to_human


def _new_session(desk: Desk) -> conv.WidgetSession:
    return conv.widget_session_open(tenant=desk.tenant, token=None, claim=None)


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_the_customer_asks_for_a_person_then_goes_back_to_the_assistant(desk: Desk) -> None:
    def live() -> None:
        open_all_day(desk.tenant)
        agent_online(desk.tenant, desk.alice)

    await database_sync_to_async(live)()
    session = await database_sync_to_async(_new_session)(desk)
    conversation_id = session.claims.conversation_id
    widget, _ = await widget_connect(desk.tenant, token=session.token)
    try:
        await widget.send(
            {"type": "handoff.request", "client_msg_id": "h1", "reason": "My card is 4111 1111"}
        )
        ack = await widget.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == "h1")
        requested = await widget.until(lambda f: f["type"] == "handoff.requested")
        status = await widget.until(lambda f: f["type"] == "handoff.status")
        assert ack == {"type": "ack", "client_msg_id": "h1", "seq": 1}
        assert (requested["seq"], requested["owner"], requested["reason"]) == (
            1,
            "waiting",
            "customer_request",
        )
        assert (status["seq"], status["state"], status["position"], status["expected_wait_seconds"]) == (
            2,
            "queued",
            1,
            120,
        )
        handoff = await Handoff.objects.aget(conversation_id=conversation_id)
        # The customer's free text never becomes what every agent sees in the queue.
        assert (handoff.reason, handoff.detail, handoff.status) == (
            "customer_request",
            "asked with the button",
            "waiting",
        )

        # Asking again: acknowledged, nothing new.
        await widget.send({"type": "handoff.request", "client_msg_id": "h2"})
        assert await widget.until(lambda f: f["type"] == "ack") == {"type": "ack", "client_msg_id": "h2"}

        await widget.send({"type": "handoff.cancel", "client_msg_id": "c1"})
        ack = await widget.until(lambda f: f["type"] == "ack")
        cancelled = await widget.until(lambda f: f["type"] == "handoff.cancelled")
        assert (ack["seq"], cancelled["seq"], cancelled["owner"]) == (3, 3, "assistant")
        await widget.send({"type": "handoff.cancel", "client_msg_id": "c2"})
        assert await widget.until(lambda f: f["type"] == "ack") == {"type": "ack", "client_msg_id": "c2"}
    finally:
        await widget.close()
    conversation = await Conversation.objects.aget(id=conversation_id)
    assert (conversation.status, conversation.last_seq) == ("assistant", 3)
    handoff = await Handoff.objects.aget(conversation_id=conversation_id)
    assert handoff.status == "cancelled"


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_a_resolved_conversation_is_rated_once_per_episode(desk: Desk) -> None:
    def with_alice() -> Chat:
        chat = chat_start(desk.tenant, "Is roaming free in Spain?")
        to_human(chat, desk.alice)
        services.agent_reply(
            tenant=desk.tenant,
            conversation_id=chat.id,
            agent=desk.alice,
            text="Yes, it is.",
            client_msg_id="r1",
        )
        return chat

    chat = await database_sync_to_async(with_alice)()
    widget, _ = await widget_connect(desk.tenant, token=chat.session.token)
    try:
        await widget.send({"type": "csat", "score": 5, "client_msg_id": "s0"})
        error = await widget.until(lambda f: f["type"] == "error")
        assert (error["code"], error["client_msg_id"], error["message"]) == (
            "conflict",
            "s0",
            "You can rate the conversation once it is resolved.",
        )
        assert await ConversationRating.objects.acount() == 0

        await database_sync_to_async(services.conversation_resolve)(
            tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice
        )
        resolved = await widget.until(lambda f: f["type"] == "conversation.resolved")
        assert (resolved["owner"], resolved["csat"]) == ("resolved", True)

        await widget.send({"type": "csat", "score": 9, "client_msg_id": "s1"})
        assert (await widget.until(lambda f: f["type"] == "error"))["code"] == "bad_request"
        await widget.send(
            {
                "type": "csat",
                "score": 4,
                "comment": "Alice was great. Call me on +44 20 7946 0958 if anything changes.",
                "client_msg_id": "s2",
            }
        )
        assert await widget.until(lambda f: f["type"] == "ack") == {"type": "ack", "client_msg_id": "s2"}
        recorded = await widget.until(lambda f: f["type"] == "csat.recorded")
        assert recorded["score"] == 4
        await widget.send({"type": "csat", "score": 1, "client_msg_id": "s3"})
        error = await widget.until(lambda f: f["type"] == "error")
        assert (error["code"], error["message"]) == (
            "conflict",
            "You've rated this conversation already. Thank you!",
        )
    finally:
        await widget.close()
    [rating] = [r async for r in ConversationRating.objects.all()]
    assert (rating.conversation_id, rating.episode, rating.score, rating.agent_id) == (
        chat.id,
        1,
        4,
        desk.alice.id,
    )
    assert rating.comment == "<PERSON> was great. Call me on <PHONE_NUMBER> if anything changes."
    assert await ConversationEvent.objects.filter(conversation_id=chat.id, type="csat.recorded").acount() == 1


@pytest.mark.django_db
def test_a_new_episode_can_be_rated_again(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    services.agent_reply(
        tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text="Yes.", client_msg_id="r1"
    )
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    first = conv.rating_record(tenant=desk.tenant, claims=chat.claims, score=5)
    assert (first.episode, first.agent_id, first.comment) == (1, desk.alice.id, "")
    chat.say("Another question")
    chat.answer("The assistant's answer.")
    with pytest.raises(Conflict):
        conv.rating_record(tenant=desk.tenant, claims=chat.claims, score=2)
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    second = conv.rating_record(tenant=desk.tenant, claims=chat.claims, score=2)
    assert (second.episode, second.score, second.agent_id) == (2, 2, None)  # nobody but the assistant
    with pytest.raises(BadRequest):
        conv.rating_record(tenant=desk.tenant, claims=chat.claims, score=0)
    assert ConversationRating.objects.count() == 2


@pytest.mark.django_db
def test_a_rating_without_a_conversation_creates_nothing(desk: Desk) -> None:
    session = _new_session(desk)
    with pytest.raises(Conflict):
        conv.rating_record(tenant=desk.tenant, claims=session.claims, score=5)
    assert not Conversation.objects.filter(id=session.claims.conversation_id).exists()


@pytest.mark.django_db
def test_agents_are_told_when_a_customer_writes_to_a_person(
    desk: Desk, staff_pushes: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    with django_capture_on_commit_callbacks(execute=True):
        chat.say("Another question for the assistant")
    assert staff_pushes == []  # the assistant's conversations are not the agents' business
    to_human(chat, desk.alice)
    staff_pushes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        receipt = chat.say("Hello Alice")
    assert staff_pushes == [
        {
            "type": "conversation.activity",
            "conversation_id": str(chat.id),
            "seq": receipt.seq,
            "status": "human",
            "agent_id": desk.alice.id,
        }
    ]


@pytest.mark.django_db
def test_the_queue_and_activity_pushes_follow_each_change(
    desk: Desk, staff_pushes: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    staff_pushes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        conv.handoff_request(tenant=desk.tenant, claims=chat.claims)
    with django_capture_on_commit_callbacks(execute=True):
        services.handoff_claim(tenant=desk.tenant, handoff_id=chat.handoffs()[0].id, agent=desk.bob)
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob)
    queue = [
        (p["handoff"]["status"], p["handoff"]["conversation_status"], p["handoff"]["agent"])
        for p in staff_pushes
    ]
    assert queue == [
        ("waiting", "waiting", None),
        ("claimed", "human", "Bob"),
        ("resolved", "resolved", "Bob"),
    ]
    assert {p["type"] for p in staff_pushes} == {"queue.changed"}
