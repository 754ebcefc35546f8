"""The handoff REST API (apps/handoff/apis.py): the queue, claims, take-overs, transfers, hand backs,
resolutions, replies and notes, canned responses, presence, tickets, company settings, rules, teams and the
inbound email webhook. Every refusal also asserts that nothing changed.

Conversations are made the way customers make them (a widget session and a stored message) and queued
through the ownership state machine. The tests run inside a transaction that never commits, so no push
or task leaves the process; the concurrent claim test commits (two threads, two connections).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.conversations.models import Conversation, ConversationEvent, HandoffReason, Message
from apps.conversations.selectors import events_rendered
from apps.handoff import selectors, services
from apps.handoff.models import CannedResponse, Handoff, HandoffRule, HandoffSettings, Presence, Team, Ticket
from tests.handoff.api_fixtures import (
    Desk,
    base,
    chat,
    claimed,
    conversation_state,
    desk_of,
    presence_row,
    queued,
    ticket_for,
)

pytestmark = pytest.mark.django_db

FORBIDDEN = {"code": "forbidden", "message": "You don't have permission to do that.", "retryable": False}
UNAUTHORIZED = {
    "code": "unauthorized",
    "message": "Authentication credentials were not provided.",
    "retryable": False,
}


def error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "retryable": False}


def without_clock(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without its waiting time, which moves while the test runs."""
    assert isinstance(summary["waiting_seconds"], int)
    assert 0 <= summary["waiting_seconds"] < 60
    return {k: v for k, v in summary.items() if k != "waiting_seconds"}


def fresh_summary(handoff: Handoff) -> dict[str, Any]:
    return without_clock(selectors.handoff_summary(Handoff.objects.get(id=handoff.id)))


def events(conversation_id: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.type, e.data)
        for e in ConversationEvent.objects.filter(conversation_id=conversation_id).order_by("seq")
    ]


@pytest.fixture
def desk_a(tenant_a: Any, make_user: Any) -> Desk:
    return desk_of(tenant_a, make_user)


@pytest.fixture
def as_user(api_client_as: Any) -> Any:
    return api_client_as


def conv_url(desk_a: Desk, conversation_id: Any, action: str) -> str:
    return f"{base(desk_a.tenant)}/conversations/{conversation_id}/{action}/"


# ---- the queue -----------------------------------------------------------------------------------------


def test_the_queue_sorts_waiting_by_priority_then_age_and_splits_mine_from_colleagues(desk_a, as_user):
    old_normal = queued(desk_a.tenant)
    urgent = queued(desk_a.tenant, priority=2, reason=HandoffReason.ANGRY, detail="angry customer")
    new_normal = queued(desk_a.tenant)
    high = queued(desk_a.tenant, priority=1)
    mine = claimed(desk_a.tenant, desk_a.alice)
    colleagues = claimed(desk_a.tenant, desk_a.bob)
    team = services.team_create(tenant=desk_a.tenant, name="Billing")
    services.presence_set(tenant=desk_a.tenant, user=desk_a.bob, capacity=5)
    services.presence_set(tenant=desk_a.tenant, user=desk_a.alice, status=Presence.Status.AWAY)

    response = as_user(desk_a.alice).get(f"{base(desk_a.tenant)}/handoffs/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"waiting", "mine", "others", "agents", "me", "teams"}
    assert [r["id"] for r in body["waiting"]] == [str(h.id) for h in (urgent, high, old_normal, new_normal)]
    assert [r["id"] for r in body["mine"]] == [str(mine.id)]
    assert [r["id"] for r in body["others"]] == [str(colleagues.id)]
    assert without_clock(body["waiting"][0]) == {
        "id": str(urgent.id),
        "conversation_id": str(urgent.conversation_id),
        "status": "waiting",
        "conversation_status": "waiting",
        "reason": "angry",
        "reason_label": "Customer upset",
        "detail": "angry customer",
        "priority": 2,
        "escalation_level": 0,
        "team": None,
        "team_id": None,
        "agent_id": None,
        "agent": None,
        "customer": "Anonymous visitor",
        "verified": False,
        "created_at": urgent.created_at.isoformat(),
        "claimed_at": None,
        # Nobody has a console open: the customer was offered the email path.
        "offline": True,
        "ticket": None,
        "case_file_status": "pending",
        "last_seq": Conversation.objects.get(id=urgent.conversation_id).last_seq,
    }
    assert (body["others"][0]["agent_id"], body["others"][0]["agent"]) == (desk_a.bob.id, "Bob")
    assert (body["mine"][0]["status"], body["mine"][0]["conversation_status"]) == ("claimed", "human")
    assert body["agents"] == [
        {"user_id": desk_a.admin.id, "name": "admin_a", "status": "offline", "holding": 0, "capacity": 3},
        {"user_id": desk_a.agent.id, "name": "agent_a", "status": "offline", "holding": 0, "capacity": 3},
        {"user_id": desk_a.alice.id, "name": "Alice", "status": "offline", "holding": 1, "capacity": 3},
        {"user_id": desk_a.bob.id, "name": "Bob", "status": "offline", "holding": 1, "capacity": 5},
        {"user_id": desk_a.viewer.id, "name": "Vera", "status": "offline", "holding": 0, "capacity": 3},
    ]
    assert body["me"] == {"user_id": desk_a.alice.id, "status": "away", "capacity": 3, "holding": 1}
    assert body["teams"] == [{"id": str(team.id), "name": "Billing"}]


def test_the_queue_is_for_agents_only(desk_a, tenant_a, as_user, api_anonymous):
    queued(desk_a.tenant)
    url = f"{base(desk_a.tenant)}/handoffs/"

    editor = as_user(desk_a.editor).get(url)
    anonymous = api_anonymous.get(url)

    assert (editor.status_code, editor.json()) == (403, FORBIDDEN)
    assert (anonymous.status_code, anonymous.json()) == (401, UNAUTHORIZED)
    # An admin holds every role.
    assert as_user(desk_a.admin).get(url).status_code == 200


# ---- one handoff ---------------------------------------------------------------------------------------


def test_a_handoff_comes_with_its_case_file(desk_a, as_user):
    handoff = queued(desk_a.tenant)
    case_file = {"summary": "Invoice for March shows a roaming charge.", "tried": ["checked the bill"]}
    Handoff.objects.filter(id=handoff.id).update(case_file=case_file, case_file_status="ready")

    response = as_user(desk_a.alice).get(f"{base(desk_a.tenant)}/handoffs/{handoff.id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["case_file"] == case_file
    assert body["case_file_status"] == "ready"
    assert without_clock({k: v for k, v in body.items() if k != "case_file"}) == fresh_summary(handoff)


@pytest.mark.parametrize("handoff_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_handoff_is_not_found(handoff_id, desk_a, as_user):
    response = as_user(desk_a.alice).get(f"{base(desk_a.tenant)}/handoffs/{handoff_id}/")

    # A malformed id does not match the route at all.
    if handoff_id == "not-a-uuid":
        assert response.status_code == 404
    else:
        assert (response.status_code, response.json()) == (
            404,
            error("not_found", "There is no such handoff."),
        )


def test_the_case_file_can_be_written_again(desk_a, as_user):
    handoff = queued(desk_a.tenant)
    Handoff.objects.filter(id=handoff.id).update(case_file_status="failed")

    response = as_user(desk_a.alice).post(f"{base(desk_a.tenant)}/handoffs/{handoff.id}/case-file/")

    assert response.status_code == 202
    assert response.json()["case_file_status"] == "pending"
    assert Handoff.objects.get(id=handoff.id).case_file_status == "pending"


# ---- claim ---------------------------------------------------------------------------------------------


def test_the_first_claim_wins_and_the_second_agent_gets_409_naming_the_holder(desk_a, as_user):
    handoff = queued(desk_a.tenant)
    url = f"{base(desk_a.tenant)}/handoffs/{handoff.id}/claim/"

    first = as_user(desk_a.alice).post(url)

    assert first.status_code == 200
    body = first.json()
    assert (body["id"], body["status"], body["conversation_status"]) == (str(handoff.id), "claimed", "human")
    assert (body["agent_id"], body["agent"]) == (desk_a.alice.id, "Alice")
    assert body["claimed_at"] is not None
    assert events(handoff.conversation_id)[-1] == ("handoff.claimed", {"owner": "human", "agent": "Alice"})
    before = conversation_state(handoff.conversation_id)

    second = as_user(desk_a.bob).post(url)

    assert (second.status_code, second.json()) == (
        409,
        error("conflict", "Alice has this conversation already."),
    )
    assert conversation_state(handoff.conversation_id) == before


def test_an_agent_at_their_limit_cannot_claim(desk_a, as_user):
    services.presence_set(tenant=desk_a.tenant, user=desk_a.alice, capacity=1)
    claimed(desk_a.tenant, desk_a.alice)
    handoff = queued(desk_a.tenant)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.alice).post(f"{base(desk_a.tenant)}/handoffs/{handoff.id}/claim/")

    assert (response.status_code, response.json()) == (
        409,
        error("conflict", "You already hold 1 conversation, your limit. Resolve or hand one back first."),
    )
    assert conversation_state(handoff.conversation_id) == before


def test_a_handoff_nobody_waits_in_any_more_cannot_be_claimed(desk_a, as_user):
    handoff = queued(desk_a.tenant)
    services.conversation_resolve(
        tenant=desk_a.tenant, conversation_id=handoff.conversation_id, actor=desk_a.bob
    )
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.alice).post(f"{base(desk_a.tenant)}/handoffs/{handoff.id}/claim/")

    assert (response.status_code, response.json()) == (
        409,
        error("conflict", "Nobody is waiting here any more."),
    )
    assert conversation_state(handoff.conversation_id) == before


def post_at_once(clients: dict[int, APIClient], url: str) -> dict[int, Any]:
    """Every client POSTs `url` at the same moment, each from its own thread and database connection."""
    barrier = threading.Barrier(len(clients))
    responses: dict[int, Any] = {}
    failures: list[BaseException] = []

    def post(key: int, client: APIClient) -> None:
        try:
            barrier.wait(timeout=10)
            responses[key] = client.post(url)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=item) for item in clients.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    return responses


@pytest.mark.django_db(transaction=True)
def test_two_agents_claiming_at_the_same_moment_exactly_one_wins(desk_a):
    agents = {desk_a.alice.id: desk_a.alice, desk_a.bob.id: desk_a.bob}
    clients = {}
    for agent in agents.values():
        clients[agent.id] = APIClient()
        clients[agent.id].force_login(agent)

    for _ in range(3):
        handoff = queued(desk_a.tenant)

        responses = post_at_once(clients, f"{base(desk_a.tenant)}/handoffs/{handoff.id}/claim/")

        assert sorted(r.status_code for r in responses.values()) == [200, 409]
        [winner_id] = [key for key, r in responses.items() if r.status_code == 200]
        [loser] = [r for r in responses.values() if r.status_code == 409]
        winner = agents[winner_id]
        assert loser.json() == error("conflict", f"{winner.first_name} has this conversation already.")
        row = Handoff.objects.get(id=handoff.id)
        assert (row.status, row.agent_id) == ("claimed", winner_id)
        conversation = Conversation.objects.get(id=handoff.conversation_id)
        assert (conversation.status, conversation.agent_id) == ("human", winner_id)
        assert [t for t, _ in events(handoff.conversation_id)].count("handoff.claimed") == 1
        # Release the winner's slot so capacity never decides the next round.
        services.conversation_hand_back(
            tenant=desk_a.tenant, conversation_id=handoff.conversation_id, actor=winner
        )


# ---- take over -----------------------------------------------------------------------------------------


def test_an_agent_takes_a_conversation_from_the_assistant(desk_a, as_user):
    conversation = chat(desk_a.tenant)

    response = as_user(desk_a.alice).post(conv_url(desk_a, conversation.id, "take-over"))

    assert response.status_code == 200
    body = response.json()
    handoff = Handoff.objects.get(conversation_id=conversation.id)
    assert without_clock(body) == fresh_summary(handoff)
    assert (body["status"], body["reason"], body["agent_id"]) == (
        "claimed",
        "agent_takeover",
        desk_a.alice.id,
    )
    assert [t for t, _ in events(conversation.id)] == ["message.created", "handoff.claimed"]
    assert events(conversation.id)[-1][1] == {"owner": "human", "agent": "Alice", "reason": "agent_takeover"}


def test_an_agent_takes_a_waiting_conversation_and_its_handoff(desk_a, as_user):
    handoff = queued(desk_a.tenant)

    response = as_user(desk_a.alice).post(conv_url(desk_a, handoff.conversation_id, "take-over"))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["reason"]) == (str(handoff.id), "claimed", "customer_request")
    assert Handoff.objects.filter(conversation_id=handoff.conversation_id).count() == 1


def test_taking_over_what_a_colleague_or_you_hold_is_a_conflict(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    url = conv_url(desk_a, handoff.conversation_id, "take-over")
    before = conversation_state(handoff.conversation_id)

    theirs = as_user(desk_a.bob).post(url)
    mine = as_user(desk_a.alice).post(url)

    assert (theirs.status_code, theirs.json()) == (409, error("conflict", "Alice has this conversation."))
    assert (mine.status_code, mine.json()) == (409, error("conflict", "You have this conversation already."))
    assert conversation_state(handoff.conversation_id) == before


def test_a_resolved_conversation_cannot_be_taken_over(desk_a, as_user):
    conversation = chat(desk_a.tenant)
    services.conversation_resolve(tenant=desk_a.tenant, conversation_id=conversation.id, actor=desk_a.alice)
    before = conversation_state(conversation.id)

    response = as_user(desk_a.bob).post(conv_url(desk_a, conversation.id, "take-over"))

    assert (response.status_code, response.json()) == (
        409,
        error("conflict", "This conversation is resolved."),
    )
    assert conversation_state(conversation.id) == before


# ---- transfer ------------------------------------------------------------------------------------------


def test_the_owner_transfers_to_another_agent(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)

    response = as_user(desk_a.alice).post(
        conv_url(desk_a, handoff.conversation_id, "transfer"), {"agent_id": desk_a.bob.id}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["agent_id"], body["agent"]) == (
        str(handoff.id),
        "claimed",
        desk_a.bob.id,
        "Bob",
    )
    conversation = Conversation.objects.get(id=handoff.conversation_id)
    assert (conversation.status, conversation.agent_id) == ("human", desk_a.bob.id)
    assert events(handoff.conversation_id)[-1] == (
        "handoff.transferred",
        {"owner": "human", "agent": "Bob", "to": "agent"},
    )


def test_a_transfer_to_an_agent_at_their_limit_is_refused(desk_a, as_user):
    services.presence_set(tenant=desk_a.tenant, user=desk_a.bob, capacity=1)
    claimed(desk_a.tenant, desk_a.bob)
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.alice).post(
        conv_url(desk_a, handoff.conversation_id, "transfer"), {"agent_id": desk_a.bob.id}, format="json"
    )

    assert (response.status_code, response.json()) == (
        409,
        error("conflict", "Bob is at their limit of 1 conversations."),
    )
    assert conversation_state(handoff.conversation_id) == before


def test_a_transfer_to_someone_who_is_not_an_agent_here_is_refused(desk_a, tenant_b, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)
    url = conv_url(desk_a, handoff.conversation_id, "transfer")

    for target in (desk_a.editor.id, tenant_b.agent.id, tenant_b.admin.id, 987654):
        response = as_user(desk_a.alice).post(url, {"agent_id": target}, format="json")

        assert (response.status_code, response.json()) == (
            400,
            error("bad_request", "That person is not an agent of this company."),
        )
    assert conversation_state(handoff.conversation_id) == before


def test_a_transfer_to_a_team_puts_the_conversation_back_in_the_queue_for_that_team(desk_a, as_user):
    team = services.team_create(tenant=desk_a.tenant, name="Billing", member_ids=[desk_a.bob.id])
    handoff = claimed(desk_a.tenant, desk_a.alice)

    response = as_user(desk_a.alice).post(
        conv_url(desk_a, handoff.conversation_id, "transfer"), {"team_id": str(team.id)}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["conversation_status"]) == (
        str(handoff.id),
        "waiting",
        "waiting",
    )
    assert (body["team"], body["team_id"], body["agent_id"], body["agent"]) == (
        "Billing",
        str(team.id),
        None,
        None,
    )
    conversation = Conversation.objects.get(id=handoff.conversation_id)
    assert (conversation.status, conversation.agent_id) == ("waiting", None)
    transferred, told = events(handoff.conversation_id)[-2:]
    assert transferred == ("handoff.transferred", {"owner": "waiting", "to": "team", "team": "Billing"})
    # Back in the queue, the customer is told what happens next again.
    assert (told[0], told[1]["state"], told[1]["handoff_id"]) == (
        "handoff.status",
        "offline",
        str(handoff.id),
    )
    queue_body = as_user(desk_a.bob).get(f"{base(desk_a.tenant)}/handoffs/").json()
    assert [(r["id"], r["team"]) for r in queue_body["waiting"]] == [(str(handoff.id), "Billing")]


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({}, 400, "Choose an agent or a team to transfer to."),
        ({"agent_id": "BOB", "team_id": None}, 400, "Some fields are invalid."),
        ({"team_id": "00000000-0000-0000-0000-000000000000"}, 400, "There is no such team."),
    ],
)
def test_a_transfer_needs_one_existing_target(payload, status, message, desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.alice).post(
        conv_url(desk_a, handoff.conversation_id, "transfer"), payload, format="json"
    )

    assert (response.status_code, response.json()["code"], response.json()["message"]) == (
        status,
        "bad_request",
        message,
    )
    assert conversation_state(handoff.conversation_id) == before


def test_a_transfer_to_an_agent_and_a_team_at_once_is_refused(desk_a, as_user):
    team = services.team_create(tenant=desk_a.tenant, name="Billing")
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.alice).post(
        conv_url(desk_a, handoff.conversation_id, "transfer"),
        {"agent_id": desk_a.bob.id, "team_id": str(team.id)},
        format="json",
    )

    assert (response.status_code, response.json()) == (
        400,
        error("bad_request", "Transfer to an agent or to a team, not both."),
    )
    assert conversation_state(handoff.conversation_id) == before


def test_only_the_owner_or_an_admin_transfers_a_conversation_with_a_person(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)
    url = conv_url(desk_a, handoff.conversation_id, "transfer")

    response = as_user(desk_a.bob).post(url, {"agent_id": desk_a.bob.id}, format="json")

    assert (response.status_code, response.json()) == (
        403,
        error("forbidden", "Alice has this conversation; only they or an admin can do that."),
    )
    assert conversation_state(handoff.conversation_id) == before
    assert as_user(desk_a.admin).post(url, {"agent_id": desk_a.bob.id}, format="json").status_code == 200


# ---- hand back and resolve -----------------------------------------------------------------------------


def test_another_agent_cannot_hand_back_and_nothing_changes(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.bob).post(conv_url(desk_a, handoff.conversation_id, "hand-back"))

    assert (response.status_code, response.json()) == (
        403,
        error("forbidden", "Alice has this conversation; only they or an admin can do that."),
    )
    assert conversation_state(handoff.conversation_id) == before


@pytest.mark.parametrize("who", ["alice", "admin"])
def test_the_owner_or_an_admin_hands_back_to_the_assistant(who, desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)

    response = as_user(getattr(desk_a, who)).post(conv_url(desk_a, handoff.conversation_id, "hand-back"))

    assert (response.status_code, response.json()) == (200, {"status": "assistant"})
    row = Handoff.objects.get(id=handoff.id)
    assert (row.status, row.closed_at is not None) == ("returned", True)
    conversation = Conversation.objects.get(id=handoff.conversation_id)
    assert (conversation.status, conversation.agent_id) == ("assistant", None)
    assert events(handoff.conversation_id)[-1] == ("handoff.returned", {"owner": "assistant"})


def test_handing_back_a_conversation_the_assistant_has_is_a_conflict(desk_a, as_user):
    conversation = chat(desk_a.tenant)
    before = conversation_state(conversation.id)

    response = as_user(desk_a.alice).post(conv_url(desk_a, conversation.id, "hand-back"))

    assert (response.status_code, response.json()) == (
        409,
        error("conflict", "The assistant has this conversation: take it over first."),
    )
    assert conversation_state(conversation.id) == before


def test_the_owner_resolves_and_the_customer_is_asked_to_rate(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    url = conv_url(desk_a, handoff.conversation_id, "resolve")

    response = as_user(desk_a.alice).post(url)

    assert (response.status_code, response.json()) == (200, {"status": "resolved"})
    assert Handoff.objects.get(id=handoff.id).status == "resolved"
    assert events(handoff.conversation_id)[-1] == (
        "conversation.resolved",
        {"owner": "resolved", "csat": True},
    )
    before = conversation_state(handoff.conversation_id)

    again = as_user(desk_a.alice).post(url)

    assert (again.status_code, again.json()) == (
        409,
        error("conflict", "This conversation is resolved already."),
    )
    assert conversation_state(handoff.conversation_id) == before


def test_another_agent_cannot_resolve_a_colleagues_conversation(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.bob).post(conv_url(desk_a, handoff.conversation_id, "resolve"))

    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert conversation_state(handoff.conversation_id) == before


# ---- replies -------------------------------------------------------------------------------------------


def test_a_reply_is_stored_once_per_client_msg_id_and_reaches_the_widgets_events(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    url = conv_url(desk_a, handoff.conversation_id, "replies")
    payload = {"text": "  Hi, I'm looking at your March invoice now.  ", "client_msg_id": "r-1"}

    first = as_user(desk_a.alice).post(url, payload, format="json")
    again = as_user(desk_a.alice).post(url, payload, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    message = Message.objects.get(conversation_id=handoff.conversation_id, role="agent")
    seq = Conversation.objects.get(id=handoff.conversation_id).last_seq
    assert first.json() == {
        "message": {
            "id": str(message.id),
            "role": "agent",
            "text": "Hi, I'm looking at your March invoice now.",
            "created_at": message.created_at.isoformat(),
            "status": "complete",
            "author": "Alice",
            "author_full": "Alice",
        },
        "seq": seq,
    }
    widget = events_rendered(tenant=desk_a.tenant, conversation_id=handoff.conversation_id, after=seq - 1)
    assert [(e["type"], e["message"]["text"], e["message"]["author"]) for e in widget] == [
        ("agent.message", "Hi, I'm looking at your March invoice now.", "Alice")
    ]
    assert Handoff.objects.get(id=handoff.id).first_reply_at is not None


def test_only_the_owner_replies(desk_a, as_user):
    waiting = queued(desk_a.tenant)
    theirs = claimed(desk_a.tenant, desk_a.bob)
    assistant = chat(desk_a.tenant)
    cases = [
        (waiting.conversation_id, "This conversation is waiting in the queue: claim it first."),
        (theirs.conversation_id, "Bob has this conversation."),
        (assistant.id, "The assistant has this conversation: take it over first."),
    ]
    for conversation_id, message in cases:
        before = conversation_state(conversation_id)

        response = as_user(desk_a.alice).post(
            conv_url(desk_a, conversation_id, "replies"),
            {"text": "Hello", "client_msg_id": "r-1"},
            format="json",
        )

        assert (response.status_code, response.json()) == (409, error("conflict", message))
        assert conversation_state(conversation_id) == before


def test_a_message_id_used_by_a_colleague_is_not_theirs_to_resend(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    url = conv_url(desk_a, handoff.conversation_id, "replies")
    as_user(desk_a.alice).post(url, {"text": "First", "client_msg_id": "r-1"}, format="json")
    services.conversation_transfer(
        tenant=desk_a.tenant,
        conversation_id=handoff.conversation_id,
        actor=desk_a.alice,
        to_agent_id=desk_a.bob.id,
    )
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.bob).post(url, {"text": "Second", "client_msg_id": "r-1"}, format="json")

    assert (response.status_code, response.json()) == (
        409,
        error("conflict", "That message id was used by someone else."),
    )
    assert conversation_state(handoff.conversation_id) == before


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"text": "", "client_msg_id": "r-1"}, "The reply is empty."),
        ({"text": " \n\t ", "client_msg_id": "r-1"}, "The reply is empty."),
        (
            {"text": "x" * 4001, "client_msg_id": "r-1"},
            "Replies are limited to 4000 characters; this one has 4001.",
        ),
        ({"text": "Hello"}, "Some fields are invalid."),
        ({"text": "Hello", "client_msg_id": "x" * 57}, "Some fields are invalid."),
    ],
    ids=["empty", "blank", "too-long", "no-id", "long-id"],
)
def test_an_empty_or_too_long_reply_is_refused(payload, message, desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.alice).post(
        conv_url(desk_a, handoff.conversation_id, "replies"), payload, format="json"
    )

    assert (response.status_code, response.json()["code"], response.json()["message"]) == (
        400,
        "bad_request",
        message,
    )
    assert conversation_state(handoff.conversation_id) == before


# ---- notes ---------------------------------------------------------------------------------------------


def test_a_note_is_for_colleagues_and_never_in_the_customers_events(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    last_seq = Conversation.objects.get(id=handoff.conversation_id).last_seq
    text = "Customer is on the legacy Flex plan; check the roaming add-on."

    response = as_user(desk_a.bob).post(
        conv_url(desk_a, handoff.conversation_id, "notes"), {"text": text}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"type", "id", "at", "author", "text"}
    assert (body["type"], body["author"], body["text"]) == ("note", "Bob", text)
    # Nothing was added to the customer's event log, and nothing in it mentions the note.
    assert Conversation.objects.get(id=handoff.conversation_id).last_seq == last_seq
    widget = events_rendered(tenant=desk_a.tenant, conversation_id=handoff.conversation_id, after=0)
    assert "note" not in {e["type"] for e in widget}
    assert "legacy Flex" not in repr(widget)
    timeline = as_user(desk_a.alice).get(conv_url(desk_a, handoff.conversation_id, "timeline")).json()
    assert [item for item in timeline["items"] if item["type"] == "note"] == [body]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The note is empty."),
        ("   ", "The note is empty."),
        ("n" * 4001, "Notes are limited to 4000 characters."),
    ],
)
def test_an_empty_or_too_long_note_is_refused(text, message, desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    before = conversation_state(handoff.conversation_id)

    response = as_user(desk_a.alice).post(
        conv_url(desk_a, handoff.conversation_id, "notes"), {"text": text}, format="json"
    )

    assert (response.status_code, response.json()) == (400, error("bad_request", message))
    assert conversation_state(handoff.conversation_id) == before


# ---- the timeline --------------------------------------------------------------------------------------


PII_TEXT = "Please send the refund confirmation to mary.jones@example.com today."


@pytest.mark.parametrize(
    ("who", "original"),
    [("alice", False), ("admin", True), ("viewer", True)],
    ids=["agent", "admin", "pii_viewer"],
)
def test_the_timeline_redacts_the_customers_words_unless_the_reader_may_see_them(
    who, original, desk_a, as_user
):
    handoff = queued(desk_a.tenant, PII_TEXT)
    customer = Message.objects.get(conversation_id=handoff.conversation_id, role="customer")

    response = as_user(getattr(desk_a, who)).get(conv_url(desk_a, handoff.conversation_id, "timeline"))

    assert response.status_code == 200
    body = response.json()
    conversation = Conversation.objects.get(id=handoff.conversation_id)
    assert body["conversation"] == {
        "id": str(conversation.id),
        "status": "waiting",
        "agent_id": None,
        "agent": "",
        "episode": 1,
        "contact": None,
        "contact_email": "",
    }
    assert without_clock(body["handoff"]) == fresh_summary(handoff)
    assert (body["case_file"], body["tool_runs"], body["last_seq"]) == ({}, [], conversation.last_seq)
    assert body["showing_original_text"] is original
    first = body["items"][0]
    expected: dict[str, Any] = {
        "id": str(customer.id),
        "role": "customer",
        "text": PII_TEXT if original else "Please send the refund confirmation to <EMAIL_ADDRESS> today.",
        "created_at": customer.created_at.isoformat(),
        "client_msg_id": customer.client_msg_id,
    }
    if not original:
        expected["redacted"] = True
    assert (first["type"], first["seq"], first["message"]) == ("message.created", 1, expected)
    assert [item["type"] for item in body["items"]] == [
        "message.created",
        "handoff.requested",
        "handoff.status",
    ]
    if not original:
        assert "mary.jones" not in response.content.decode()


def test_the_timeline_pages_by_seq(desk_a, as_user):
    handoff = claimed(desk_a.tenant, desk_a.alice)
    services.note_add(
        tenant=desk_a.tenant, conversation_id=handoff.conversation_id, author=desk_a.bob, text="Note"
    )
    url = conv_url(desk_a, handoff.conversation_id, "timeline")
    last_seq = Conversation.objects.get(id=handoff.conversation_id).last_seq

    later = as_user(desk_a.alice).get(url, {"after": last_seq - 1}).json()
    bad = as_user(desk_a.alice).get(url, {"after": "soon"})

    # Notes come with the whole timeline only (they have no seq).
    assert [(i["type"], i["seq"]) for i in later["items"]] == [("handoff.claimed", last_seq)]
    assert (bad.status_code, bad.json()) == (400, error("bad_request", "after must be a whole number."))


def test_an_unknown_conversation_has_no_timeline(desk_a, as_user):
    response = as_user(desk_a.alice).get(conv_url(desk_a, uuid.uuid4(), "timeline"))

    assert (response.status_code, response.json()) == (
        404,
        error("not_found", "There is no such conversation."),
    )


# ---- canned responses ----------------------------------------------------------------------------------


def canned_rows(desk_a: Desk) -> list[tuple[str, str, str]]:
    return list(CannedResponse.objects.filter(tenant=desk_a.tenant).values_list("title", "shortcut", "body"))


def test_admins_write_canned_responses_and_agents_read_them(desk_a, as_user):
    url = f"{base(desk_a.tenant)}/canned-responses/"
    payload = {"title": "Refund window", "shortcut": "/Refund", "body": "Refunds take up to 5 business days."}

    created = as_user(desk_a.admin).post(url, payload, format="json")

    assert created.status_code == 201
    row = CannedResponse.objects.get(tenant=desk_a.tenant)
    assert created.json() == {
        "id": str(row.id),
        "title": "Refund window",
        "shortcut": "refund",
        "body": "Refunds take up to 5 business days.",
    }
    listed = as_user(desk_a.alice).get(url)
    assert (listed.status_code, listed.json()) == (200, {"results": [created.json()]})


def test_an_agent_cannot_write_canned_responses(desk_a, as_user):
    row = services.canned_response_save(tenant=desk_a.tenant, title="Hi", shortcut="hi", body="Hello!")
    before = canned_rows(desk_a)
    url = f"{base(desk_a.tenant)}/canned-responses/"
    detail = f"{url}{row.id}/"

    responses = [
        as_user(desk_a.alice).post(url, {"title": "X", "shortcut": "x", "body": "Y"}, format="json"),
        as_user(desk_a.alice).patch(detail, {"body": "Changed"}, format="json"),
        as_user(desk_a.alice).delete(detail),
    ]

    assert [(r.status_code, r.json()) for r in responses] == [(403, FORBIDDEN)] * 3
    assert canned_rows(desk_a) == before


def test_a_taken_shortcut_is_a_conflict(desk_a, as_user):
    services.canned_response_save(tenant=desk_a.tenant, title="Refunds", shortcut="refund", body="Five days.")
    before = canned_rows(desk_a)

    response = as_user(desk_a.admin).post(
        f"{base(desk_a.tenant)}/canned-responses/",
        {"title": "Another", "shortcut": "refund", "body": "Other text."},
        format="json",
    )

    assert (response.status_code, response.json()) == (409, error("conflict", "/refund is taken already."))
    assert canned_rows(desk_a) == before


def test_an_invalid_shortcut_is_refused(desk_a, as_user):
    response = as_user(desk_a.admin).post(
        f"{base(desk_a.tenant)}/canned-responses/",
        {"title": "Spaces", "shortcut": "two words", "body": "Text."},
        format="json",
    )

    assert (response.status_code, response.json()) == (
        400,
        error("bad_request", "Shortcuts are letters, digits, - and _ (up to 40)."),
    )
    assert canned_rows(desk_a) == []


def test_an_admin_edits_part_of_a_canned_response_and_deletes_it(desk_a, as_user):
    row = services.canned_response_save(tenant=desk_a.tenant, title="Hi", shortcut="hi", body="Hello!")
    detail = f"{base(desk_a.tenant)}/canned-responses/{row.id}/"

    edited = as_user(desk_a.admin).patch(detail, {"body": "Hello there!"}, format="json")

    assert (edited.status_code, edited.json()) == (
        200,
        {"id": str(row.id), "title": "Hi", "shortcut": "hi", "body": "Hello there!"},
    )
    deleted = as_user(desk_a.admin).delete(detail)
    assert deleted.status_code == 204
    assert canned_rows(desk_a) == []
    gone = as_user(desk_a.admin).delete(detail)
    assert (gone.status_code, gone.json()) == (404, error("not_found", "There is no such canned response."))


# ---- presence ------------------------------------------------------------------------------------------


def test_an_agent_sets_their_own_status(desk_a, as_user):
    response = as_user(desk_a.alice).post(
        f"{base(desk_a.tenant)}/presence/", {"status": "away"}, format="json"
    )

    assert (response.status_code, response.json()) == (
        200,
        {"user_id": desk_a.alice.id, "status": "away", "capacity": 3},
    )
    assert presence_row(desk_a.tenant, desk_a.alice) == ("away", 0, None)


def test_an_agent_cannot_raise_their_own_capacity(desk_a, as_user):
    response = as_user(desk_a.alice).post(f"{base(desk_a.tenant)}/presence/", {"capacity": 20}, format="json")

    assert (response.status_code, response.json()) == (
        403,
        error("forbidden", "Only an admin can set agents' capacity."),
    )
    assert presence_row(desk_a.tenant, desk_a.alice) is None  # nothing was stored


def test_an_admin_sets_another_agents_capacity(desk_a, as_user):
    response = as_user(desk_a.admin).post(
        f"{base(desk_a.tenant)}/presence/", {"user_id": desk_a.alice.id, "capacity": 5}, format="json"
    )

    assert (response.status_code, response.json()) == (
        200,
        {"user_id": desk_a.alice.id, "status": "online", "capacity": 5},
    )
    assert presence_row(desk_a.tenant, desk_a.alice) == ("online", 0, 5)


def test_an_agent_cannot_change_another_agents_capacity(desk_a, as_user):
    services.presence_set(tenant=desk_a.tenant, user=desk_a.bob, capacity=2)

    response = as_user(desk_a.alice).post(
        f"{base(desk_a.tenant)}/presence/", {"user_id": desk_a.bob.id, "capacity": 9}, format="json"
    )

    assert (response.status_code, response.json()) == (
        403,
        error("forbidden", "Only an admin can change another agent's settings."),
    )
    assert presence_row(desk_a.tenant, desk_a.bob) == ("online", 0, 2)
    assert presence_row(desk_a.tenant, desk_a.alice) is None


def test_an_admin_sets_no_one_elses_status_and_only_agents_of_this_company(desk_a, tenant_b, as_user):
    url = f"{base(desk_a.tenant)}/presence/"
    admin = as_user(desk_a.admin)

    status = admin.post(url, {"user_id": desk_a.alice.id, "status": "offline"}, format="json")
    editor = admin.post(url, {"user_id": desk_a.editor.id, "capacity": 4}, format="json")
    foreign = admin.post(url, {"user_id": tenant_b.agent.id, "capacity": 4}, format="json")
    bounds = admin.post(url, {"user_id": desk_a.alice.id, "capacity": 21}, format="json")

    assert (status.status_code, status.json()) == (400, error("bad_request", "Agents set their own status."))
    assert (editor.status_code, editor.json()) == (404, error("not_found", "There is no such agent."))
    assert (foreign.status_code, foreign.json()) == (404, error("not_found", "There is no such agent."))
    assert (bounds.status_code, bounds.json()["code"]) == (400, "bad_request")
    assert Presence.objects.count() == 0


# ---- tickets -------------------------------------------------------------------------------------------


def test_agents_list_tickets_with_the_email_masked_unless_they_may_see_it(desk_a, as_user):
    ticket = ticket_for(desk_a)
    url = f"{base(desk_a.tenant)}/tickets/"

    agent = as_user(desk_a.alice).get(url)
    admin = as_user(desk_a.admin).get(url, {"status": "open"})
    closed = as_user(desk_a.alice).get(url, {"status": "closed"})
    bogus = as_user(desk_a.alice).get(url, {"status": "lost"})

    row = {
        "number": 1001,
        "conversation_id": str(ticket.conversation_id),
        "email": "m***@example.com",
        "status": "open",
        "customer": "Anonymous visitor",
        "created_at": ticket.created_at.isoformat(),
        "answered_at": None,
    }
    assert (agent.status_code, agent.json()) == (200, {"results": [row]})
    assert admin.json() == {"results": [{**row, "email": "mary@example.com"}]}
    assert closed.json() == {"results": []}
    assert (bogus.status_code, bogus.json()) == (
        400,
        error("bad_request", "Ticket status is open, answered or closed."),
    )


# ---- company settings, rules and teams -----------------------------------------------------------------


DEFAULT_SETTINGS = {
    "timezone": "UTC",
    "hours": {
        "mon": [["09:00", "17:00"]],
        "tue": [["09:00", "17:00"]],
        "wed": [["09:00", "17:00"]],
        "thu": [["09:00", "17:00"]],
        "fri": [["09:00", "17:00"]],
        "sat": [],
        "sun": [],
    },
    "escalate_after_seconds": 300,
    "default_capacity": 3,
}


def settings_row(desk_a: Desk) -> tuple[Any, ...] | None:
    return (
        HandoffSettings.objects.filter(tenant=desk_a.tenant)
        .values_list("timezone", "hours", "escalate_after_seconds", "default_capacity")
        .first()
    )


def test_admins_read_and_change_the_handoff_settings(desk_a, as_user):
    url = f"{base(desk_a.tenant)}/handoff-settings/"

    read = as_user(desk_a.admin).get(url)
    changed = as_user(desk_a.admin).put(
        url,
        {
            "timezone": "Europe/Berlin",
            "hours": {"mon": [["13:00", "17:00"], ["08:00", "12:00"]], "sat": [["10:00", "14:00"]]},
            "escalate_after_seconds": 120,
            "default_capacity": 4,
        },
        format="json",
    )

    assert (read.status_code, read.json()) == (200, DEFAULT_SETTINGS)
    assert changed.status_code == 200
    expected = {
        "timezone": "Europe/Berlin",
        "hours": {
            "mon": [["08:00", "12:00"], ["13:00", "17:00"]],
            "tue": [],
            "wed": [],
            "thu": [],
            "fri": [],
            "sat": [["10:00", "14:00"]],
            "sun": [],
        },
        "escalate_after_seconds": 120,
        "default_capacity": 4,
    }
    assert changed.json() == expected
    assert as_user(desk_a.admin).get(url).json() == expected


def test_agents_cannot_read_or_change_the_handoff_settings(desk_a, as_user):
    url = f"{base(desk_a.tenant)}/handoff-settings/"
    before = settings_row(desk_a)

    read = as_user(desk_a.alice).get(url)
    write = as_user(desk_a.alice).put(url, {"timezone": "Europe/Berlin"}, format="json")

    assert [(r.status_code, r.json()) for r in (read, write)] == [(403, FORBIDDEN)] * 2
    assert settings_row(desk_a) == before


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "'Mars/Olympus_Mons' is not a time zone (try Europe/Berlin)."),
        (
            {"timezone": "Europe/Berlin", "hours": {"mon": [["17:00", "09:00"]]}},
            "mon: 17:00–09:00 ends before it starts.",  # noqa: RUF001 (the service writes an en dash)
        ),
        ({"hours": {"mon": [["9:00", "17:00"]]}}, 'mon: each interval is ["HH:MM", "HH:MM"].'),
        ({"hours": {"someday": []}}, "Hours are given per day: mon, tue, wed, thu, fri, sat, sun."),
        ({"hours": ["09:00", "17:00"]}, "Hours are given per day: mon, tue, wed, thu, fri, sat, sun."),
        ({"hours": {"tue": "09:00-17:00"}}, "tue: a list of [start, end] pairs."),
        ({"escalate_after_seconds": 5}, "Escalate after 30 seconds to 24 hours."),
        ({"default_capacity": 0}, "Capacity goes from 1 to 20 conversations."),
    ],
    ids=["timezone", "backwards", "format", "day", "not-a-dict", "not-a-list", "escalation", "capacity"],
)
def test_invalid_settings_are_refused_with_a_message_and_nothing_changes(payload, message, desk_a, as_user):
    url = f"{base(desk_a.tenant)}/handoff-settings/"
    as_user(desk_a.admin).get(url)  # the row exists with its defaults
    before = settings_row(desk_a)

    response = as_user(desk_a.admin).put(url, payload, format="json")

    assert (response.status_code, response.json()) == (400, error("bad_request", message))
    assert settings_row(desk_a) == before


def rule_rows(desk_a: Desk) -> list[tuple[Any, ...]]:
    return list(
        HandoffRule.objects.filter(tenant=desk_a.tenant).values_list("id", "kind", "value", "priority")
    )


def test_admins_add_list_and_delete_rules(desk_a, tenant_b, as_user):
    team = services.team_create(tenant=desk_a.tenant, name="Billing")
    url = f"{base(desk_a.tenant)}/handoff-rules/"

    created = as_user(desk_a.admin).post(
        url,
        {"kind": "topic", "value": "refund, chargeback", "priority": 2, "team_id": str(team.id)},
        format="json",
    )

    assert created.status_code == 201
    rule = HandoffRule.objects.get(tenant=desk_a.tenant)
    row = {
        "id": str(rule.id),
        "kind": "topic",
        "value": "refund, chargeback",
        "priority": 2,
        "team_id": str(team.id),
        "enabled": True,
    }
    assert created.json() == row
    assert as_user(desk_a.admin).get(url).json() == {"results": [row]}
    deleted = as_user(desk_a.admin).delete(f"{url}{rule.id}/")
    assert deleted.status_code == 204
    again = as_user(desk_a.admin).delete(f"{url}{rule.id}/")
    assert (again.status_code, again.json()) == (404, error("not_found", "There is no such rule."))
    assert rule_rows(desk_a) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"kind": "topic", "value": "refund", "priority": 3}, "Priority goes from 0 (normal) to 2 (urgent)."),
        (
            {"kind": "topic", "value": "   "},
            "Give the rule's words (topic) or tier name, up to 500 characters.",
        ),
        ({"kind": "mood", "value": "angry"}, "Some fields are invalid."),
        ({"kind": "tier", "value": "gold", "team_id": "theirs"}, "There is no such team."),
    ],
    ids=["priority", "blank", "kind", "foreign-team"],
)
def test_invalid_rules_are_refused(payload, message, desk_a, tenant_b, as_user):
    if payload.get("team_id") == "theirs":
        payload = {**payload, "team_id": str(services.team_create(tenant=tenant_b.tenant, name="Theirs").id)}

    response = as_user(desk_a.admin).post(f"{base(desk_a.tenant)}/handoff-rules/", payload, format="json")

    assert (response.status_code, response.json()["code"], response.json()["message"]) == (
        400,
        "bad_request",
        message,
    )
    assert rule_rows(desk_a) == []


def test_agents_cannot_see_or_change_rules(desk_a, as_user):
    rule = services.handoff_rule_create(tenant=desk_a.tenant, kind="tier", value="gold", priority=1)
    before = rule_rows(desk_a)
    url = f"{base(desk_a.tenant)}/handoff-rules/"

    responses = [
        as_user(desk_a.alice).get(url),
        as_user(desk_a.alice).post(url, {"kind": "topic", "value": "refund"}, format="json"),
        as_user(desk_a.alice).delete(f"{url}{rule.id}/"),
    ]

    assert [(r.status_code, r.json()) for r in responses] == [(403, FORBIDDEN)] * 3
    assert rule_rows(desk_a) == before


def test_admins_create_teams_of_their_agents_and_agents_list_them(desk_a, tenant_b, as_user):
    url = f"{base(desk_a.tenant)}/teams/"

    created = as_user(desk_a.admin).post(
        url,
        {
            "name": "Billing",
            "member_ids": [desk_a.alice.id, desk_a.bob.id, desk_a.editor.id, tenant_b.agent.id],
        },
        format="json",
    )

    assert created.status_code == 201
    team = Team.objects.get(tenant=desk_a.tenant)
    assert created.json() == {"id": str(team.id), "name": "Billing"}
    listed = as_user(desk_a.alice).get(url).json()
    assert listed == {
        "results": [{"id": str(team.id), "name": "Billing", "member_ids": listed["results"][0]["member_ids"]}]
    }
    assert sorted(listed["results"][0]["member_ids"]) == sorted([desk_a.alice.id, desk_a.bob.id])
    duplicate = as_user(desk_a.admin).post(url, {"name": "Billing"}, format="json")
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        error("conflict", "There is a team called Billing already."),
    )
    refused = as_user(desk_a.alice).post(url, {"name": "Rogue"}, format="json")
    assert (refused.status_code, refused.json()) == (403, FORBIDDEN)
    assert list(Team.objects.filter(tenant=desk_a.tenant).values_list("name", flat=True)) == ["Billing"]


# ---- CSRF ----------------------------------------------------------------------------------------------


def test_a_session_post_without_the_csrf_token_is_refused(desk_a):
    handoff = queued(desk_a.tenant)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(desk_a.alice)
    url = f"{base(desk_a.tenant)}/handoffs/{handoff.id}/claim/"
    before = conversation_state(handoff.conversation_id)

    refused = client.post(url)

    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert conversation_state(handoff.conversation_id) == before
    token = "a" * 32
    client.cookies["csrftoken"] = token
    assert client.post(url, HTTP_X_CSRFTOKEN=token).status_code == 200


# ---- inbound email -------------------------------------------------------------------------------------

INBOUND = "/api/v1/inbound-email/"
SECRET = "inbound-7f3a9c2e5b"


def inbound_payload(ticket: Ticket, **overrides: str) -> dict[str, str]:
    return {
        "recipient": f"reply+{ticket.reply_token}@localhost",
        "sender": "Mary Jones <Mary@Example.com>",
        "text": "Thanks, the new invoice is right.\n\nOn Mon, 3 Mar 2025, Nimbus wrote:\n> Hello Mary",
        "message_id": "<CAF1234@mail.example.com>",
        **overrides,
    }


def email_rows(ticket: Ticket) -> list[tuple[str, str]]:
    return list(
        Message.objects.filter(conversation_id=ticket.conversation_id, via="email").values_list(
            "text", "client_msg_id"
        )
    )


@pytest.mark.parametrize(
    ("configured", "header"),
    [
        ("", None),
        ("", "Bearer "),
        (SECRET, None),
        (SECRET, "Bearer wrong-secret"),
        (SECRET, f"Basic {SECRET}"),
        (SECRET, f"Bearer {SECRET}x"),
    ],
    ids=["unset", "unset-empty-bearer", "missing", "wrong", "not-bearer", "longer"],
)
def test_inbound_email_without_the_right_bearer_is_401(configured, header, desk_a, settings, api_anonymous):
    settings.INBOUND_EMAIL_SECRET = configured
    ticket = ticket_for(desk_a)
    before = conversation_state(ticket.conversation_id)
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}

    response = api_anonymous.post(INBOUND, inbound_payload(ticket), format="json", **extra)

    assert (response.status_code, response.json()) == (
        401,
        error("unauthorized", "A valid inbound email secret is required."),
    )
    assert conversation_state(ticket.conversation_id) == before


def test_inbound_email_with_the_secret_joins_the_conversation_once(desk_a, settings, api_anonymous):
    settings.INBOUND_EMAIL_SECRET = SECRET
    ticket = ticket_for(desk_a)
    # An agent answered by email and handed the conversation back; the customer's answer goes to a person.
    services.conversation_take_over(
        tenant=desk_a.tenant, conversation_id=ticket.conversation_id, agent=desk_a.alice
    )
    services.conversation_hand_back(
        tenant=desk_a.tenant, conversation_id=ticket.conversation_id, actor=desk_a.alice
    )
    auth = {"HTTP_AUTHORIZATION": f"Bearer {SECRET}"}

    first = api_anonymous.post(INBOUND, inbound_payload(ticket), format="json", **auth)
    again = api_anonymous.post(INBOUND, inbound_payload(ticket), format="json", **auth)

    assert first.status_code == 202
    assert again.json() == first.json()
    message = Message.objects.get(conversation_id=ticket.conversation_id, via="email")
    assert first.json() == {"message_id": str(message.id)}
    assert message.text == "Thanks, the new invoice is right."
    conversation = Conversation.objects.get(id=ticket.conversation_id)
    assert conversation.status == "waiting"
    assert (
        Handoff.objects.get(conversation_id=ticket.conversation_id, status="waiting").reason == "email_reply"
    )


def test_inbound_email_from_another_address_or_to_an_unknown_token_is_refused(
    desk_a, settings, api_anonymous
):
    settings.INBOUND_EMAIL_SECRET = SECRET
    ticket = ticket_for(desk_a)
    before = conversation_state(ticket.conversation_id)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {SECRET}"}

    stranger = api_anonymous.post(
        INBOUND, inbound_payload(ticket, sender="eve@example.com"), format="json", **auth
    )
    unknown = api_anonymous.post(
        INBOUND,
        inbound_payload(ticket, recipient="reply+AAAAAAAAAAAAAAAAAAAA@localhost"),
        format="json",
        **auth,
    )

    assert (stranger.status_code, stranger.json()) == (
        403,
        error("forbidden", "Replies are accepted only from the address the customer left."),
    )
    assert (unknown.status_code, unknown.json()) == (
        404,
        error("not_found", "No conversation has that reply address."),
    )
    assert conversation_state(ticket.conversation_id) == before
    assert email_rows(ticket) == []
