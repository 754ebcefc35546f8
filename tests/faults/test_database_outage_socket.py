"""A widget socket while PostgreSQL restarts (fast shutdown, then a crash), spoken to by a plain websocket
client against the real Daphne: the socket is told `temporarily_unavailable` and closed with 1013 (try
again later) instead of failing; /healthz says 503 with Retry-After meanwhile; every acknowledged message is
stored exactly once, whatever was sent again after the restart (CONTRACTS §2 I1, §3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from apps.conversations import services
from apps.conversations.models import Message
from tests.faults.stack import FaultStack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORIGIN = "https://shop.outage.example"


def open_socket(stack: FaultStack, key: str) -> ClientConnection:
    url = stack.url.replace("http://", "ws://") + f"/ws/widget/?key={key}"
    return connect(url, origin=Origin(ORIGIN), open_timeout=15)


def frames_until_closed(ws: ClientConnection, timeout: float = 15) -> tuple[list[dict[str, Any]], int | None]:
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(json.loads(ws.recv(timeout=timeout)))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd else None


def hello(ws: ClientConnection, token: str, last_seq: int = 0) -> dict[str, Any]:
    ws.send(json.dumps({"type": "hello", "token": token, "last_seq": last_seq, "client_msg_id": "h"}))
    while True:
        frame = json.loads(ws.recv(timeout=15))
        if frame["type"] == "welcome":
            return frame


def send_message(ws: ClientConnection, text: str, client_msg_id: str) -> dict[str, Any]:
    ws.send(json.dumps({"type": "message", "text": text, "client_msg_id": client_msg_id}))
    while True:
        frame = json.loads(ws.recv(timeout=15))
        if frame.get("client_msg_id") == client_msg_id:
            return frame


TRY_LATER = {
    "type": "error",
    "code": "temporarily_unavailable",
    "message": "The desk is briefly unavailable. Reconnecting in a few seconds.",
    "retryable": True,
}


@pytest.mark.parametrize("kill", [False, True], ids=["fast-shutdown", "sigkill"])
def test_sockets_are_told_to_come_back_while_postgres_restarts_and_nothing_acknowledged_is_lost(
    fault_db: FaultStack, fault_llm_reset, make_tenant, kill: bool
):
    stack = fault_db
    fault_llm_reset.reply_text = "Noted."
    tenant = make_tenant(origins=[ORIGIN])
    session = services.widget_session_open(tenant=tenant, token=None, claim=None)

    ws = open_socket(stack, tenant.widget_key)
    hello(ws, session.token)
    first = send_message(ws, "My router blinks red.", "m1")
    assert first["type"] == "ack", first

    stack.postgres_stop(kill=kill)
    try:
        down = stack.health_until(lambda h: h.status == 503 and h.part("database") == "down", timeout=20)
        assert (down.status, down.retry_after, down.part("database")) == (503, "5", "down"), down
        assert down.part("redis") == "ok"

        # A new socket: the widget key cannot be checked, so it is told to come back.
        frames, code = frames_until_closed(open_socket(stack, tenant.widget_key))
        assert frames == [TRY_LATER]
        assert code == 1013

        # The open socket: a message the database cannot take is not acknowledged, and the socket is
        # closed the same way, so the client keeps the message in its outbox and sends it again.
        ws.send(json.dumps({"type": "message", "text": "Still blinking.", "client_msg_id": "m2"}))
        frames, code = frames_until_closed(ws)
        assert [f for f in frames if f.get("type") == "ack"] == []
        assert frames[-1:] == [TRY_LATER], frames
        assert code == 1013
    finally:
        stack.postgres_start()

    up = stack.health_until(lambda h: h.part("database") == "ok", timeout=30)
    assert up.part("database") == "ok", up
    ws = open_socket(stack, tenant.widget_key)
    hello(ws, session.token, last_seq=first["seq"])
    # The client sends its whole outbox again: the unacknowledged message, and (acknowledged, but the
    # client cannot know the ack was not lost) the first one once more.
    second = send_message(ws, "Still blinking.", "m2")
    again = send_message(ws, "My router blinks red.", "m1")
    ws.close()
    assert second["type"] == "ack", second
    assert (again["type"], again["message_id"], again["seq"]) == ("ack", first["message_id"], first["seq"])

    stored = Message.objects.filter(tenant=tenant, role=Message.Role.CUSTOMER).order_by("created_at")
    assert [(m.client_msg_id, m.text) for m in stored] == [
        ("m1", "My router blinks red."),
        ("m2", "Still blinking."),
    ]
