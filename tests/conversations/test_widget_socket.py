"""The widget websocket end to end through the real ASGI application: handshake checks, frames, the
streamed answer, idempotent messages and resuming by seq (docs/architecture/realtime.md)."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from apps.conversations.models import AssistantTrace, Conversation, ConversationEvent, Message
from tests.conversations.conftest import ORIGIN, asession_for, transcript, widget_connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]

ANSWER = "Roaming in the EU is included at no extra charge [1]. Switch it on in the app first [1]."


async def _raw_connect(path: str, origin: str | None) -> WebsocketCommunicator:
    from helpdesk.asgi import application

    headers = [(b"origin", origin.encode())] if origin is not None else []
    return WebsocketCommunicator(application, path, headers=headers)


@pytest.fixture
def other(make_tenant):
    return make_tenant(origins=["https://evil.example"])


async def test_a_socket_from_an_origin_the_tenant_does_not_allow_is_closed_with_4403(kb_tenant, other):
    for origin, key in [
        ("https://evil.example", kb_tenant.widget_key),  # allowed for another tenant only
        ("https://shop.example.evil.example", kb_tenant.widget_key),
        ("null", kb_tenant.widget_key),
        (None, kb_tenant.widget_key),
        (ORIGIN, other.widget_key),  # the right origin with another tenant's key
        (ORIGIN, "wk_does_not_exist"),
    ]:
        ws = await _raw_connect(f"/ws/widget/?key={key}", origin)
        connected, _ = await ws.connect(timeout=10)
        assert connected  # accepted, then closed, so a browser can read the code
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    assert await Conversation.objects.acount() == 0


async def test_a_bad_token_closes_with_4401_and_frames_before_hello_are_refused(kb_tenant):
    widget, _ = await widget_connect(kb_tenant, hello=False)
    await widget.send({"type": "message", "text": "hello?"})
    error = await widget.recv()
    assert (error["type"], error["code"]) == ("error", "unauthorized")
    await widget.send({"type": "hello", "token": "forged-token"})
    assert await widget.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await Message.objects.acount() == 0


async def test_a_question_streams_deltas_then_a_stored_answer_with_checked_citations(kb_tenant, fake_llm):
    fake_llm.reply_text = ANSWER
    fake_llm.token_delay = 0.07  # slower than the push interval: every piece is its own delta
    session = await asession_for(kb_tenant)
    widget, welcome = await widget_connect(kb_tenant, token=session.token)
    assert welcome is not None
    assert welcome == {
        "type": "welcome",
        "client_msg_id": welcome["client_msg_id"],
        "conversation_id": str(session.claims.conversation_id),
        "verified": False,
        "last_seq": 0,
    }
    await widget.send(
        {
            "type": "message",
            "text": "Do I pay extra for roaming in the European Union?",
            "client_msg_id": "m1",
        }
    )
    ack = await widget.until(lambda f: f["type"] == "ack")
    assert ack["client_msg_id"] == "m1"
    assert ack["seq"] == 1
    completed = await widget.until(lambda f: f["type"] == "assistant.completed")
    types = [f["type"] for f in widget.received]
    assert types.index("assistant.progress") < types.index("assistant.delta")
    deltas = [f for f in widget.received if f["type"] == "assistant.delta"]
    assert len(deltas) > 5
    streamed = ""
    for d in deltas:
        assert d["offset"] == len(streamed)  # contiguous, nothing missing or repeated
        streamed += d["text"]
    assert streamed == ANSWER
    reply = completed["message"]
    assert reply["text"] == ANSWER
    assert reply["status"] == "complete"
    assert reply["abstained"] is False
    trace = await AssistantTrace.objects.aget(message_id=reply["id"])
    first_passage = trace.retrieval["passages"][0]
    assert [(c["n"], c["chunk_id"], c["title"], c["inferred"]) for c in reply["citations"]] == [
        (1, first_passage["chunk_id"], "roaming", False)
    ]
    assert reply["citations"][0]["section"].startswith("Roaming > Roaming ")
    assert [f["seq"] for f in widget.received if "seq" in f and f["type"] != "ack"] == [1, 2, 3]
    stored = await Message.objects.aget(id=reply["id"])
    assert (stored.status, stored.text, stored.turn) == ("complete", ANSWER, 1)
    assert stored.timings["ttft_ms"] > 0
    assert stored.completion_tokens
    assert stored.completion_tokens >= len(deltas)
    await widget.close()


async def test_a_message_resent_with_the_same_client_msg_id_is_stored_and_answered_once(kb_tenant, fake_llm):
    fake_llm.reply_text = ANSWER
    session = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=session.token)
    frame = {"type": "message", "text": "Is EU roaming free?", "client_msg_id": "same-id"}
    await widget.send(dict(frame))
    first = await widget.until(lambda f: f["type"] == "ack")
    await widget.until(lambda f: f["type"] == "assistant.completed")
    await widget.close()
    # The ack was lost in a reconnect: the client sends the message again on a new socket.
    again, _ = await widget_connect(kb_tenant, token=session.token, last_seq=3)
    await again.send(dict(frame))
    second = await again.until(lambda f: f["type"] == "ack")
    assert (second["message_id"], second["seq"]) == (first["message_id"], first["seq"])
    assert await Message.objects.filter(role="customer").acount() == 1
    assert await Message.objects.filter(role="assistant").acount() == 1
    assert len(fake_llm.chat_requests) == 1
    await again.close()


async def test_reconnecting_replays_stored_events_after_last_seq_and_the_transcript_matches(
    kb_tenant, fake_llm
):
    fake_llm.reply_text = ANSWER
    session = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=session.token)
    for i, text in enumerate(["Is EU roaming free?", "And what about refunds for a phone?"]):
        await widget.send({"type": "message", "text": text, "client_msg_id": f"m{i}"})
        await widget.until(lambda f: f["type"] == "assistant.completed")
    await widget.close()
    seen_up_to = 3  # the client had applied the first turn only
    resumed, welcome = await widget_connect(kb_tenant, token=session.token, last_seq=seen_up_to)
    assert welcome is not None
    assert welcome["last_seq"] == 6
    await resumed.until(lambda f: f.get("seq") == 6)
    replayed = [f for f in resumed.received if "seq" in f and f["type"] != "ack"]
    assert [f["seq"] for f in replayed] == [4, 5, 6]
    before = [f for f in widget.received if "seq" in f and f["type"] != "ack" and f["seq"] <= seen_up_to]
    shown = transcript(before + replayed)
    stored = [
        (m.role, m.status, m.text)
        async for m in Message.objects.filter(conversation_id=session.claims.conversation_id).order_by(
            "created_at"
        )
    ]
    assert shown == stored
    assert len(stored) == 4
    await resumed.close()


async def test_malformed_unknown_and_oversized_frames_get_errors_and_nothing_reaches_the_llm(
    kb_tenant, fake_llm
):
    session = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=session.token)
    cases = [
        ("not json", "bad_request"),
        (json.dumps([1, 2]), "bad_request"),
        (json.dumps({"type": "launch_missiles", "client_msg_id": "x"}), "bad_request"),
        (json.dumps({"type": "message", "text": "hi"}), "bad_request"),  # no client_msg_id
        (json.dumps({"type": "message", "text": "hi", "client_msg_id": "x" * 65}), "bad_request"),
        (json.dumps({"type": "message", "text": "   ", "client_msg_id": "blank"}), "bad_request"),
        (json.dumps({"type": "message", "text": "x" * 30_000, "client_msg_id": "paste"}), "message_too_long"),
        (json.dumps({"type": "retry", "message_id": "nope", "client_msg_id": "r"}), "bad_request"),
    ]
    for raw, code in cases:
        await widget.ws.send_to(text_data=raw)
        error = await widget.recv()
        assert (error["type"], error["code"]) == ("error", code), raw[:60]
    await widget.ws.send_to(text_data=json.dumps({"type": "ping", "client_msg_id": "p"}))
    assert await widget.recv() == {"type": "pong", "client_msg_id": "p"}  # still open and serving
    await widget.ws.send_to(bytes_data=b"\x00\x01")
    assert await widget.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1008}
    big, _ = await widget_connect(kb_tenant, token=session.token)
    await big.ws.send_to(text_data="x" * (1024 * 1024 + 1))
    error = await big.recv()
    assert error["code"] == "message_too_long"
    assert await big.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1009}
    assert await Message.objects.acount() == 0
    assert fake_llm.chat_requests == []


async def test_a_visitor_flooding_messages_is_rate_limited_and_others_are_not(kb_tenant, fake_llm, settings):
    settings.WIDGET_RATE_VISITOR = 3
    fake_llm.reply_text = "Yes [1]."
    flooder = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=flooder.token)
    for i in range(3):
        await widget.send({"type": "message", "text": f"roaming question {i}", "client_msg_id": f"f{i}"})
        await widget.until(lambda f: f["type"] == "ack")
    await widget.send({"type": "message", "text": "one more", "client_msg_id": "f3"})
    error = await widget.until(lambda f: f["type"] == "error")
    assert error["code"] == "rate_limited"
    assert error["retryable"] is True
    assert 1 <= error["retry_after"] <= 60
    assert error["client_msg_id"] == "f3"
    assert not await Message.objects.filter(client_msg_id="f3").aexists()
    other, _ = await widget_connect(kb_tenant, token=(await asession_for(kb_tenant)).token)
    await other.send({"type": "message", "text": "Is EU roaming free?", "client_msg_id": "o1"})
    assert (await other.until(lambda f: f["type"] in ("ack", "error")))["type"] == "ack"
    await widget.close()
    await other.close()


async def test_events_are_numbered_without_gaps_in_the_database(kb_tenant, fake_llm):
    fake_llm.reply_text = ANSWER
    session = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=session.token)
    await widget.send({"type": "message", "text": "Is EU roaming free?"})
    await widget.until(lambda f: f["type"] == "assistant.completed")
    await widget.send({"type": "handoff.request", "reason": "I want a person", "client_msg_id": "h1"})
    ack = await widget.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == "h1")
    await widget.until(lambda f: f["type"] == "handoff.status")
    events = [(e.seq, e.type) async for e in ConversationEvent.objects.order_by("seq")]
    assert events == [
        (1, "message.created"),
        (2, "assistant.started"),
        (3, "assistant.completed"),
        (4, "handoff.requested"),
        (5, "handoff.status"),  # queued, or offline with the company's hours: the customer is told which
    ]
    assert ack["seq"] == 4
    conversation = await Conversation.objects.aget(id=session.claims.conversation_id)
    assert (conversation.last_seq, conversation.status) == (5, "waiting")
    await widget.close()


async def test_a_fast_model_is_pushed_in_batches_that_still_add_up_exactly(kb_tenant, fake_llm):
    answer = "Roaming " * 40 + "is included [1]."
    fake_llm.reply_text = answer
    fake_llm.token_delay = 0.005
    session = await asession_for(kb_tenant)
    widget, _ = await widget_connect(kb_tenant, token=session.token)
    await widget.send({"type": "message", "text": "Is roaming in the European Union free?"})
    completed = await widget.until(lambda f: f["type"] == "assistant.completed")
    deltas = [f for f in widget.received if f["type"] == "assistant.delta"]
    assert 2 <= len(deltas) < 42 / 2  # 42 pieces from the model, far fewer pushes
    streamed = ""
    for d in deltas:
        assert d["offset"] == len(streamed)
        streamed += d["text"]
    assert streamed == answer == completed["message"]["text"]
    await widget.close()
