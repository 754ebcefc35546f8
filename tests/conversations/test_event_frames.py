"""The frame check of tests/event_frames.py really runs: every frame a socket test receives is validated
against its socket's event models (so every websocket test is a schema check too)."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from tests.conversations.conftest import asession_for, widget_connect
from tests.event_frames import CHECKED

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]


async def test_every_frame_a_widget_test_receives_is_checked(kb_tenant) -> None:
    assert getattr(WebsocketCommunicator.receive_output, "_checks_frames", False)
    before = CHECKED["frames"]
    session = await asession_for(kb_tenant)
    widget, welcome = await widget_connect(kb_tenant, token=session.token)
    await widget.send({"type": "ping"})
    pong = await widget.until(lambda f: f["type"] == "pong")
    await widget.close()
    assert welcome is not None
    assert welcome["last_seq"] == 0
    assert pong == {"type": "pong", "client_msg_id": pong["client_msg_id"]}
    assert CHECKED["frames"] - before == len(widget.received) == 2
