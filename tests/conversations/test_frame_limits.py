"""Every widget frame has a budget, not only messages (security review, finding 4), through the real ASGI
application and the harness's Valkey.

Each socket below comes from its own address: a trusted proxy hop (TRUSTED_PROXY_HOPS=1) writes it into
X-Forwarded-For, as a load balancer would.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.accounts.models import Tenant
from apps.conversations import services
from apps.conversations.consumers import REFUSED_FRAMES_BEFORE_CLOSE
from apps.conversations.models import Conversation
from apps.handoff.models import Handoff
from tests.conversations.conftest import ORIGIN, Widget, asession_for

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _behind_one_proxy(settings: Any) -> None:
    settings.TRUSTED_PROXY_HOPS = 1


async def _socket(tenant: Tenant, ip: str) -> tuple[Widget, dict[str, Any] | None]:
    """A widget socket from `ip`; the first output if the server closed it at once (else None)."""
    from helpdesk.asgi import application

    ws = WebsocketCommunicator(
        application,
        f"/ws/widget/?key={tenant.widget_key}",
        headers=[(b"origin", ORIGIN.encode()), (b"x-forwarded-for", ip.encode())],
    )
    connected, _ = await ws.connect(timeout=10)
    assert connected
    widget = Widget(ws=ws, received=[])
    if await ws.receive_nothing(timeout=0.3):
        return widget, None
    return widget, await ws.receive_output(timeout=1)


async def _hello(widget: Widget, token: str) -> None:
    await widget.send({"type": "hello", "token": token})
    await widget.until(lambda f: f["type"] == "welcome")


async def test_pings_and_every_other_frame_count_against_the_visitors_budget(kb_tenant, settings):
    settings.WIDGET_RATE_FRAMES_VISITOR = 5
    session = await asession_for(kb_tenant)
    widget, _ = await _socket(kb_tenant, "203.0.113.1")
    await _hello(widget, session.token)  # before hello only the address's budget applies
    for n in range(5):
        await widget.send({"type": "ping", "client_msg_id": f"p{n}"})
        assert (await widget.recv())["type"] == "pong"
    await widget.send({"type": "ping", "client_msg_id": "p5"})
    refused = await widget.recv()
    assert (refused["type"], refused["code"], refused["retryable"]) == ("error", "rate_limited", True)
    assert 1 <= refused["retry_after"] <= 60
    # The same visitor on another socket (another tab, another address) shares the budget.
    other, _ = await _socket(kb_tenant, "203.0.113.2")
    await _hello(other, session.token)
    await other.send({"type": "ping", "client_msg_id": "o1"})
    assert (await other.recv())["code"] == "rate_limited"
    # Another visitor is unaffected.
    stranger, _ = await _socket(kb_tenant, "203.0.113.3")
    await _hello(stranger, (await asession_for(kb_tenant)).token)
    for ws in (widget, other, stranger):
        await ws.close()


async def test_frames_before_hello_count_against_the_address(kb_tenant, settings):
    settings.WIDGET_RATE_FRAMES_IP = 3
    widget, _ = await _socket(kb_tenant, "203.0.113.9")
    for n in range(3):
        await widget.send({"type": "ping", "client_msg_id": f"p{n}"})
        assert (await widget.recv())["code"] == "unauthorized"  # say hello first
    await widget.send({"type": "not-a-frame", "client_msg_id": "x"})
    assert (await widget.recv())["code"] == "rate_limited"
    await widget.close()


async def test_a_socket_that_keeps_sending_past_its_budget_is_closed(kb_tenant, settings):
    settings.WIDGET_RATE_FRAMES_IP = 1
    widget, _ = await _socket(kb_tenant, "203.0.113.10")
    for n in range(REFUSED_FRAMES_BEFORE_CLOSE + 1):
        await widget.send({"type": "ping", "client_msg_id": f"p{n}"})
    assert await widget.closed() == 4429
    codes = [f.get("code") for f in widget.received]
    assert codes == ["unauthorized"] + ["rate_limited"] * (REFUSED_FRAMES_BEFORE_CLOSE - 1)


async def test_asking_for_a_person_in_a_loop_opens_a_bounded_number_of_handoffs(kb_tenant, settings):
    settings.WIDGET_HANDOFFS_PER_WINDOW = 3
    session = await asession_for(kb_tenant)
    widget, _ = await _socket(kb_tenant, "203.0.113.20")
    await _hello(widget, session.token)
    await widget.send({"type": "message", "text": "hello", "client_msg_id": "m1"})
    await widget.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == "m1")
    for n in range(3):
        await widget.send({"type": "handoff.request", "client_msg_id": f"r{n}"})
        ack = await widget.until(lambda f, n=n: f.get("client_msg_id") == f"r{n}")
        assert ack["type"] == "ack"
        assert "seq" in ack
        await widget.send({"type": "handoff.cancel", "client_msg_id": f"c{n}"})
        await widget.until(lambda f, n=n: f.get("client_msg_id") == f"c{n}")
    await widget.send({"type": "handoff.request", "client_msg_id": "r3"})
    refused = await widget.until(lambda f: f.get("client_msg_id") == "r3")
    assert (refused["type"], refused["code"]) == ("error", "rate_limited")
    assert 890 <= refused["retry_after"] <= 901
    assert "asked for a person 3 times" in refused["message"]
    await widget.close()

    def state() -> tuple[int, str]:
        conversation = Conversation.objects.get(id=session.claims.conversation_id)
        return Handoff.objects.filter(conversation=conversation).count(), conversation.status

    assert await database_sync_to_async(state)() == (3, "assistant")


async def test_a_rating_that_cannot_be_taken_costs_no_redaction(kb_tenant, monkeypatch):
    calls: list[str] = []
    real = services.pii_redact

    def counting(text: str) -> Any:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(services, "pii_redact", counting)
    session = await asession_for(kb_tenant)
    widget, _ = await _socket(kb_tenant, "203.0.113.30")
    await _hello(widget, session.token)
    await widget.send({"type": "message", "text": "hello", "client_msg_id": "m1"})
    await widget.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == "m1")
    for n in range(5):
        comment = f"My name is Jane Doe and my number is 0612345678 ({n})"
        await widget.send({"type": "csat", "score": 1, "comment": comment, "client_msg_id": f"s{n}"})
        refused = await widget.until(lambda f, n=n: f.get("client_msg_id") == f"s{n}")
        assert (refused["type"], refused["code"]) == ("error", "conflict")
    await widget.close()
    assert calls == []


async def test_sockets_per_address_are_capped_and_a_closed_one_frees_its_slot(kb_tenant, settings):
    settings.WIDGET_SOCKETS_PER_IP = 2
    first, _ = await _socket(kb_tenant, "198.51.100.7")
    second, _ = await _socket(kb_tenant, "198.51.100.7")
    _, refused = await _socket(kb_tenant, "198.51.100.7")
    assert refused == {"type": "websocket.close", "code": 4429}
    elsewhere, closed = await _socket(kb_tenant, "198.51.100.8")
    assert closed is None  # another address has its own slots
    await first.close()
    again, closed = await _socket(kb_tenant, "198.51.100.7")
    assert closed is None
    for ws in (second, elsewhere, again):
        await ws.close()


async def test_a_spoofed_forwarded_for_does_not_buy_more_sockets_without_a_trusted_proxy(kb_tenant, settings):
    """With no trusted proxy (the default) the header is ignored: every socket of this peer shares slots."""
    settings.TRUSTED_PROXY_HOPS = 0
    settings.WIDGET_SOCKETS_PER_IP = 2
    sockets = [await _socket(kb_tenant, f"192.0.2.{n}") for n in range(3)]
    assert [closed is None for _, closed in sockets] == [True, True, False]
    for ws, closed in sockets:
        if closed is None:
            await ws.close()
