"""Tenant isolation of the human side (issue 6: "An agent of another tenant can neither see nor claim it,
over HTTP or websockets"). Tenant B's staff get 404 for anything of tenant A's, under either company's
address, and nothing of tenant A's changes; tenant B's console can neither watch nor answer tenant A's
conversations and never hears tenant A's queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.conversations.models import Message
from apps.guardrails.pii import pii_redact
from apps.handoff import services
from apps.handoff.models import CannedResponse, Handoff, HandoffRule, Note, Presence, Team
from tests.conftest import channel_layer_forget_loops
from tests.handoff.api_fixtures import (
    CLOSE_TIMEOUT,
    QUIET,
    Desk,
    ask_for_a_person,
    base,
    claimed,
    conversation_state,
    customer,
    desk_of,
    last_seq,
    of_type,
    open_console,
    open_sockets_close,
    queued,
    realtime_state_clear,
    ticket_for,
)

NOT_FOUND = {"code": "not_found", "message": "That doesn't exist, or you can't see it.", "retryable": False}


def error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "retryable": False}


@pytest.fixture
def desk_a(tenant_a: Any, make_user: Any) -> Desk:
    return desk_of(tenant_a, make_user)


# ---- HTTP ----------------------------------------------------------------------------------------------


def attempts(handoff: Handoff, target_agent_id: int, team_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every handoff call on one of tenant A's handoffs (and its conversation): (method, path after the
    company's base, body)."""
    conv = f"conversations/{handoff.conversation_id}"
    return [
        ("get", f"handoffs/{handoff.id}/", {}),
        ("post", f"handoffs/{handoff.id}/claim/", {}),
        ("post", f"handoffs/{handoff.id}/case-file/", {}),
        ("get", f"{conv}/timeline/", {}),
        ("post", f"{conv}/take-over/", {}),
        ("post", f"{conv}/replies/", {"text": "Hello from B", "client_msg_id": "b-1"}),
        ("post", f"{conv}/notes/", {"text": "B was here"}),
        ("post", f"{conv}/transfer/", {"agent_id": target_agent_id}),
        ("post", f"{conv}/transfer/", {"team_id": team_id}),
        ("post", f"{conv}/hand-back/", {}),
        ("post", f"{conv}/resolve/", {}),
    ]


def call(client: Any, method: str, url: str, body: dict[str, Any]) -> Any:
    if method == "get":
        return client.get(url)
    return client.post(url, body, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("held", [False, True], ids=["waiting", "claimed"])
@pytest.mark.parametrize("who", ["agent", "admin"])
def test_tenant_bs_staff_get_404_for_tenant_as_handoff_under_either_address(
    held, who, desk_a, tenant_b, api_client_as
):
    handoff = claimed(desk_a.tenant, desk_a.alice) if held else queued(desk_a.tenant)
    team = services.team_create(tenant=desk_a.tenant, name="Billing")
    before = conversation_state(handoff.conversation_id)
    client = api_client_as(getattr(tenant_b, who))

    for method, path, body in attempts(handoff, tenant_b.agent.id, str(team.id)):
        # Under tenant A's address B's staff are no members; under their own, A's ids do not exist.
        theirs = call(client, method, f"{base(desk_a.tenant)}/{path}", body)
        own = call(client, method, f"{base(tenant_b.tenant)}/{path}", body)

        assert (theirs.status_code, theirs.json()) == (404, NOT_FOUND), (method, path)
        assert own.status_code == 404, (method, path, own.json())
        assert own.json()["code"] == "not_found"
        assert own.json()["message"] in {"There is no such handoff.", "There is no such conversation."}
    assert conversation_state(handoff.conversation_id) == before
    assert Note.objects.count() == 0
    assert Message.objects.filter(role="agent").count() == 0


@pytest.mark.django_db
def test_tenant_bs_queue_never_shows_tenant_as_handoffs_or_agents(desk_a, tenant_b, api_client_as):
    queued(desk_a.tenant)
    claimed(desk_a.tenant, desk_a.alice)
    services.team_create(tenant=desk_a.tenant, name="Billing")
    theirs_waiting = queued(tenant_b.tenant)
    client = api_client_as(tenant_b.agent)

    foreign = client.get(f"{base(desk_a.tenant)}/handoffs/")
    own = client.get(f"{base(tenant_b.tenant)}/handoffs/").json()

    assert (foreign.status_code, foreign.json()) == (404, NOT_FOUND)
    assert [r["id"] for r in own["waiting"]] == [str(theirs_waiting.id)]
    assert (own["mine"], own["others"], own["teams"]) == ([], [], [])
    assert sorted(a["user_id"] for a in own["agents"]) == sorted([tenant_b.admin.id, tenant_b.agent.id])


@pytest.mark.django_db
def test_tenant_bs_staff_cannot_reach_tenant_as_settings_by_id(desk_a, tenant_b, api_client_as):
    canned = services.canned_response_save(tenant=desk_a.tenant, title="Hi", shortcut="hi", body="Hello!")
    rule = services.handoff_rule_create(tenant=desk_a.tenant, kind="tier", value="gold", priority=1)
    team = services.team_create(tenant=desk_a.tenant, name="Billing", member_ids=[desk_a.alice.id])
    theirs = claimed(tenant_b.tenant, tenant_b.agent)
    admin_b = api_client_as(tenant_b.admin)
    own = base(tenant_b.tenant)

    responses = {
        "canned patch": admin_b.patch(f"{own}/canned-responses/{canned.id}/", {"body": "B"}, format="json"),
        "canned delete": admin_b.delete(f"{own}/canned-responses/{canned.id}/"),
        "rule delete": admin_b.delete(f"{own}/handoff-rules/{rule.id}/"),
        "presence": admin_b.post(
            f"{own}/presence/", {"user_id": desk_a.alice.id, "capacity": 9}, format="json"
        ),
        "rule with a's team": admin_b.post(
            f"{own}/handoff-rules/",
            {"kind": "topic", "value": "refund", "team_id": str(team.id)},
            format="json",
        ),
        "transfer to a's agent": admin_b.post(
            f"{own}/conversations/{theirs.conversation_id}/transfer/",
            {"agent_id": desk_a.alice.id},
            format="json",
        ),
        "transfer to a's team": admin_b.post(
            f"{own}/conversations/{theirs.conversation_id}/transfer/",
            {"team_id": str(team.id)},
            format="json",
        ),
    }
    team_b = admin_b.post(f"{own}/teams/", {"name": "B team", "member_ids": [desk_a.alice.id]}, format="json")

    assert {name: (r.status_code, r.json()) for name, r in responses.items()} == {
        "canned patch": (404, error("not_found", "There is no such canned response.")),
        "canned delete": (404, error("not_found", "There is no such canned response.")),
        "rule delete": (404, error("not_found", "There is no such rule.")),
        "presence": (404, error("not_found", "There is no such agent.")),
        "rule with a's team": (400, error("bad_request", "There is no such team.")),
        "transfer to a's agent": (400, error("bad_request", "That person is not an agent of this company.")),
        "transfer to a's team": (400, error("bad_request", "There is no such team.")),
    }
    assert team_b.status_code == 201
    assert list(Team.objects.get(tenant=tenant_b.tenant).members.all()) == []
    assert CannedResponse.objects.get(id=canned.id).body == "Hello!"
    assert HandoffRule.objects.filter(id=rule.id).exists()
    assert HandoffRule.objects.filter(tenant=tenant_b.tenant).count() == 0
    assert Presence.objects.filter(user=desk_a.alice).count() == 0
    assert Handoff.objects.get(id=theirs.id).agent_id == tenant_b.agent.id


@pytest.mark.django_db
def test_tenant_bs_tickets_and_lists_hold_nothing_of_tenant_a(desk_a, tenant_b, api_client_as):
    services.canned_response_save(tenant=desk_a.tenant, title="Hi", shortcut="hi", body="Hello!")
    services.handoff_rule_create(tenant=desk_a.tenant, kind="tier", value="gold", priority=1)
    services.team_create(tenant=desk_a.tenant, name="Billing")
    ticket_for(desk_a)
    admin_b = api_client_as(tenant_b.admin)
    own = base(tenant_b.tenant)

    lists = {
        path: admin_b.get(f"{own}/{path}/").json()["results"]
        for path in ("tickets", "canned-responses", "handoff-rules", "teams")
    }

    assert lists == {"tickets": [], "canned-responses": [], "handoff-rules": [], "teams": []}


# ---- websockets ----------------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def _channel_layer_forgets_the_finished_loop() -> Iterator[None]:
    yield
    channel_layer_forget_loops()


@pytest.fixture(scope="module")
def _pii_analyzer_loaded() -> None:
    pii_redact("warm up")


@pytest.fixture
async def _sockets_closed() -> AsyncIterator[None]:
    yield
    await open_sockets_close()


@pytest.fixture
def _fresh_realtime_state() -> None:
    realtime_state_clear()


# The socket tests' fixtures, in this order: the channel layer forgets the test's event loop after the
# sockets are closed and the loop is gone (see api_fixtures.channel_layer_forget_loops).
socket_fixtures = pytest.mark.usefixtures(
    "_channel_layer_forgets_the_finished_loop",
    "_pii_analyzer_loaded",
    "_sockets_closed",
    "_fresh_realtime_state",
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
@socket_fixtures
async def test_tenant_bs_console_cannot_watch_tenant_as_conversation(desk_a, tenant_b):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    console = await open_console(tenant_b.agent, tenant_b.slug)

    await console.send({"type": "watch", "conversation_id": str(conversation_id), "client_msg_id": "w-1"})

    assert await console.recv() == {
        "type": "error",
        "code": "not_found",
        "message": "There is no such conversation.",
        "retryable": False,
        "client_msg_id": "w-1",
    }
    # Nothing was joined: the customer's next words never reach tenant B.
    await widget.send({"type": "message", "text": "My card is 4111 1111 1111 1111", "client_msg_id": "c-1"})
    await widget.until(lambda f: f["type"] == "message.created")
    assert await console.quiet(QUIET * 2)
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
@socket_fixtures
async def test_tenant_bs_console_cannot_reply_into_tenant_as_conversation(desk_a, tenant_b):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    console = await open_console(tenant_b.agent, tenant_b.slug)
    before = await last_seq(conversation_id)

    await console.send(
        {
            "type": "reply",
            "conversation_id": str(conversation_id),
            "text": "Hi from B",
            "client_msg_id": "r-1",
        }
    )

    assert await console.recv() == {
        "type": "error",
        "code": "not_found",
        "message": "There is no such conversation.",
        "retryable": False,
        "client_msg_id": "r-1",
    }
    assert await last_seq(conversation_id) == before
    assert await database_sync_to_async(Message.objects.filter(role="agent").count)() == 0
    assert await widget.ws.receive_nothing(timeout=QUIET)
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
@socket_fixtures
async def test_tenant_bs_console_never_hears_tenant_as_queue_notes_or_presence(desk_a, tenant_b):
    console_b = await open_console(tenant_b.agent, tenant_b.slug)
    console_a = await open_console(desk_a.alice, desk_a.slug)
    widget, conversation_id = await customer(desk_a.tenant)

    await ask_for_a_person(widget)
    created = await console_a.until(of_type("queue.changed"))
    await database_sync_to_async(services.note_add)(
        tenant=desk_a.tenant, conversation_id=conversation_id, author=desk_a.alice, text="A's private note"
    )
    await console_a.until(of_type("note.added"))
    handoff = await database_sync_to_async(services.handoff_claim)(
        tenant=desk_a.tenant, handoff_id=created["handoff"]["id"], agent=desk_a.alice
    )
    claimed_push = await console_a.until(of_type("queue.changed"))

    assert created["handoff"]["conversation_id"] == str(conversation_id)
    assert (claimed_push["handoff"]["id"], claimed_push["handoff"]["status"]) == (str(handoff.id), "claimed")
    assert await console_b.quiet(QUIET * 2)
    # Tenant B's console heard its own agent come online, and nothing of tenant A (not even alice's).
    assert console_b.received == [
        {"type": "presence.changed", "user_id": tenant_b.agent.id, "status": "online"}
    ]
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console_a.close()
    await console_b.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
@socket_fixtures
async def test_another_companys_conversation_looks_like_a_made_up_one(desk_a, tenant_b):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    console = await open_console(tenant_b.agent, tenant_b.slug)

    await console.send({"type": "watch", "conversation_id": str(conversation_id), "client_msg_id": "w-1"})
    real = await console.recv()
    await console.send({"type": "watch", "conversation_id": str(uuid.uuid4()), "client_msg_id": "w-1"})
    made_up = await console.recv()

    # Whether another company's conversation exists is not B's to learn.
    assert real == made_up
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()
