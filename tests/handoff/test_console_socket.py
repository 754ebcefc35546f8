"""The agent console's websocket (/ws/console/<slug>/) through the real ASGI application: the origin check,
session authentication and routing, presence, watching a conversation a customer writes in through a real
widget socket, replies that reach the widget, and the tenant-wide pushes.

The consumers reach the database from other threads, so these tests commit (`transaction=True`); the
channel layer is the harness's real Valkey.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.accounts.models import Tenant
from apps.conversations import services as conversation_services
from apps.conversations.models import Message
from apps.conversations.selectors import conversation_group
from apps.core import realtime
from apps.guardrails.pii import pii_redact
from apps.handoff import services
from apps.handoff.models import Note, Presence
from tests.conftest import channel_layer_forget_loops
from tests.handoff.api_fixtures import (
    CLOSE_TIMEOUT,
    QUIET,
    REFUSED_CLOSE_TIMEOUT,
    TIMEOUT,
    Desk,
    ask_for_a_person,
    chat,
    claim,
    communicator,
    customer,
    desk_of,
    eventually,
    last_seq,
    load_of,
    of_type,
    open_console,
    open_sockets_close,
    presence_row,
    realtime_state_clear,
    refused,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]

PII_TEXT = "Please change my address to mary.jones@example.com before Friday."
PII_REDACTED = "Please change my address to <EMAIL_ADDRESS> before Friday."


@pytest.fixture
def desk_a(tenant_a: Any, make_user: Any) -> Desk:
    return desk_of(tenant_a, make_user)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _channel_layer_forgets_the_finished_loop() -> Iterator[None]:
    """Set up before `_sockets_closed`, so it runs after the test's event loop is gone."""
    yield
    channel_layer_forget_loops()


@pytest.fixture(scope="module", autouse=True)
def _pii_analyzer_loaded() -> None:
    """The first customer message would load the PII analyzer (seconds): load it before any timeout runs."""
    pii_redact("warm up")


@pytest.fixture(autouse=True)
async def _sockets_closed() -> AsyncIterator[None]:
    yield
    await open_sockets_close()


@pytest.fixture(autouse=True)
def _fresh_realtime_state() -> None:
    realtime_state_clear()


# ---- who may connect -----------------------------------------------------------------------------------


async def test_a_signed_out_visitor_is_closed_with_4401(desk_a):
    assert await refused(None, desk_a.slug) == 4401


async def test_an_agent_of_another_company_is_closed_with_4403(desk_a, tenant_b):
    assert await refused(tenant_b.agent, desk_a.slug) == 4403
    assert await refused(tenant_b.admin, desk_a.slug) == 4403
    assert await database_sync_to_async(Presence.objects.count)() == 0


async def test_an_editor_who_is_not_an_agent_is_closed_with_4403(desk_a):
    assert await refused(desk_a.editor, desk_a.slug) == 4403
    assert await database_sync_to_async(presence_row)(desk_a.tenant, desk_a.editor) is None


async def test_an_unknown_company_is_closed_like_a_foreign_one(desk_a):
    assert await refused(desk_a.alice, "no-such-company") == 4403


async def test_a_cross_site_page_cannot_open_a_console_even_with_a_valid_session(desk_a):
    ws = await communicator(desk_a.alice, desk_a.slug, origin=b"https://evil.example")
    connected, code = await ws.connect(timeout=TIMEOUT)
    await ws.disconnect(timeout=REFUSED_CLOSE_TIMEOUT)
    # Refused in the handshake, before any application code runs.
    assert (connected, code) == (False, 1000)
    assert await database_sync_to_async(presence_row)(desk_a.tenant, desk_a.alice) is None


@pytest.mark.parametrize(
    ("who", "roles"), [("alice", ["agent"]), ("admin", ["admin"]), ("viewer", ["agent", "pii_viewer"])]
)
async def test_an_agent_gets_hello_with_their_roles(who, roles, desk_a):
    user = getattr(desk_a, who)
    console = await open_console(user, desk_a.slug)

    assert console.hello == {"type": "hello", "tenant": "tenant-a", "user_id": user.id, "roles": roles}
    assert console.received == [{"type": "presence.changed", "user_id": user.id, "status": "online"}]
    await console.close()


# ---- presence ------------------------------------------------------------------------------------------


async def test_an_open_console_makes_the_agent_online_and_closing_it_offline(desk_a):
    assert await load_of(desk_a.tenant, desk_a.alice) == ("offline", 0)

    first = await open_console(desk_a.alice, desk_a.slug)

    assert await database_sync_to_async(presence_row)(desk_a.tenant, desk_a.alice) == ("online", 1, None)
    assert await load_of(desk_a.tenant, desk_a.alice) == ("online", 0)
    # A second tab: the agent goes offline only when the last one closes.
    second = await open_console(desk_a.alice, desk_a.slug)

    assert await database_sync_to_async(presence_row)(desk_a.tenant, desk_a.alice) == ("online", 2, None)
    assert await load_of(desk_a.tenant, desk_a.alice) == ("online", 0)
    await first.close()
    await eventually(lambda: presence_row(desk_a.tenant, desk_a.alice), ("online", 1, None))
    assert await load_of(desk_a.tenant, desk_a.alice) == ("online", 0)
    await second.close()
    await eventually(lambda: presence_row(desk_a.tenant, desk_a.alice), ("online", 0, None))
    assert await load_of(desk_a.tenant, desk_a.alice) == ("offline", 0)


async def test_colleagues_see_an_agent_come_online_and_choose_away(desk_a):
    bob = await open_console(desk_a.bob, desk_a.slug)
    alice = await open_console(desk_a.alice, desk_a.slug)

    assert await bob.until(of_type("presence.changed", user_id=desk_a.alice.id)) == {
        "type": "presence.changed",
        "user_id": desk_a.alice.id,
        "status": "online",
    }
    await alice.send({"type": "presence", "status": "away", "client_msg_id": "p-1"})

    assert await alice.until(of_type("presence.set")) == {
        "type": "presence.set",
        "status": "away",
        "client_msg_id": "p-1",
    }
    assert await bob.until(of_type("presence.changed", user_id=desk_a.alice.id)) == {
        "type": "presence.changed",
        "user_id": desk_a.alice.id,
        "status": "away",
    }
    assert await load_of(desk_a.tenant, desk_a.alice) == ("away", 0)
    await alice.close()
    await bob.close()


async def test_ping_gets_pong_and_keeps_the_agent_seen(desk_a):
    console = await open_console(desk_a.alice, desk_a.slug)
    await database_sync_to_async(Presence.objects.filter(user=desk_a.alice).update)(last_seen_at=None)

    await console.send({"type": "ping", "client_msg_id": "k-1"})
    assert await console.recv() == {"type": "pong", "client_msg_id": "k-1"}
    await console.send({"type": "ping"})
    assert await console.recv() == {"type": "pong"}

    seen = await database_sync_to_async(lambda: Presence.objects.get(user=desk_a.alice).last_seen_at)()
    assert seen is not None
    await console.close()


@pytest.mark.parametrize("frame", ["ping", "watch", "reply", "presence"])
@pytest.mark.parametrize("change", ["removed", "now an editor"])
async def test_an_agent_removed_from_the_company_loses_the_console_at_their_next_frame(change, frame, desk_a):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    await claim(desk_a.tenant, conversation_id, desk_a.alice)
    console = await open_console(desk_a.alice, desk_a.slug)
    memberships = desk_a.alice.memberships.all()
    if change == "removed":
        await database_sync_to_async(memberships.delete)()
    else:
        await database_sync_to_async(memberships.update)(role="editor")
    before = await last_seq(conversation_id)
    frames = {
        "ping": {"type": "ping"},
        "watch": {"type": "watch", "conversation_id": str(conversation_id)},
        "reply": {"type": "reply", "conversation_id": str(conversation_id), "text": "Still here?"},
        "presence": {"type": "presence", "status": "away"},
    }

    await console.send({**frames[frame], "client_msg_id": "f-1"})

    # Closed without an answer, and nothing was read or written for them.
    assert await console.ws.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}
    assert await last_seq(conversation_id) == before
    assert await database_sync_to_async(presence_row)(desk_a.tenant, desk_a.alice) == ("online", 1, None)
    await console.close()
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)


@pytest.mark.parametrize("push", ["note", "timeline", "delta"])
@pytest.mark.parametrize("change", ["removed", "now an editor", "company deactivated"])
async def test_an_agent_who_lost_access_gets_no_further_push_and_is_closed_with_4403(
    change, push, desk_a, monkeypatch
):
    # No cached access: the push right after the change already sees it (the window has its own test).
    monkeypatch.setattr(realtime, "STAFF_RECHECK_SECONDS", 0.0)
    # With the assistant, so the customer's words go to the conversation's group and to no staff stream.
    conversation = await database_sync_to_async(chat)(desk_a.tenant, "Is my order on its way?")
    console = await open_console(desk_a.alice, desk_a.slug)
    await console.send({"type": "watch", "conversation_id": str(conversation.id)})
    await console.until(of_type("watching"))
    memberships = desk_a.alice.memberships.all()
    if change == "removed":
        await database_sync_to_async(memberships.delete)()
    elif change == "now an editor":
        await database_sync_to_async(memberships.update)(role="editor")
    else:
        await database_sync_to_async(Tenant.objects.filter(id=desk_a.tenant.id).update)(is_active=False)

    if push == "note":
        await database_sync_to_async(services.note_add)(
            tenant=desk_a.tenant, conversation_id=conversation.id, author=desk_a.bob, text="VIP: be quick."
        )
    elif push == "timeline":
        await database_sync_to_async(conversation_services.message_receive)(
            tenant=desk_a.tenant,
            claims=conversation.session.claims,
            client_msg_id=uuid.uuid4().hex,
            text="Hello again?",
        )
    else:
        layer = get_channel_layer()
        assert layer is not None
        await layer.group_send(
            conversation_group(desk_a.tenant.id, conversation.id),
            {
                "type": "conv.delta",
                "payload": {"type": "assistant.delta", "message_id": "m-1", "offset": 0, "text": "Yes"},
            },
        )

    assert await console.ws.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}
    assert await console.quiet()
    await console.close()


async def test_a_watched_conversation_is_relayed_while_the_agent_keeps_access(desk_a, monkeypatch):
    """The re-check lets through what it should: someone still an agent keeps getting every kind of push."""
    monkeypatch.setattr(realtime, "STAFF_RECHECK_SECONDS", 0.0)
    conversation = await database_sync_to_async(chat)(desk_a.tenant, "Is my order on its way?")
    console = await open_console(desk_a.alice, desk_a.slug)
    await console.send({"type": "watch", "conversation_id": str(conversation.id)})
    await console.until(of_type("watching"))

    await database_sync_to_async(services.note_add)(
        tenant=desk_a.tenant, conversation_id=conversation.id, author=desk_a.bob, text="VIP: be quick."
    )
    await database_sync_to_async(conversation_services.message_receive)(
        tenant=desk_a.tenant,
        claims=conversation.session.claims,
        client_msg_id=uuid.uuid4().hex,
        text="Hello again?",
    )
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(
        conversation_group(desk_a.tenant.id, conversation.id),
        {
            "type": "conv.delta",
            "payload": {"type": "assistant.delta", "message_id": "m-1", "offset": 0, "text": "Yes"},
        },
    )

    assert (await console.until(of_type("note.added")))["note"]["text"] == "VIP: be quick."
    timeline = await console.until(of_type("timeline"))
    assert [item["message"]["text"] for item in timeline["items"]] == ["Hello again?"]
    assert await console.until(of_type("assistant.delta")) == {
        "type": "assistant.delta",
        "message_id": "m-1",
        "offset": 0,
        "text": "Yes",
        "conversation_id": str(conversation.id),
    }
    await console.close()


# ---- watching a conversation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "original"), [("alice", False), ("viewer", True)], ids=["agent", "pii_viewer"]
)
async def test_a_watched_conversation_streams_the_customers_words_as_the_reader_may_see_them(
    who, original, desk_a
):
    agent = getattr(desk_a, who)
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    await claim(desk_a.tenant, conversation_id, agent)
    console = await open_console(agent, desk_a.slug)

    await console.send({"type": "watch", "conversation_id": str(conversation_id), "client_msg_id": "w-1"})

    seq = await last_seq(conversation_id)
    assert await console.until(of_type("watching")) == {
        "type": "watching",
        "conversation_id": str(conversation_id),
        "last_seq": seq,
        "client_msg_id": "w-1",
    }
    await widget.send({"type": "message", "text": PII_TEXT, "client_msg_id": "c-1"})
    timeline = await console.until(of_type("timeline"))

    message = await database_sync_to_async(Message.objects.get)(
        conversation_id=conversation_id, role="customer"
    )
    expected = {
        "id": str(message.id),
        "role": "customer",
        "text": PII_TEXT if original else PII_REDACTED,
        "created_at": message.created_at.isoformat(),
        "client_msg_id": "c-1",
    }
    if not original:
        expected["redacted"] = True
    assert timeline == {
        "type": "timeline",
        "conversation_id": str(conversation_id),
        "items": [
            {"type": "message.created", "seq": seq + 1, "at": timeline["items"][0]["at"], "message": expected}
        ],
    }
    if not original:
        assert "mary.jones" not in json.dumps(console.received)
    # The console was also told that a conversation with a person has news.
    assert await console.until(of_type("conversation.activity")) == {
        "type": "conversation.activity",
        "conversation_id": str(conversation_id),
        "seq": seq + 1,
        "status": "human",
        "agent_id": agent.id,
    }
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


async def test_after_unwatch_the_conversation_is_quiet(desk_a):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    console = await open_console(desk_a.alice, desk_a.slug)
    await console.send({"type": "watch", "conversation_id": str(conversation_id)})
    await console.until(of_type("watching"))

    await console.send({"type": "unwatch", "client_msg_id": "u-1"})
    assert await console.until(of_type("unwatched")) == {"type": "unwatched", "client_msg_id": "u-1"}
    await widget.send({"type": "message", "text": "Anyone there?"})
    await console.until(of_type("conversation.activity"))

    assert await console.quiet()
    assert [f["type"] for f in console.received if f["type"] == "timeline"] == []
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


async def test_watching_an_unknown_conversation_is_not_found(desk_a):
    console = await open_console(desk_a.alice, desk_a.slug)
    unknown = uuid.uuid4()

    await console.send({"type": "watch", "conversation_id": str(unknown), "client_msg_id": "w-1"})

    assert await console.recv() == {
        "type": "error",
        "code": "not_found",
        "message": "There is no such conversation.",
        "retryable": False,
        "client_msg_id": "w-1",
    }
    await console.close()


# ---- replies -------------------------------------------------------------------------------------------


async def test_a_reply_is_acknowledged_and_the_customer_sees_it_with_the_agents_first_name(desk_a):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    await claim(desk_a.tenant, conversation_id, desk_a.alice)
    console = await open_console(desk_a.alice, desk_a.slug)
    frame = {
        "type": "reply",
        "conversation_id": str(conversation_id),
        "text": "Hi, I'm Alice. I've changed it for you.",
        "client_msg_id": "r-1",
    }

    await console.send(frame)
    ack = await console.until(of_type("ack"))
    shown = await widget.until(lambda f: f["type"] == "agent.message")

    message = await database_sync_to_async(Message.objects.get)(conversation_id=conversation_id, role="agent")
    assert ack == {
        "type": "ack",
        "seq": await last_seq(conversation_id),
        "message_id": str(message.id),
        "client_msg_id": "r-1",
    }
    assert shown == {
        "type": "agent.message",
        "seq": ack["seq"],
        "at": shown["at"],
        "message": {
            "id": str(message.id),
            "role": "agent",
            "text": "Hi, I'm Alice. I've changed it for you.",
            "created_at": message.created_at.isoformat(),
            "status": "complete",
            "author": "Alice",
        },
    }
    # Sent again (a reconnect), the same reply is acknowledged again and stored once.
    await console.send(frame)
    assert await console.until(of_type("ack")) == ack
    assert (
        await database_sync_to_async(
            Message.objects.filter(conversation_id=conversation_id, role="agent").count
        )()
        == 1
    )
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


async def test_a_reply_to_a_conversation_the_agent_does_not_hold_is_a_conflict(desk_a):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    await claim(desk_a.tenant, conversation_id, desk_a.bob)
    console = await open_console(desk_a.alice, desk_a.slug)
    before = await last_seq(conversation_id)

    await console.send(
        {
            "type": "reply",
            "conversation_id": str(conversation_id),
            "text": "Let me help.",
            "client_msg_id": "r-1",
        }
    )

    assert await console.until(of_type("error")) == {
        "type": "error",
        "code": "conflict",
        "message": "Bob has this conversation.",
        "retryable": False,
        "client_msg_id": "r-1",
    }
    assert await last_seq(conversation_id) == before
    assert await database_sync_to_async(Message.objects.filter(role="agent").count)() == 0
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


async def test_an_empty_or_too_long_reply_is_refused(desk_a):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    await claim(desk_a.tenant, conversation_id, desk_a.alice)
    console = await open_console(desk_a.alice, desk_a.slug)
    before = await last_seq(conversation_id)

    await console.send(
        {"type": "reply", "conversation_id": str(conversation_id), "text": "   ", "client_msg_id": "r-1"}
    )
    blank = await console.until(of_type("error"))
    await console.send(
        {"type": "reply", "conversation_id": str(conversation_id), "text": "x" * 4001, "client_msg_id": "r-2"}
    )
    long = await console.until(of_type("error"))

    assert (blank["code"], blank["message"], blank["client_msg_id"]) == (
        "bad_request",
        "The reply is empty.",
        "r-1",
    )
    assert (long["code"], long["message"], long["client_msg_id"]) == (
        "bad_request",
        "Replies are limited to 4000 characters; this one has 4001.",
        "r-2",
    )
    assert await last_seq(conversation_id) == before
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


# ---- tenant-wide pushes --------------------------------------------------------------------------------


async def test_the_queue_changes_are_pushed_when_a_handoff_is_created_and_claimed(desk_a):
    console = await open_console(desk_a.alice, desk_a.slug)
    widget, conversation_id = await customer(desk_a.tenant)

    await ask_for_a_person(widget)
    created = await console.until(of_type("queue.changed"))
    handoff = await claim(desk_a.tenant, conversation_id, desk_a.bob)
    claimed = await console.until(of_type("queue.changed"))

    assert set(created) == {"type", "handoff"}
    row = created["handoff"]
    assert (row["id"], row["conversation_id"], row["status"], row["reason"], row["agent_id"]) == (
        str(handoff.id),
        str(conversation_id),
        "waiting",
        "customer_request",
        None,
    )
    row = claimed["handoff"]
    assert (row["id"], row["status"], row["conversation_status"], row["agent_id"], row["agent"]) == (
        str(handoff.id),
        "claimed",
        "human",
        desk_a.bob.id,
        "Bob",
    )
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


async def test_a_note_is_pushed_to_colleagues_and_never_to_the_customer(desk_a):
    widget, conversation_id = await customer(desk_a.tenant)
    await ask_for_a_person(widget)
    console = await open_console(desk_a.bob, desk_a.slug)

    note = await database_sync_to_async(services.note_add)(
        tenant=desk_a.tenant, conversation_id=conversation_id, author=desk_a.alice, text="VIP: be quick."
    )
    pushed = await console.until(of_type("note.added"))

    assert pushed == {
        "type": "note.added",
        "conversation_id": str(conversation_id),
        "note": {
            "type": "note",
            "id": str(note.id),
            "at": note.created_at.isoformat(),
            "author": "Alice",
            "text": "VIP: be quick.",
        },
    }
    assert await widget.ws.receive_nothing(timeout=QUIET)
    assert "VIP" not in json.dumps(widget.received)
    assert await database_sync_to_async(Note.objects.count)() == 1
    await widget.ws.disconnect(timeout=CLOSE_TIMEOUT)
    await console.close()


# ---- malformed frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "client_msg_id"),
    [
        ("{not json", "Frames must be JSON objects.", None),
        (
            json.dumps({"type": "subscribe", "client_msg_id": "m-1"}),
            "Invalid frame: frame: Input tag 'subscribe' found using 'type' does not match any of the "
            "expected tags: 'ping', 'watch', 'unwatch', 'reply', 'presence'",
            "m-1",
        ),
        (
            json.dumps({"type": "watch", "conversation_id": "nope", "client_msg_id": "m-2"}),
            "Invalid frame: watch.conversation_id: Input should be a valid UUID, invalid character: "
            "found `n` at 0",
            "m-2",
        ),
        (
            json.dumps({"type": "reply", "conversation_id": str(uuid.UUID(int=1)), "client_msg_id": "m-3"}),
            "Invalid frame: reply.text: Field required",
            "m-3",
        ),
        (
            json.dumps({"type": "presence", "status": "busy", "client_msg_id": "m-4"}),
            "Invalid frame: presence.status: Input should be 'online', 'away' or 'offline'",
            "m-4",
        ),
        (
            json.dumps({"type": "ping", "client_msg_id": "m-5", "extra": 1}),
            "Invalid frame: ping.extra: Extra inputs are not permitted",
            "m-5",
        ),
        (
            json.dumps(["ping"]),
            "Invalid frame: frame: Input should be a valid dictionary or object to extract fields from",
            None,
        ),
    ],
    ids=["not-json", "unknown-type", "bad-uuid", "no-text", "bad-status", "extra-field", "not-an-object"],
)
async def test_malformed_frames_get_bad_request_and_the_console_stays_open(
    text, message, client_msg_id, desk_a
):
    console = await open_console(desk_a.alice, desk_a.slug)

    await console.ws.send_to(text_data=text)
    frame = await console.recv()

    expected = {"type": "error", "code": "bad_request", "message": message, "retryable": False}
    if client_msg_id is not None:
        expected["client_msg_id"] = client_msg_id
    assert frame == expected
    await console.send({"type": "ping", "client_msg_id": "still-open"})
    assert await console.recv() == {"type": "pong", "client_msg_id": "still-open"}
    await console.close()


async def test_a_binary_frame_closes_the_console_with_1008(desk_a):
    console = await open_console(desk_a.alice, desk_a.slug)

    await console.ws.send_to(bytes_data=b'{"type": "ping"}')

    assert (await console.recv())["code"] == "bad_request"
    assert await console.ws.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 1008}
    await console.close()
