"""Each reply's trace: its id and spans stored with it, exported nowhere unless a collector is set, one
trace from the widget message through the Celery tool run, and the waterfall agents read
(docs/architecture/tracing.md)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id

from apps.accounts.models import Tenant
from apps.conversations import services
from apps.conversations.identity import IdentityClaim, identity_signature
from apps.conversations.models import AssistantTrace, Conversation, Message
from apps.conversations.turn_trace import turn_spans_late, turn_spans_store, turn_waterfall
from apps.core.errors import NotFound
from apps.core.tracing import TracingState, tracing_setup
from tests.conftest import celery_worker_in_process
from tests.conversations.conftest import (
    aanswers_configure,
    asession_for,
    model_composes,
    widget_connect,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.tools.conftest import tools_enable

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]

# A customer message with personal data and words that must never reach a span attribute.
MARKER = "Zebulon Quartermaine"
QUESTION = f"I am {MARKER}, zebulon.q@example.org. Do I pay extra for roaming in the European Union?"
TURN_STAGES = {
    "widget.message",
    "guardrails.redact",
    "assistant.turn",
    "turn.context",
    "guardrails.input_check",
    "handoff.trigger",
    "retrieval.embed",
    "retrieval",
    "evidence",
    "reply.finish",
}


@pytest.fixture(scope="session")
def _session_exporter() -> InMemorySpanExporter:
    """One in-memory exporter for the session (a provider's processors cannot be removed)."""
    state = tracing_setup()
    assert state is not None
    exporter = InMemorySpanExporter()
    state.provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def exported(_session_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    _session_exporter.clear()
    yield _session_exporter
    _session_exporter.clear()


def _state() -> TracingState:
    state = tracing_setup()
    assert state is not None
    return state


async def _ask(tenant: Tenant, token: str, text: str) -> dict[str, Any]:
    widget, _ = await widget_connect(tenant, token=token)
    try:
        await widget.send({"type": "message", "text": text})
        final = await widget.until(
            lambda f: f["type"] in ("assistant.completed", "assistant.failed", "assistant.interrupted"),
            timeout=40,
        )
        return dict(final["message"])
    finally:
        await widget.close()


async def _stored(message_id: str, *, names: set[str], timeout: float = 10.0) -> AssistantTrace:
    """The reply's trace once its spans hold `names` (they are stored just after the reply)."""
    deadline = time.monotonic() + timeout
    while True:
        trace = await AssistantTrace.objects.filter(message_id=message_id).afirst()
        if trace is not None and trace.trace_id and names <= {row["name"] for row in trace.spans}:
            return trace
        if time.monotonic() > deadline:
            got = sorted({row["name"] for row in trace.spans}) if trace else None
            raise AssertionError(f"spans {sorted(names)} not stored; got {got}")
        await asyncio.sleep(0.05)


def _strings(span: ReadableSpan) -> list[str]:
    values: list[str] = [span.name]
    for key, value in (span.attributes or {}).items():
        values.append(key)
        values.extend(str(v) for v in (value if isinstance(value, tuple) else (value,)))
    for event in span.events:
        values.extend(str(v) for v in (event.attributes or {}).values())
    if span.status.description:
        values.append(span.status.description)
    return values


async def test_a_reply_stores_its_trace_id_and_spans_and_nothing_is_exported(
    kb_tenant: Tenant, fake_llm: FakeOpenAI
) -> None:
    state = _state()
    processors = state.provider._active_span_processor._span_processors
    assert state.exporter is None
    assert not any(isinstance(p, BatchSpanProcessor) for p in processors)
    assert state.recorder in processors
    await aanswers_configure(kb_tenant, style="quote")
    session = await asession_for(kb_tenant)
    reply = await _ask(kb_tenant, session.token, QUESTION)
    assert reply["status"] == "complete"

    trace = await _stored(reply["id"], names=TURN_STAGES)
    assert re.fullmatch(r"[0-9a-f]{32}", trace.trace_id)
    assert trace.trace_id != "0" * 32
    assert {row["trace_id"] for row in trace.spans} == {trace.trace_id}
    by_name = {row["name"]: row for row in trace.spans}
    assert by_name["retrieval"]["attributes"]["helpdesk.passages"] > 0
    assert by_name["retrieval"]["attributes"]["helpdesk.top_score"] > 0
    assert by_name["evidence"]["attributes"]["helpdesk.answerable"] is True
    assert by_name["guardrails.input_check"]["attributes"]["helpdesk.action"] == "allow"
    assert by_name["guardrails.redact"]["attributes"]["helpdesk.pii_findings"] >= 1
    assert by_name["turn.context"]["attributes"]["helpdesk.db_calls"] >= 1
    assert "llm.compose" not in by_name  # quote never calls the model
    for row in trace.spans:
        assert set(row) == {
            "trace_id",
            "span_id",
            "parent_id",
            "name",
            "start_ms",
            "duration_ms",
            "status",
            "attributes",
        }
        assert MARKER.lower() not in str(row).lower()
        assert "european union" not in str(row).lower()
    # The turn is one tree: every stored span but the widget message hangs under another stored span.
    ids = {row["span_id"] for row in trace.spans}
    roots = [row["name"] for row in trace.spans if row["parent_id"] not in ids]
    assert roots == ["widget.message"]
    assert _state().recorder.claim(int(trace.trace_id, 16)) == []  # claimed once, nothing left behind


async def test_exported_spans_have_the_stage_names_and_no_text(
    kb_tenant: Tenant, fake_llm: FakeOpenAI, exported: InMemorySpanExporter
) -> None:
    await aanswers_configure(kb_tenant, style="compose")
    model_composes(fake_llm, "Roaming in the European Union is at no extra charge.")
    session = await asession_for(kb_tenant)
    reply = await _ask(kb_tenant, session.token, QUESTION)
    stored = await _stored(reply["id"], names=TURN_STAGES | {"llm.compose"})

    spans = [
        s for s in exported.get_finished_spans() if format_trace_id(s.context.trace_id) == stored.trace_id
    ]
    ours = {
        s.name: s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name == "helpdesk"
    }
    assert TURN_STAGES | {"llm.compose"} <= set(ours)
    model = ours["llm.compose"].attributes or {}
    assert model["gen_ai.request.model"] == "fake-model"
    assert int(str(model["gen_ai.usage.output_tokens"])) > 0
    assert float(str(model["helpdesk.time_to_first_token_ms"])) >= 0
    # The standard instrumentation joined the same trace: the database, and the model's HTTP call.
    scopes = {s.instrumentation_scope.name for s in spans if s.instrumentation_scope}
    assert {"opentelemetry.instrumentation.psycopg", "opentelemetry.instrumentation.httpx"} <= scopes
    for span in ours.values():
        assert all(key.startswith(("helpdesk.", "gen_ai.")) for key in (span.attributes or {}))
    for span in exported.get_finished_spans():
        for value in _strings(span):
            assert MARKER.lower() not in value.lower(), (span.name, value)
            assert "zebulon.q@example.org" not in value.lower(), (span.name, value)
            assert "pay extra for roaming" not in value.lower(), (span.name, value)


def _verified_token(tenant: Tenant, external_id: str = "cust-1001") -> str:
    issued = int(time.time())
    claim = IdentityClaim(
        external_id=external_id,
        issued_at=issued,
        signature=identity_signature(
            secret=tenant.identity_secret, external_id=external_id, issued_at=issued
        ),
    )
    return services.widget_session_open(tenant=tenant, token=None, claim=claim).token


@pytest.mark.slow
async def test_a_celery_tool_run_and_the_answer_it_feeds_share_one_trace(
    kb_tenant: Tenant, fake_llm: FakeOpenAI, exported: InMemorySpanExporter
) -> None:
    await database_sync_to_async(tools_enable)(kb_tenant)
    token = await database_sync_to_async(_verified_token)(kb_tenant)
    with celery_worker_in_process():
        reply = await _ask(kb_tenant, token, "Where is my order NM-100234?")
        assert reply["status"] == "complete"
        assert reply["text"].startswith("Order NM-100234 (")
        stored = await _stored(reply["id"], names={"tools.run", "tool.execute"})

    # The worker ran the task in its own thread, from the task message: its spans joined the trace
    # through the message's headers, not through this thread's context.
    [execute] = [s for s in exported.get_finished_spans() if s.name == "tool.execute"]
    assert format_trace_id(execute.context.trace_id) == stored.trace_id
    assert (execute.attributes or {})["helpdesk.tool"] == "order_lookup"
    assert (execute.attributes or {})["helpdesk.status"] == "done"
    runs = [s for s in exported.get_finished_spans() if s.name.startswith("run/")]
    assert [format_trace_id(s.context.trace_id) for s in runs] == [stored.trace_id]
    assert runs[0].parent is not None
    assert runs[0].parent.is_remote

    waterfall = await database_sync_to_async(turn_waterfall)(
        tenant=kb_tenant,
        conversation_id=(await Message.objects.aget(id=reply["id"])).conversation_id,
        message_id=reply["id"],
    )
    names = [stage.name for stage in waterfall.stages]
    assert names.index("widget.message") < names.index("tools.run") < names.index("tool.execute")
    assert "Worker: tool_run_execute" in [stage.label for stage in waterfall.stages]
    offsets = [stage.offset_ms for stage in waterfall.stages]
    assert offsets == sorted(offsets)
    assert offsets[0] == 0.0
    assert all(stage.offset_ms + stage.duration_ms <= waterfall.total_ms + 0.2 for stage in waterfall.stages)


# ---- the store and the selector, with spans written here


def _span(name: str, span_id: str, parent: str | None, start: float, duration: float, **attrs: Any) -> dict:
    return {
        "trace_id": "a" * 32,
        "span_id": span_id,
        "parent_id": parent,
        "name": name,
        "start_ms": 1_700_000_000_000.0 + start,
        "duration_ms": duration,
        "status": attrs.pop("status", "ok"),
        "attributes": attrs,
    }


def _reply(tenant: Tenant) -> Message:
    conversation = Conversation.objects.create(tenant=tenant)
    return Message.objects.create(
        tenant=tenant, conversation=conversation, role=Message.Role.ASSISTANT, turn=1, text="An answer."
    )


TURN = [
    _span("widget.message", "0000000000000001", None, 0, 30),
    _span("assistant.turn", "0000000000000002", "0000000000000001", 5, 200),
    _span("retrieval", "0000000000000003", "0000000000000002", 20, 40, **{"helpdesk.passages": 4}),
    _span("llm.compose", "0000000000000004", "0000000000000002", 70, 120, status="error"),
]
WORKER = [
    _span("run/apps.handoff.tasks.case_file_build", "0000000000000005", "0000000000000009", 210, 90),
    _span("casefile.build", "0000000000000006", "0000000000000005", 215, 80),
]


def test_spans_a_worker_sends_before_or_after_the_reply_is_stored_all_join_it(make_tenant: Any) -> None:
    tenant = make_tenant(name="Nimbus")
    early, late = _reply(tenant), _reply(tenant)
    # Before the reply is stored: parked in Redis, taken by the store.
    turn_spans_late("a" * 32, WORKER[:1])
    turn_spans_store(tenant_id=tenant.id, message_id=early.id, trace_id="a" * 32, spans=TURN)
    # After: added to the stored reply directly (and parked, in case; the selector keeps one of each).
    turn_spans_late("a" * 32, WORKER[1:])
    stored = AssistantTrace.objects.get(message=early)
    assert [row["name"] for row in stored.spans] == [
        "widget.message",
        "assistant.turn",
        "retrieval",
        "llm.compose",
        "run/apps.handoff.tasks.case_file_build",
        "casefile.build",
    ]
    assert not AssistantTrace.objects.filter(message=late).exists()


def test_the_waterfall_is_in_start_order_with_depths_labels_and_no_duplicates(make_tenant: Any) -> None:
    tenant = make_tenant(name="Nimbus")
    reply = _reply(tenant)
    AssistantTrace.objects.create(
        tenant=tenant, message=reply, trace_id="a" * 32, spans=[*reversed(TURN), *WORKER, WORKER[1]]
    )
    waterfall = turn_waterfall(tenant=tenant, conversation_id=reply.conversation_id, message_id=reply.id)
    assert (waterfall.trace_id, waterfall.total_ms) == ("a" * 32, 300.0)
    assert [(s.label, s.depth, s.offset_ms, s.duration_ms, s.status) for s in waterfall.stages] == [
        ("Message received", 0, 0.0, 30.0, "ok"),
        ("Answer", 1, 5.0, 200.0, "ok"),
        ("Retrieval", 2, 20.0, 40.0, "ok"),
        ("Model", 2, 70.0, 120.0, "error"),
        ("Worker: case_file_build", 0, 210.0, 90.0, "ok"),
        ("Case file", 1, 215.0, 80.0, "ok"),
    ]
    assert waterfall.stages[2].attributes == {"helpdesk.passages": 4}


def test_a_reply_without_spans_has_an_empty_waterfall_and_other_messages_are_not_found(
    make_tenant: Any,
) -> None:
    tenant, other = make_tenant(name="Nimbus"), make_tenant(name="Other")
    reply = _reply(tenant)
    empty = turn_waterfall(tenant=tenant, conversation_id=reply.conversation_id, message_id=reply.id)
    assert (empty.trace_id, empty.total_ms, empty.stages) == ("", 0.0, [])
    customer = Message.objects.create(
        tenant=tenant, conversation=reply.conversation, role=Message.Role.CUSTOMER, turn=1, text="Hi"
    )
    for tenant_asking, conversation_id, message_id in (
        (other, reply.conversation_id, reply.id),  # another company's reply
        (tenant, reply.conversation_id, customer.id),  # not an assistant reply
        (tenant, reply.conversation_id, uuid.uuid4()),
        (tenant, _reply(tenant).conversation_id, reply.id),  # a reply of another conversation
    ):
        with pytest.raises(NotFound):
            turn_waterfall(tenant=tenant_asking, conversation_id=conversation_id, message_id=message_id)


def test_agents_read_the_waterfall_of_their_company_only(
    tenant_a: Any, tenant_b: Any, api_agent_a: Any, api_agent_b: Any, api_editor_a: Any
) -> None:
    reply = _reply(tenant_a.tenant)
    AssistantTrace.objects.create(tenant=tenant_a.tenant, message=reply, trace_id="a" * 32, spans=TURN)
    path = "/api/v1/tenants/{slug}/conversations/" + f"{reply.conversation_id}/messages/{reply.id}/trace/"

    response = api_agent_a.get(path.format(slug=tenant_a.tenant.slug))
    assert response.status_code == 200
    body = response.json()
    assert (body["message_id"], body["trace_id"], body["total_ms"]) == (str(reply.id), "a" * 32, 205.0)
    assert [stage["name"] for stage in body["stages"]] == [row["name"] for row in TURN]
    assert set(body["stages"][0]) == {
        "span_id",
        "parent_id",
        "name",
        "label",
        "depth",
        "offset_ms",
        "duration_ms",
        "status",
        "attributes",
    }

    # Another company's agent, through their own company or this one: nothing to learn.
    assert api_agent_b.get(path.format(slug=tenant_b.tenant.slug)).status_code == 404
    assert api_agent_b.get(path.format(slug=tenant_a.tenant.slug)).status_code == 404
    # An editor of the company is no agent.
    assert api_editor_a.get(path.format(slug=tenant_a.tenant.slug)).status_code == 403
