"""Claiming, taking over, transferring, handing back and resolving (apps/handoff/services.py): exactly one
of two agents claiming at once wins (real PostgreSQL, two threads), capacity is respected, and every
refusal leaves the conversation and its handoff as they were."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from apps.accounts.models import Role
from apps.conversations.models import ConversationEvent
from apps.core.errors import BadRequest, Conflict, Forbidden, NotFound
from apps.handoff import services
from apps.handoff.models import Handoff, Team
from tests.handoff.conftest import Chat, Desk, agent_online, chat_start, to_human, to_waiting

pytestmark = pytest.mark.django_db


def state(chat: Chat) -> dict[str, Any]:
    row = chat.row()
    return {
        "conversation": (row.status, row.agent_id, row.last_seq),
        "events": chat.events(),
        "handoffs": [(h.status, h.agent_id, h.team_id, h.claimed_at, h.closed_at) for h in chat.handoffs()],
    }


def _race(desk: Desk, handoff_id: Any) -> dict[int, Any]:
    barrier = threading.Barrier(2)
    results: dict[int, Any] = {}

    def claim(agent: Any) -> None:
        try:
            barrier.wait(timeout=10)
            results[agent.id] = services.handoff_claim(tenant=desk.tenant, handoff_id=handoff_id, agent=agent)
        except Conflict as exc:
            results[agent.id] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(agent,)) for agent in (desk.alice, desk.bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_agents_claiming_the_same_handoff_at_once_exactly_one_wins(desk: Desk) -> None:
    names = {desk.alice.id: "Alice", desk.bob.id: "Bob"}
    for _ in range(5):  # the race, several times over
        chat = chat_start(desk.tenant, "Is roaming free in Spain?")
        to_waiting(chat)
        [handoff] = chat.handoffs()

        results = _race(desk, handoff.id)

        assert set(results) == {desk.alice.id, desk.bob.id}
        winners = [agent for agent, result in results.items() if isinstance(result, Handoff)]
        losers = [agent for agent, result in results.items() if isinstance(result, Conflict)]
        assert len(winners) == 1
        assert len(losers) == 1
        [winner], [loser] = winners, losers
        assert results[loser].message == f"{names[winner]} has this conversation already."
        assert (results[winner].status, results[winner].agent_id) == ("claimed", winner)
        row = chat.row()
        assert (row.status, row.agent_id) == ("human", winner)
        claims = ConversationEvent.objects.filter(conversation_id=chat.id, type="handoff.claimed")
        assert [(e.data["agent"]) for e in claims] == [names[winner]]
        assert [(h.status, h.agent_id) for h in chat.handoffs()] == [("claimed", winner)]
        # Free the winner again, so the next round starts with both agents under their limit.
        services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.admin)


def test_a_claim_sets_the_owner_the_handoff_and_one_event(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    last_seq = chat.row().last_seq
    claimed = services.handoff_claim(tenant=desk.tenant, handoff_id=str(handoff.id), agent=desk.alice)
    assert (claimed.id, claimed.status, claimed.agent_id) == (handoff.id, "claimed", desk.alice.id)
    assert claimed.claimed_at is not None
    assert claimed.closed_at is None
    assert chat.events(after=last_seq) == [
        (last_seq + 1, "handoff.claimed", {"owner": "human", "agent": "Alice"}),
    ]


def test_a_claim_of_a_handoff_someone_has_is_refused_with_their_name(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    before = state(chat)
    with pytest.raises(Conflict) as caught:
        services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.bob)
    assert caught.value.message == "Alice has this conversation already."
    assert state(chat) == before


def test_a_claim_of_a_closed_handoff_is_refused(desk: Desk) -> None:
    from apps.conversations.services import handoff_cancel

    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    handoff_cancel(tenant=desk.tenant, claims=chat.claims)
    before = state(chat)
    with pytest.raises(Conflict) as caught:
        services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.bob)
    assert caught.value.message == "Nobody is waiting here any more."
    assert state(chat) == before


def test_another_companys_handoff_cannot_be_claimed(desk: Desk, make_tenant: Any, make_user: Any) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    other = make_tenant()
    stranger = make_user(other, roles=[Role.AGENT])
    before = state(chat)
    with pytest.raises(NotFound):
        services.handoff_claim(tenant=other, handoff_id=handoff.id, agent=stranger)
    with pytest.raises(NotFound):
        services.conversation_take_over(tenant=other, conversation_id=chat.id, agent=stranger)
    with pytest.raises(NotFound):
        services.handoff_claim(tenant=desk.tenant, handoff_id="not-a-uuid", agent=desk.alice)
    assert state(chat) == before


def test_an_agent_at_their_capacity_cannot_claim_or_take_over(desk: Desk) -> None:
    agent_online(desk.tenant, desk.alice, capacity=1)
    held = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(held, desk.alice)
    waiting = chat_start(desk.tenant, "Can I return my phone?")
    to_waiting(waiting)
    [handoff] = waiting.handoffs()
    quiet = chat_start(desk.tenant, "What does roaming cost in the US?")
    before = (state(held), state(waiting), state(quiet))
    message = "You already hold 1 conversation, your limit. Resolve or hand one back first."
    with pytest.raises(Conflict) as caught:
        services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    assert caught.value.message == message
    with pytest.raises(Conflict) as caught:
        services.conversation_take_over(tenant=desk.tenant, conversation_id=quiet.id, agent=desk.alice)
    assert caught.value.message == message
    # Nor can a colleague hand her another one.
    to_human(quiet, desk.bob)
    with pytest.raises(Conflict) as caught:
        services.conversation_transfer(
            tenant=desk.tenant, conversation_id=quiet.id, actor=desk.bob, to_agent_id=desk.alice.id
        )
    assert caught.value.message == "Alice is at their limit of 1 conversations."
    assert (state(held), state(waiting)) == before[:2]
    assert (quiet.row().status, quiet.row().agent_id) == ("human", desk.bob.id)
    # With room again, the claim goes through.
    services.presence_set(tenant=desk.tenant, user=desk.alice, capacity=2)
    assert (
        services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice).status
        == "claimed"
    )


def test_taking_over_someone_elses_conversation_is_refused(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    before = state(chat)
    with pytest.raises(Conflict) as caught:
        services.conversation_take_over(tenant=desk.tenant, conversation_id=chat.id, agent=desk.bob)
    assert caught.value.message == "Alice has this conversation."
    with pytest.raises(Conflict) as caught:
        services.conversation_take_over(tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice)
    assert caught.value.message == "You have this conversation already."
    assert state(chat) == before


def test_taking_over_a_waiting_conversation_claims_its_handoff(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat, reason="sensitive", priority=1)
    [waiting] = chat.handoffs()
    taken = to_human(chat, desk.bob)
    assert (taken.id, taken.status, taken.agent_id, taken.reason) == (
        waiting.id,
        "claimed",
        desk.bob.id,
        "sensitive",
    )
    assert chat.events()[-1][1:] == ("handoff.claimed", {"owner": "human", "agent": "Bob"})


def test_transfers_to_an_agent_and_to_a_team(desk: Desk, make_user: Any) -> None:
    billing = Team.objects.create(tenant=desk.tenant, name="Billing")
    editor = make_user(desk.tenant, roles=[Role.EDITOR])
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    before = state(chat)
    with pytest.raises(BadRequest):
        services.conversation_transfer(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    with pytest.raises(BadRequest):
        services.conversation_transfer(
            tenant=desk.tenant,
            conversation_id=chat.id,
            actor=desk.alice,
            to_agent_id=desk.bob.id,
            to_team_id=billing.id,
        )
    with pytest.raises(BadRequest) as caught:
        services.conversation_transfer(
            tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice, to_agent_id=editor.id
        )
    assert caught.value.message == "That person is not an agent of this company."
    with pytest.raises(Forbidden):  # Bob does not own it and is not an admin
        services.conversation_transfer(
            tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob, to_agent_id=desk.bob.id
        )
    with pytest.raises(Conflict) as conflict:
        services.conversation_transfer(
            tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice, to_agent_id=desk.alice.id
        )
    assert conflict.value.message == "Alice has this conversation already."
    assert state(chat) == before

    last_seq = chat.row().last_seq
    moved = services.conversation_transfer(
        tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice, to_agent_id=desk.bob.id
    )
    assert (moved.status, moved.agent_id) == ("claimed", desk.bob.id)
    assert (chat.row().status, chat.row().agent_id) == ("human", desk.bob.id)
    assert chat.events(after=last_seq) == [
        (last_seq + 1, "handoff.transferred", {"owner": "human", "agent": "Bob", "to": "agent"}),
    ]
    # The admin sends it to the billing team: back in the queue, marked for them.
    queued = services.conversation_transfer(
        tenant=desk.tenant, conversation_id=chat.id, actor=desk.admin, to_team_id=str(billing.id)
    )
    assert (queued.id, queued.status, queued.agent_id, queued.team_id) == (
        moved.id,
        "waiting",
        None,
        billing.id,
    )
    assert (chat.row().status, chat.row().agent_id) == ("waiting", None)
    assert [(t, d.get("to"), d.get("team")) for _, t, d in chat.events(after=last_seq + 1)] == [
        ("handoff.transferred", "team", "Billing"),
        ("handoff.status", None, None),
    ]
    assert len(chat.handoffs()) == 1


def test_only_the_owner_or_an_admin_hands_back_or_resolves(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    before = state(chat)
    with pytest.raises(Forbidden) as caught:
        services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob)
    assert caught.value.message == "Alice has this conversation; only they or an admin can do that."
    with pytest.raises(Forbidden):
        services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob)
    assert state(chat) == before
    services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.admin)
    assert (chat.row().status, chat.row().agent_id) == ("assistant", None)
    assert [h.status for h in chat.handoffs()] == ["returned"]
    with pytest.raises(Conflict) as conflict:  # nothing to hand back any more
        services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    assert conflict.value.message == "The assistant has this conversation: take it over first."
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob)
    assert chat.row().status == "resolved"
    before = state(chat)
    with pytest.raises(Conflict) as conflict:
        services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob)
    assert conflict.value.message == "This conversation is resolved already."
    assert state(chat) == before


def test_agent_replies_are_the_owners_only_and_stored_once(desk: Desk) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    before = state(chat)
    with pytest.raises(Conflict) as caught:
        services.agent_reply(
            tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text="Hi", client_msg_id="c1"
        )
    assert caught.value.message == "This conversation is waiting in the queue: claim it first."
    assert state(chat) == before
    services.handoff_claim(tenant=desk.tenant, handoff_id=chat.handoffs()[0].id, agent=desk.alice)
    before = state(chat)
    with pytest.raises(Conflict) as caught:
        services.agent_reply(
            tenant=desk.tenant, conversation_id=chat.id, agent=desk.bob, text="Hi", client_msg_id="c1"
        )
    assert caught.value.message == "Alice has this conversation."
    for text, problem in [("  ", "The reply is empty."), ("x" * 4001, None)]:
        with pytest.raises(BadRequest) as bad:
            services.agent_reply(
                tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text=text, client_msg_id="c1"
            )
        assert problem is None or bad.value.message == problem
    assert state(chat) == before

    first = services.agent_reply(
        tenant=desk.tenant,
        conversation_id=chat.id,
        agent=desk.alice,
        text=" Hello, Alice here. ",
        client_msg_id="c1",
    )
    again = services.agent_reply(
        tenant=desk.tenant,
        conversation_id=chat.id,
        agent=desk.alice,
        text="Hello, Alice here.",
        client_msg_id="c1",
    )
    assert (first.created, again.created, again.message.id, again.seq) == (
        True,
        False,
        first.message.id,
        first.seq,
    )
    assert (first.message.role, first.message.text, first.message.author_id) == (
        "agent",
        "Hello, Alice here.",
        desk.alice.id,
    )
    assert [t for _, t, _ in chat.events(after=before["conversation"][2])] == ["agent.message"]
    [handoff] = chat.handoffs()
    assert handoff.first_reply_at is not None
    # Another agent reusing the id is not shown Alice's message.
    services.conversation_transfer(
        tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice, to_agent_id=desk.bob.id
    )
    with pytest.raises(Conflict) as caught:
        services.agent_reply(
            tenant=desk.tenant, conversation_id=chat.id, agent=desk.bob, text="Hi", client_msg_id="c1"
        )
    assert caught.value.message == "That message id was used by someone else."


def test_only_the_companys_agents_can_claim_or_take_over(desk: Desk, make_user: Any) -> None:
    editor = make_user(desk.tenant, roles=[Role.EDITOR], username="erin-claims")
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    for attempt in (
        lambda: services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=editor),
        lambda: services.conversation_take_over(tenant=desk.tenant, conversation_id=chat.id, agent=editor),
    ):
        with pytest.raises(Forbidden) as caught:
            attempt()
        assert caught.value.message == "Only the company's agents can hold its conversations."
    row = chat.row()
    assert (row.status, row.agent_id) == ("waiting", None)
    assert [h.status for h in chat.handoffs()] == ["waiting"]
