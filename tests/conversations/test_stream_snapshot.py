"""The snapshot of a reply being written (its partial text in Redis) is offered to a client catching up only
while the reply is still streaming (issue 14): every final state deletes it when its transaction commits,
and the catch-up read (`GET /events`, a socket's `hello`) checks the database, the truth, before offering
what Redis holds.

"Another process" is a ReplyStream this test drives and never closes: the deletes under test are the
transitions' own, not the writer's clean-up."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role
from apps.conversations import services
from apps.conversations.identity import session_token_read
from apps.conversations.models import Conversation, Message
from apps.conversations.services import ReplyOutcome
from apps.conversations.stream import PARTIAL_TTL_SECONDS, ReplyStream, partial_key, streaming_key
from apps.core.redis import state_redis
from apps.handoff.services import conversation_take_over
from tests.conversations.conftest import ORIGIN, session_for, widget_connect

pytestmark = [pytest.mark.django_db(transaction=True)]

SHOWN = "Roaming in the European Union is "


@pytest.fixture
def tenant(make_tenant: Any) -> Any:
    """A company without knowledge: these replies are written by the test, not answered."""
    return make_tenant(name="Nimbus Telecom", origins=[ORIGIN])


def _streaming_reply(tenant: Any) -> tuple[services.WidgetSession, Message]:
    """A customer question and the assistant's reply to it, streaming."""
    session = session_for(tenant)
    claims = session_token_read(session.token, tenant=tenant)
    assert claims is not None
    services.message_receive(tenant=tenant, claims=claims, client_msg_id="q1", text="Is roaming free?")
    reply = services.reply_start(conversation_id=session.claims.conversation_id, turn=1)
    assert reply is not None
    return session, reply


def _write(reply: Message, text: str) -> ReplyStream:
    """The other process's writer: opens the snapshot and pushes `text` to it (and to the sockets)."""

    async def write() -> ReplyStream:
        stream = ReplyStream(message=reply)
        await stream.open()
        await stream.append(text)
        await stream.flush()
        return stream

    return async_to_sync(write)()


def _keys(reply: Message) -> tuple[Any, Any]:
    client = state_redis()
    return (
        client.get(streaming_key(reply.tenant_id, reply.conversation_id)),
        client.get(partial_key(reply.tenant_id, reply.conversation_id, reply.id)),
    )


def _catch_up(session: services.WidgetSession) -> dict[str, Any]:
    response = Client().get(
        "/api/widget/v1/events?after=0",
        headers={"Authorization": f"Bearer {session.token}", "Origin": ORIGIN},
    )
    assert response.status_code == 200
    return response.json()


def test_while_a_reply_streams_a_client_catching_up_gets_its_text_so_far(tenant):
    session, reply = _streaming_reply(tenant)
    _write(reply, SHOWN)
    assert _keys(reply) == (str(reply.id).encode(), SHOWN.encode())
    assert _catch_up(session)["snapshot"] == {
        "type": "assistant.snapshot",
        "message_id": str(reply.id),
        "text": SHOWN,
    }


def test_a_takeover_deletes_the_snapshot_when_it_commits_and_catching_up_shows_the_interrupted_reply(
    tenant, make_user
):
    session, reply = _streaming_reply(tenant)
    writer = _write(reply, SHOWN)
    agent = make_user(tenant, roles=[Role.AGENT])
    conversation_take_over(tenant=tenant, conversation_id=reply.conversation_id, agent=agent)
    # The writer runs elsewhere and has not noticed yet: the transition's commit alone removed both keys.
    assert _keys(reply) == (None, None)
    stored = Message.objects.get(id=reply.id)
    assert (stored.status, stored.text) == ("interrupted", SHOWN)  # what the customer had seen is kept
    caught_up = _catch_up(session)
    assert caught_up["snapshot"] is None
    interrupted = [e for e in caught_up["events"] if e["type"] == "assistant.interrupted"]
    assert [(e["message"]["id"], e["message"]["text"]) for e in interrupted] == [(str(reply.id), SHOWN)]
    # A piece the writer pushes before it notices recreates the text key, with an expiry, never the pointer:
    # nobody is offered it.
    async_to_sync(writer.append)("free.")
    async_to_sync(writer.flush)()
    pointer, text = _keys(reply)
    assert (pointer, text) == (None, b"free.")
    assert (
        0
        < state_redis().ttl(partial_key(reply.tenant_id, reply.conversation_id, reply.id))
        <= (PARTIAL_TTL_SECONDS)
    )
    assert _catch_up(session)["snapshot"] is None


@pytest.mark.parametrize(
    ("outcome", "stored"),
    [
        ("complete", "complete"),
        ("failed", "failed"),
        ("interrupted", "interrupted"),
        ("superseded", "superseded"),
    ],
)
def test_every_final_state_of_a_reply_deletes_its_snapshot_when_it_commits(tenant, outcome, stored):
    session, reply = _streaming_reply(tenant)
    _write(reply, SHOWN)
    if outcome == "superseded":
        # The customer wrote again meanwhile: a complete answer to the old turn is stored as superseded.
        Conversation.objects.filter(id=reply.conversation_id).update(turn=2)
        outcome = "complete"
    final = services.reply_finish(message=reply, outcome=ReplyOutcome(status=outcome, text=SHOWN + "free."))
    assert final.status == stored
    assert _keys(reply) == (None, None)
    assert _catch_up(session)["snapshot"] is None


def test_a_reply_whose_writer_died_loses_its_snapshot_when_it_is_swept(tenant, settings):
    session, reply = _streaming_reply(tenant)
    _write(reply, SHOWN)
    # The writer's process died a minute ago: it neither finished the reply nor cleaned its keys.
    Message.objects.filter(id=reply.id).update(heartbeat_at=timezone.now() - datetime.timedelta(seconds=60))
    caught_up = _catch_up(session)  # sweeps the conversation's stale replies first
    assert caught_up["snapshot"] is None
    assert [e["type"] for e in caught_up["events"]][-1] == "assistant.interrupted"
    assert Message.objects.get(id=reply.id).status == "interrupted"
    assert _keys(reply) == (None, None)


def test_a_snapshot_left_behind_is_not_offered_once_the_database_says_the_reply_is_over(tenant):
    """A delete that never reached Redis (an outage at the commit) leaves both keys: the database decides."""
    session, reply = _streaming_reply(tenant)
    _write(reply, SHOWN)
    Message.objects.filter(id=reply.id).update(status=Message.Status.INTERRUPTED, heartbeat_at=None)
    assert _keys(reply) == (str(reply.id).encode(), SHOWN.encode())  # still there
    assert _catch_up(session)["snapshot"] is None

    async def hello() -> list[dict[str, Any]]:
        widget, _ = await widget_connect(tenant, token=session.token)
        await widget.send({"type": "ping", "client_msg_id": "after-replay"})
        await widget.until(lambda f: f["type"] == "pong")
        await widget.close()
        return widget.received

    frames = async_to_sync(hello)()
    assert [f["type"] for f in frames] == ["welcome", "message.created", "assistant.started", "pong"]


@pytest.mark.anyio
async def test_a_takeover_while_the_assistant_streams_through_the_socket_leaves_no_snapshot(
    kb_tenant, fake_llm, make_user
):
    """End to end: the reply is written in this process for a real socket, and an agent takes over."""
    from tests.conversations.conftest import aanswers_configure, asession_for, model_composes

    await aanswers_configure(kb_tenant, style="compose")
    model_composes(fake_llm, "Roaming in the European Union is at no extra charge. " * 4)
    fake_llm.token_delay = 0.2  # still writing when the agent takes over
    session = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=session.token)
    await widget.send({"type": "message", "text": "Is roaming in the European Union free?"})
    started = await widget.until(lambda f: f["type"] == "assistant.delta")
    reply = await Message.objects.aget(id=started["message_id"])
    assert (await database_sync_to_async(_keys)(reply))[0] == str(reply.id).encode()
    agent = await database_sync_to_async(make_user)(kb_tenant, roles=[Role.AGENT])
    await database_sync_to_async(conversation_take_over)(
        tenant=kb_tenant, conversation_id=reply.conversation_id, agent=agent
    )
    interrupted = await widget.until(lambda f: f["type"] == "assistant.interrupted")
    assert interrupted["message"]["id"] == str(reply.id)
    # Gone from the takeover's commit on (the writer may still flush a last piece into the text key
    # while it stops: it deletes that itself once it has).
    assert (await database_sync_to_async(_keys)(reply))[0] is None
    assert (await database_sync_to_async(_catch_up)(session))["snapshot"] is None
    for _ in range(50):
        if await database_sync_to_async(_keys)(reply) == (None, None):
            break
        await asyncio.sleep(0.1)
    assert await database_sync_to_async(_keys)(reply) == (None, None)
    assert (await Message.objects.aget(id=reply.id)).status == "interrupted"
    await widget.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_writer_waiting_in_silence_keeps_beating_so_a_catch_up_never_takes_it_for_dead(
    tenant, settings, monkeypatch
):
    """Waiting for the model's first token writes nothing; the reply is alive all the same. A reconnect
    (which sweeps stale replies) during a silence longer than ASSISTANT_STALE_SECONDS must not mark it
    interrupted."""
    from apps.conversations import stream as stream_module

    settings.ASSISTANT_STALE_SECONDS = 1
    monkeypatch.setattr(stream_module, "KEEPALIVE_SECONDS", 0.2)
    _session, reply = _streaming_reply(tenant)

    async def silent_writer() -> list[str]:
        writer = ReplyStream(message=reply)
        await writer.open()
        await writer.append(SHOWN)
        await asyncio.sleep(2.5)  # nothing written for longer than a process may stay silent
        statuses = []
        for _ in range(2):
            await database_sync_to_async(services.replies_sweep_stale)(conversation_id=reply.conversation_id)
            statuses.append((await Message.objects.aget(id=reply.id)).status)
        await writer.close()
        return statuses

    assert async_to_sync(silent_writer)() == ["streaming", "streaming"]
