"""Tracing setup and the turn recorder (apps/core/tracing.py, apps/core/trace_recorder.py;
docs/architecture/tracing.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    format_span_id,
    format_trace_id,
)

from apps.core import trace_recorder, tracing
from apps.core.trace_recorder import TurnRecorder, spans_compact


@pytest.fixture
def recorder() -> tuple[TurnRecorder, trace.Tracer, list[tuple[str, list[dict[str, Any]]]]]:
    """A recorder on a provider of its own (the process's global one stays as it is), and what reaches
    its sink."""
    provider = TracerProvider(shutdown_on_exit=False)
    recorder = TurnRecorder()
    sunk: list[tuple[str, list[dict[str, Any]]]] = []
    recorder.sink = lambda trace_id, rows: sunk.append((trace_id, rows))
    provider.add_span_processor(recorder)
    return recorder, provider.get_tracer("helpdesk"), sunk


def test_setup_is_done_once_and_exports_nowhere_without_an_endpoint(settings: Any) -> None:
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = None
    state = tracing.tracing_setup()
    assert state is not None
    assert tracing.tracing_setup() is state
    assert state.exporter is None
    processors = state.provider._active_span_processor._span_processors
    assert state.recorder in processors
    assert not any(isinstance(p, BatchSpanProcessor) for p in processors)
    # The test settings ask for every instrumentation (HELPDESK_TRACE_LIBRARIES = "all"), so the suite
    # covers the per-query spans a collector would get; the default without a collector is Celery's alone.
    assert state.instrumented == ("celery", "django", "psycopg", "redis", "httpx", "httpx2")
    assert trace.get_tracer_provider() is state.provider
    assert state.provider.resource.attributes["service.name"] == "helpdesk"


@pytest.mark.parametrize(
    ("choice", "exporting", "wanted"),
    [
        ("auto", False, False),
        ("auto", True, True),
        ("all", False, True),
        ("ALL", True, True),
        ("none", True, False),
    ],
)
def test_the_per_query_instrumentations_run_when_exporting_or_when_asked(
    settings: Any, choice: str, exporting: bool, wanted: bool
) -> None:
    settings.HELPDESK_TRACE_LIBRARIES = choice
    assert tracing.libraries_wanted(exporting=exporting) is wanted


def test_an_endpoint_gets_a_batching_otlp_http_exporter() -> None:
    assert tracing.export_processor(None) is None
    assert tracing.export_processor("") is None
    processor = tracing.export_processor("http://collector.internal:4318/")
    try:
        assert isinstance(processor, BatchSpanProcessor)
        exporter: Any = processor.span_exporter
        assert exporter._endpoint == "http://collector.internal:4318/v1/traces"
    finally:
        assert processor is not None
        processor.shutdown()


@pytest.mark.parametrize(
    ("sampler", "decision"), [("always_off", Decision.RECORD_ONLY), ("always_on", Decision.RECORD_AND_SAMPLE)]
)
def test_the_sampler_chooses_what_is_exported_but_every_span_is_recorded(
    monkeypatch: pytest.MonkeyPatch, sampler: str, decision: Decision
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    inner = TracerProvider(shutdown_on_exit=False).sampler
    result = tracing._record_all(inner).should_sample(None, 0x1234, "widget.message")
    assert result.decision is decision


def test_a_failing_span_keeps_the_exception_class_never_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("helpdesk"))
    with pytest.raises(ValueError, match="Zebulon"), tracing.span("retrieval", {"helpdesk.passages": 3}):
        raise ValueError("the customer Zebulon wrote this")
    [span] = exporter.get_finished_spans()
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "ValueError")
    assert span.events == ()  # no exception event: its message would quote the customer
    assert dict(span.attributes or {}) == {"helpdesk.passages": 3}


def test_a_turn_keeps_its_spans_until_it_claims_them_once(recorder: Any) -> None:
    recording, tracer, sunk = recorder
    with tracer.start_as_current_span("widget.message") as root:
        trace_id = root.get_span_context().trace_id
        recording.expect(trace_id)
        with (
            tracer.start_as_current_span("retrieval", attributes={"helpdesk.passages": 4, "text": "hi"}),
            tracer.start_as_current_span("SELECT", attributes={"db.statement": "SELECT 1"}) as db,
        ):
            pass
    assert recording.buffered_traces() == 1  # the root ended, but a turn will claim it
    records = recording.claim(trace_id)
    assert [r.name for r in records] == ["SELECT", "retrieval", "widget.message"]
    assert recording.claim(trace_id) == []
    assert sunk == []
    assert db.get_span_context().trace_id == trace_id
    rows = spans_compact(records)
    # Only our own spans here (the "SELECT" is ours too in this test): unsafe attributes are gone.
    assert [(r["name"], r["attributes"]) for r in rows] == [
        ("widget.message", {}),
        ("retrieval", {"helpdesk.passages": 4}),
        ("SELECT", {}),
    ]
    assert rows[1]["parent_id"] == rows[0]["span_id"]
    assert rows[0]["parent_id"] is None
    assert rows[0]["trace_id"] == format_trace_id(trace_id)


def test_a_trace_nobody_expects_is_dropped_when_its_root_ends(recorder: Any) -> None:
    recording, tracer, sunk = recorder
    with tracer.start_as_current_span("GET /healthz"), tracer.start_as_current_span("SELECT"):
        pass
    assert recording.buffered_traces() == 0
    assert sunk == []


def test_a_worker_task_of_another_process_turn_goes_to_the_sink_when_it_ends(recorder: Any) -> None:
    recording, tracer, sunk = recorder
    remote = SpanContext(
        trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    token = attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        with (
            tracer.start_as_current_span("run/apps.tools.tasks.tool_run_execute", kind=SpanKind.CONSUMER),
            tracer.start_as_current_span("tool.execute", attributes={"helpdesk.tool": "order_lookup"}),
        ):
            pass
    finally:
        detach(token)
    assert recording.buffered_traces() == 0
    [(trace_id, rows)] = sunk
    assert trace_id == format_trace_id(0xABC)
    assert [r["name"] for r in rows] == ["run/apps.tools.tasks.tool_run_execute", "tool.execute"]
    assert rows[0]["parent_id"] == format_span_id(0xDEF)  # the producer's span, in the other process


def test_database_and_redis_calls_are_counted_on_their_stage() -> None:
    def record(name: str, span_id: int, parent: int | None, scope: str) -> trace_recorder.SpanRecord:
        return trace_recorder.SpanRecord(
            trace_id=1,
            span_id=span_id,
            parent_id=parent,
            name=name,
            scope=scope,
            start_ns=span_id,
            end_ns=span_id + 5,
            status="ok",
        )

    rows = spans_compact(
        [
            record("assistant.turn", 1, None, "helpdesk"),
            record("django request", 2, 1, "opentelemetry.instrumentation.django"),
            record("SELECT", 3, 2, "opentelemetry.instrumentation.psycopg"),
            record("SELECT", 4, 1, "opentelemetry.instrumentation.psycopg"),
            record("GET", 5, 1, "opentelemetry.instrumentation.redis"),
            record("POST", 6, 2, "opentelemetry.instrumentation.httpx"),
        ]
    )
    assert [(r["name"], r["parent_id"], r["attributes"]) for r in rows] == [
        ("assistant.turn", None, {"helpdesk.db_calls": 2, "helpdesk.redis_calls": 1}),
        ("POST", "0000000000000001", {}),  # its parent (the request) is not stored: the turn is
    ]


def test_memory_is_bounded(recorder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    recording, tracer, _ = recorder
    monkeypatch.setattr(trace_recorder, "MAX_TRACES", 3)
    monkeypatch.setattr(trace_recorder, "MAX_SPANS", 2)
    ids = []
    for _ in range(5):
        with tracer.start_as_current_span("widget.message") as root:
            ids.append(root.get_span_context().trace_id)
            recording.expect(ids[-1])
            for _ in range(4):
                with tracer.start_as_current_span("retrieval"):
                    pass
    assert recording.buffered_traces() == 3
    assert recording.claim(ids[0]) == []  # the oldest, never claimed, went first
    assert len(recording.claim(ids[-1])) == 2


def test_our_spans_are_no_ops_when_tracing_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "tracer", lambda: trace.NoOpTracer())
    with tracing.turn_span("widget.message"):
        assert tracing.current_trace_id() == ""
    assert tracing.turn_spans_claim("") == []


def test_a_cancelled_stage_is_marked_cancelled(recorder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    recording, tracer, _ = recorder
    monkeypatch.setattr(tracing, "tracer", lambda: tracer)
    trace_ids: list[int] = []

    async def stage() -> None:
        with tracer.start_as_current_span("widget.message") as root:
            trace_ids.append(root.get_span_context().trace_id)
            recording.expect(trace_ids[0])
            with tracing.span("assistant.turn"), tracing.span("llm.compose"):
                await asyncio.sleep(10)

    async def run() -> None:
        task = asyncio.ensure_future(stage())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    records = [r for r in recording.claim(trace_ids[0]) if r.name != "widget.message"]
    # Cancelled (a newer message, a person taking over) is not a failure: no red bar.
    assert {r.name: (r.attributes.get("helpdesk.cancelled"), r.status) for r in records} == {
        "llm.compose": (True, "unset"),
        "assistant.turn": (True, "unset"),
    }
