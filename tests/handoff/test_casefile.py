"""The case file an agent reads on a handoff (apps/handoff/casefile.py), built from redacted text only,
against real PostgreSQL, Valkey, Presidio and a scripted model; end to end through a real Celery worker on
the "handoff" queue. `kb_tenant` and `fake_llm` come from tests/conversations/conftest.py (through
tests/handoff/conftest.py)."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.utils import timezone

from apps.conversations import services
from apps.conversations.assistant import ABSTAIN_TEXT
from apps.conversations.models import AssistantTrace, Message
from apps.conversations.ownership import HandoffTrigger, conversation_handoff
from apps.core.realtime import StaffStream, staff_group
from apps.handoff import casefile, listeners
from apps.handoff.casefile import _clip, _parse, case_file_build
from apps.handoff.models import Handoff
from apps.knowledge.models import Chunk
from apps.llm.breaker import breaker_for
from tests.conftest import celery_worker_in_process
from tests.fakes.openai_server import FakeOpenAI
from tests.handoff.casefile_fixtures import (
    EMAIL,
    PARROT,
    PHONE,
    THRESHOLD,
    Story,
    hand_off,
    story_tell,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_ANSWER = (
    "GOAL: Know whether EU roaming is free, and where their missing order is.\n"
    "REPLY: Sorry about the trouble! EU roaming is free on every plan, and I'm looking up your order now."
)
PII = (EMAIL, PHONE, "jane.roe", "555 0132")


@pytest.fixture
def story(kb_tenant: Any, fake_llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Story:
    return story_tell(kb_tenant, fake_llm, monkeypatch)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the case file tells the tenant's staff, after commit. The listener's own enqueueing (the case
    file task, the escalation timer) is left out here: the worker test below covers it."""
    sent: list[dict[str, Any]] = []

    def capture(tenant_id: object, payload: dict[str, Any], *, stream: StaffStream) -> None:
        assert stream is StaffStream.AGENT, payload
        sent.append(payload)

    monkeypatch.setattr(casefile, "staff_publish", capture)
    monkeypatch.setattr(listeners, "_after_open", lambda handoff_id, queued: None)
    return sent


def _stamped(case_file: dict[str, Any]) -> dict[str, Any]:
    """The case file without its build time and duration, after checking them."""
    rest = dict(case_file)
    built_at = datetime.datetime.fromisoformat(rest.pop("built_at"))
    assert abs((timezone.now() - built_at).total_seconds()) < 30
    build_ms = rest.pop("build_ms")
    assert isinstance(build_ms, float)
    assert 0 < build_ms < 5000
    return rest


def _channels(conversation: Any) -> list[dict[str, str]]:
    """The case file's channel of each message (these conversations are the command line's; the email
    channel's are in test_email_channels.py)."""
    rows = Message.objects.filter(conversation=conversation).order_by("created_at")
    return [
        {"message_id": str(m.id), "role": m.role, "channel": m.via, "at": m.created_at.isoformat()}
        for m in rows
    ]


def _expected(story: Story, **changes: Any) -> dict[str, Any]:
    answered, abstained = story.answered, story.abstained
    # Each cited passage once, in the order the answer first cites it (one passage may give two quotes).
    first_cites: dict[str, dict[str, Any]] = {}
    for citation in answered.citations:
        first_cites.setdefault(citation["chunk_id"], citation)
    cited = list(first_cites.values())
    chunks = Chunk.objects.select_related("version").in_bulk(list(first_cites))
    retrieval = AssistantTrace.objects.get(message=answered).retrieval
    expected = {
        "version": 1,
        "goal": "Know whether EU roaming is free, and where their missing order is.",
        "goal_source": "model",
        "identity": {"verified": True, "external_id": "cust-1001", "name": "Aiko Tanaka", "tier": "premium"},
        "reason": {"code": "tool_failed", "label": "A tool failed", "detail": "order_lookup: not_found"},
        "priority": 1,
        "facts": ["Verified customer cust-1001 (Aiko Tanaka), tier premium", story.found.summary],
        "tried": [
            {
                "message_id": str(abstained.id),
                "at": abstained.created_at.isoformat(),
                "outcome": "abstained",
                "excerpt": ABSTAIN_TEXT,
            },
            {
                "message_id": str(answered.id),
                "at": answered.created_at.isoformat(),
                "outcome": "answered",
                "excerpt": _clip(answered.text, casefile.EXCERPT_CHARS),
            },
        ],
        "citations": [
            {
                "document": c["title"],
                "version": 1,
                "effective_date": str(chunks[uuid.UUID(c["chunk_id"])].version.effective_date),
                "section": c["section"],
                "chunk_id": c["chunk_id"],
            }
            for c in cited
        ],
        "tool_runs": [
            {
                "tool": "order_lookup",
                "status": "done",
                "summary": story.found.summary,
                "error_code": "",
                "at": story.found.created_at.isoformat(),
            },
            {
                "tool": "order_lookup",
                "status": "failed",
                "summary": story.failed.summary,
                "error_code": "not_found",
                "at": story.failed.created_at.isoformat(),
            },
        ],
        "confidence": {
            "level": "high",
            "top_similarity": retrieval["top_similarity"],
            "confidence": retrieval["confidence"],
            "threshold": THRESHOLD,
            "grounded": True,
        },
        "sentiment": {"score": -0.1, "label": "neutral", "signals": ["bad"]},
        "suggested_reply": (
            "Sorry about the trouble! EU roaming is free on every plan, and I'm looking up your order now."
        ),
        "suggested_reply_source": "model",
        "messages": 4,
        "channels": _channels(story.conversation),
        "transcript_url": f"/staff/{story.tenant.slug}/console/?conversation={story.conversation.id}",
    }
    expected.update(changes)
    return expected


def _case_file_request(fake: FakeOpenAI) -> dict[str, Any]:
    [request] = [b for b in fake.chat_requests if "support agent" in b["messages"][0]["content"]]
    return request


def _no_pii(*blobs: object) -> None:
    text = json.dumps(blobs, default=str)
    for value in PII:
        assert value not in text


def test_the_case_file_holds_what_the_agent_needs_and_no_pii(
    story: Story, fake_llm: FakeOpenAI, published: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    assert story.conversation.messages.filter(text__contains=EMAIL).count() == 1  # the original is kept
    handoff = hand_off(story)
    assert handoff.case_file_status == "pending"
    fake_llm.reply_text = MODEL_ANSWER
    caplog.set_level(logging.INFO)

    built = case_file_build(handoff_id=handoff.id)

    handoff.refresh_from_db()
    assert (handoff.case_file_status, built.case_file_status) == ("ready", "ready")
    assert handoff.case_file == built.case_file
    assert handoff.case_file_ready_at is not None
    assert _stamped(handoff.case_file) == _expected(story)
    assert published == [
        {
            "type": "case_file.ready",
            "handoff_id": str(handoff.id),
            "conversation_id": str(story.conversation.id),
            "status": "ready",
        }
    ]
    # The model saw the customer's words redacted, fenced as data, with the tool's facts and the reason.
    request = _case_file_request(fake_llm)
    assert (request["max_tokens"], request["stream"]) == (160, False)
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]
    assert request["messages"][1:3] == [
        {"role": "user", "content": casefile.EXAMPLE[0]},
        {"role": "assistant", "content": casefile.EXAMPLE[1]},
    ]
    prompt = request["messages"][3]["content"]
    assert (
        'Customer messages:\n"""\n'
        + PARROT.replace(EMAIL, "<EMAIL_ADDRESS>").replace(PHONE, "<PHONE_NUMBER>")
        in prompt
    )
    assert "Why a person is needed: A tool failed (order_lookup: not_found)" in prompt
    assert story.found.summary in prompt
    assert "Aiko" not in json.dumps(request)  # the verified name is for the agent, not for the model
    _no_pii(handoff.case_file, fake_llm.requests, [r.getMessage() for r in caplog.records])
    [line] = [r.getMessage() for r in caplog.records if r.name == "apps.handoff.casefile"]
    assert line.startswith(f"case file of handoff {handoff.id} ready in ")


def test_building_again_rebuilds_from_what_is_there_now(
    story: Story, fake_llm: FakeOpenAI, published: list[dict[str, Any]]
) -> None:
    handoff = hand_off(story)
    fake_llm.reply_text = MODEL_ANSWER
    first = case_file_build(handoff_id=handoff.id)
    first_ready = first.case_file_ready_at
    assert first_ready is not None
    services.cli_message_receive(
        conversation=story.conversation, client_msg_id="later", text="Thanks, that is great!"
    )
    fake_llm.reply_text = "GOAL: Find the order.\nREPLY: Glad to help, one moment please."

    again = case_file_build(handoff_id=str(handoff.id))

    assert again.case_file_ready_at is not None
    assert again.case_file_ready_at > first_ready
    assert _stamped(again.case_file) == _expected(
        story,
        goal="Find the order.",
        suggested_reply="Glad to help, one moment please.",
        messages=5,
        sentiment={"score": 0.26, "label": "neutral", "signals": ["bad"]},
    )
    assert Handoff.objects.filter(conversation=story.conversation).count() == 1
    assert [p["handoff_id"] for p in published] == [str(handoff.id)] * 2


FALLBACK_GOAL = PARROT.replace(EMAIL, "<EMAIL_ADDRESS>").replace(PHONE, "<PHONE_NUMBER>")


@pytest.mark.parametrize("behaviour", ["error_500", "hang", "refuse", "refusal", "junk", "half"])
def test_when_the_model_fails_the_case_file_is_ready_with_the_fallbacks(
    story: Story,
    fake_llm: FakeOpenAI,
    published: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    behaviour: str,
) -> None:
    handoff = hand_off(story)
    monkeypatch.setattr(casefile, "LLM_SECONDS", 0.5)
    if behaviour == "junk":
        fake_llm.reply_text = "Sure! Here is a summary of the conversation for you."
    elif behaviour == "half":
        fake_llm.reply_text = "GOAL: Sort out the missing order.\nREPLY:"
    else:
        fake_llm.behaviour = behaviour
    started = time.monotonic()

    built = case_file_build(handoff_id=handoff.id)

    assert time.monotonic() - started < 3  # a hung model costs the deadline, not the worker's time limit
    assert built.case_file_status == "ready"
    goal = "Sort out the missing order." if behaviour == "half" else FALLBACK_GOAL
    assert _stamped(built.case_file) == _expected(
        story,
        goal=goal,
        goal_source="model" if behaviour == "half" else "first message",
        suggested_reply="Sorry about that — I'm checking your order for you now.",
        suggested_reply_source="template",
    )
    _no_pii(built.case_file, fake_llm.requests)


def test_an_open_circuit_is_not_asked_and_the_fallbacks_serve(
    story: Story, fake_llm: FakeOpenAI, published: list[dict[str, Any]], settings: Any
) -> None:
    handoff = hand_off(story)
    breaker = breaker_for(settings.LLM_BASE_URL, settings.LLM_MODEL)
    for _ in range(settings.LLM_BREAKER_FAILURES):
        breaker.record_failure()
    asked = len(fake_llm.chat_requests)

    built = case_file_build(handoff_id=handoff.id)

    assert len(fake_llm.chat_requests) == asked
    assert (built.case_file["goal_source"], built.case_file["suggested_reply_source"]) == (
        "first message",
        "template",
    )


def test_an_anonymous_visitor_who_only_asked_for_a_person(
    kb_tenant: Any, fake_llm: FakeOpenAI, published: list[dict[str, Any]]
) -> None:
    conversation = services.cli_conversation_open(tenant=kb_tenant, customer=None, conversation_id=None)
    long = "My router " + "keeps dropping the connection every few minutes " * 5 + f"- call {PHONE}"
    services.cli_message_receive(conversation=conversation, client_msg_id="c1", text=long)
    change = conversation_handoff(
        conversation_id=conversation.id,
        trigger=HandoffTrigger(reason="customer_request", detail="I am Jane Roe, call me"),
    )
    assert change is not None
    handoff = Handoff.objects.get(conversation=conversation)
    fake_llm.behaviour = "error_500"

    built = case_file_build(handoff_id=handoff.id)

    case_file = _stamped(built.case_file)
    assert case_file == {
        "version": 1,
        "goal": _clip(long, 160),
        "goal_source": "first message",
        "identity": {"verified": False},
        "reason": {
            "code": "customer_request",
            "label": "Customer asked for a person",
            "detail": "I am Jane Roe, call me",
        },
        "priority": 0,
        "facts": [],
        "tried": [],
        "citations": [],
        "tool_runs": [],
        "confidence": {
            "level": "low",
            "top_similarity": None,
            "confidence": None,
            "threshold": None,
            "grounded": False,
        },
        "sentiment": {"score": 0.0, "label": "neutral", "signals": []},
        "suggested_reply": "Hi, thanks for waiting. I've read your conversation and I'm on it.",
        "suggested_reply_source": "template",
        "messages": 1,
        "channels": _channels(conversation),
        "transcript_url": f"/staff/{kb_tenant.slug}/console/?conversation={conversation.id}",
    }
    assert len(case_file["goal"]) == 160
    assert case_file["goal"].endswith("…")
    # The widget's free-text reason may be the customer's own words: never sent to the model.
    assert "Jane" not in json.dumps(fake_llm.chat_requests)
    _no_pii(built.case_file)


def test_a_crash_while_building_marks_the_case_file_failed(
    story: Story,
    fake_llm: FakeOpenAI,
    published: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handoff = hand_off(story)

    def broken(text: str) -> None:
        raise RuntimeError(f"lexicon exploded on {text}")

    monkeypatch.setattr(casefile, "mood", broken)

    built = case_file_build(handoff_id=handoff.id)

    handoff.refresh_from_db()
    assert (handoff.case_file_status, handoff.case_file_ready_at) == ("failed", None)
    assert handoff.case_file == {"error": "The case file could not be built (RuntimeError)."}
    assert built.case_file == handoff.case_file
    assert published[-1]["status"] == "failed"
    [line] = [
        r.getMessage() for r in caplog.records if r.name == "apps.handoff.casefile" and r.levelname == "ERROR"
    ]
    assert line.startswith(f"case file of handoff {handoff.id} failed: RuntimeError at ")
    assert "lexicon exploded" not in caplog.text  # the exception's text may quote the conversation


@pytest.mark.parametrize(
    ("text", "goal", "reply"),
    [
        ("GOAL: A refund.\nREPLY: I'll sort it out now.", "A refund.", "I'll sort it out now."),
        (
            "**Goal:** A refund.\n**Reply** - I'll sort it out now.**\nHope this helps! GOAL: more",
            "A refund.",
            "I'll sort it out now.",
        ),
        ('goal \u2013 "A refund."\nreply: "I\'ll sort it out now."', "A refund.", "I'll sort it out now."),
        ("REPLY: I'll sort it out now.", "", "I'll sort it out now."),
        ("GOAL: ??\nREPLY: ok", "", ""),
        ("GOAL: A refund. REPLY: I'll sort it out now.", "A refund.", "I'll sort it out now."),
        (
            "<|im_start|>assistant\nGOAL: A refund.<|im_end|>\nREPLY: Sure thing, on it.",
            "A refund.",
            "Sure thing, on it.",
        ),
        ("", "", ""),
    ],
)
def test_the_model_lines_are_read_however_they_are_decorated(text: str, goal: str, reply: str) -> None:
    assert _parse(text) == (goal, reply)


# ---- end to end ---------------------------------------------------------------------------------------


@pytest.fixture
def handoff_worker() -> Iterator[None]:
    with celery_worker_in_process(queues=("handoff",)):
        yield


def test_a_handoff_gets_its_case_file_from_the_worker_and_staff_are_told(
    story: Story, fake_llm: FakeOpenAI, handoff_worker: None
) -> None:
    fake_llm.reply_text = MODEL_ANSWER
    layer = get_channel_layer()
    assert layer is not None

    async def subscribe() -> str:
        channel = await layer.new_channel()
        await layer.group_add(staff_group(story.tenant.id, StaffStream.AGENT), channel)
        return channel

    channel = asyncio.run(subscribe())
    started = time.monotonic()
    handoff = hand_off(story)  # the listener queues the task once this commits
    assert handoff.case_file_status == "pending"

    def ready() -> bool:
        handoff.refresh_from_db()
        return handoff.case_file_status == "ready"

    wait_for(ready, timeout=30, what="the case file")
    elapsed = time.monotonic() - started

    async def case_file_event() -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                message = await layer.receive(channel)
                if message["payload"]["type"] == "case_file.ready":
                    return dict(message["payload"])

    assert asyncio.run(case_file_event()) == {
        "type": "case_file.ready",
        "handoff_id": str(handoff.id),
        "conversation_id": str(story.conversation.id),
        "status": "ready",
    }
    assert _stamped(handoff.case_file) == _expected(story)
    assert elapsed < 30
    _no_pii(handoff.case_file, fake_llm.requests)
