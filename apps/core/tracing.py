"""OpenTelemetry across the customer turn: setup, and the helpers our own spans use
(docs/architecture/tracing.md).

`tracing_setup()` is called by every process that does work worth tracing, before it does any: the ASGI
application (helpdesk/asgi.py, before Django builds its middleware), Celery workers (helpdesk/celery.py)
and the management commands that run the pipeline. It installs one TracerProvider (service.name from
OTEL_SERVICE_NAME), the standard instrumentation (Django, Celery producer and worker, psycopg, Redis,
httpx and httpx2, which the openai client uses), and two span processors:

- the turn recorder (apps/core/trace_recorder.py), always: every reply stores its own waterfall;
- a BatchSpanProcessor with the OTLP/HTTP exporter, only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Unset,
  spans are exported nowhere.

OTEL_TRACES_SAMPLER decides what is exported (default ParentBased(always_on)); a span it would drop is
still recorded, unsampled, so the recorder sees every turn whatever the export sampling.
HELPDESK_TRACING=0 turns all of it off (no provider, no instrumentation: our spans are no-ops).

Attributes hold ids, counts, scores, model names and statuses, never message text or personal data
(erasure relies on it), and a failing span records the exception's class, never its message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, format_trace_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from apps.core.trace_recorder import TurnRecorder

logger = logging.getLogger(__name__)

TRACER_NAME = "helpdesk"

Attribute = str | int | float | bool


@dataclass(frozen=True)
class TracingState:
    provider: TracerProvider
    recorder: TurnRecorder
    exporter: SpanProcessor | None  # None: OTEL_EXPORTER_OTLP_ENDPOINT unset, nothing leaves the process
    instrumented: tuple[str, ...]


_lock = threading.Lock()
_state: TracingState | None = None
_exporting = False
_sink: Any = None  # set by the conversations app (turn_spans_sink_set), possibly before setup


def tracing_state() -> TracingState | None:
    """This process's tracing, or None when it is off or not set up."""
    return _state


def tracing_setup() -> TracingState | None:
    """Sets up tracing for this process once; later calls return the same state."""
    global _state, _exporting
    with _lock:
        if _state is not None:
            return _state
        if not getattr(settings, "HELPDESK_TRACING", True):
            return None
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        from apps.core.trace_recorder import TurnRecorder

        # TracerProvider reads OTEL_TRACES_SAMPLER (and its argument) itself; ask a throwaway one for it.
        sampler = TracerProvider(shutdown_on_exit=False).sampler
        provider = TracerProvider(
            resource=Resource.create({"service.name": getattr(settings, "OTEL_SERVICE_NAME", "helpdesk")}),
            sampler=_record_all(sampler),
        )
        recorder = TurnRecorder()
        recorder.sink = _sink
        provider.add_span_processor(recorder)
        exporter = export_processor(getattr(settings, "OTEL_EXPORTER_OTLP_ENDPOINT", None))
        if exporter is not None:
            provider.add_span_processor(exporter)
        trace.set_tracer_provider(provider)
        _exporting = exporter is not None
        _state = TracingState(
            provider=provider, recorder=recorder, exporter=exporter, instrumented=_instrument(provider)
        )
        logger.info(
            "tracing on (%s), exporting %s",
            ", ".join(_state.instrumented),
            "by OTLP" if exporter is not None else "nowhere",
        )
        return _state


def export_processor(endpoint: str | None) -> SpanProcessor | None:
    """A batching OTLP/HTTP exporter to `endpoint` (the collector's base URL), or None without one."""
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces"))


def _record_all(inner: Any) -> Any:
    """`inner` decides what is sampled (exported); what it would drop is recorded anyway, unsampled, for
    the turn recorder. BatchSpanProcessor exports sampled spans only."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class RecordAll(Sampler):
        def should_sample(
            self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any
        ) -> Any:
            result = inner.should_sample(parent_context, trace_id, name, *args, **kwargs)
            if result.decision is Decision.DROP:
                return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)
            return result

        def get_description(self) -> str:
            return f"RecordAll({inner.get_description()})"

    return RecordAll()


def libraries_wanted(*, exporting: bool) -> bool:
    """Whether the database, Redis, HTTP and Django instrumentations run (HELPDESK_TRACE_LIBRARIES: "all",
    "none" or "auto"). They add a span to every query and Redis command: with a collector those spans are
    the point, without one they only count the calls under each stage of the console's waterfall, and they
    made a quoted turn about a fifth slower (bench/tracing.py). "auto", the default, runs them only when
    exporting. Celery's instrumentation always runs: it carries the turn's context into the tool runs."""
    choice = str(getattr(settings, "HELPDESK_TRACE_LIBRARIES", "auto")).lower()
    if choice == "all":
        return True
    if choice == "none":
        return False
    return exporting


def _instrument(provider: TracerProvider) -> tuple[str, ...]:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    done = []
    chosen: list[tuple[str, Any]] = [("celery", CeleryInstrumentor())]
    if libraries_wanted(exporting=_exporting):
        chosen += [
            ("django", DjangoInstrumentor()),
            ("psycopg", PsycopgInstrumentor()),
            ("redis", RedisInstrumentor()),
            ("httpx", HTTPXClientInstrumentor()),
            # The openai client sends through httpx2, httpx's successor, which has an instrumentor of its own.
            ("httpx2", HTTPX2ClientInstrumentor()),
        ]
    for name, instrumentor in chosen:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
        done.append(name)
    return tuple(done)


# ---- helpers for our own spans


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(name: str, attributes: Mapping[str, Attribute] | None = None) -> Iterator[Span]:
    """A span of ours around a stage. A failure marks it `error` with the exception's class only (an
    exception's message may quote the customer); a cancelled stage is marked `helpdesk.cancelled`."""
    with tracer().start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except (asyncio.CancelledError, GeneratorExit):
            current.set_attribute("helpdesk.cancelled", True)
            raise
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, exc.__class__.__name__))
            raise


@contextmanager
def turn_span(name: str, attributes: Mapping[str, Attribute] | None = None) -> Iterator[Span]:
    """A span whose trace a turn of this process will claim (the widget message, the turn itself): the
    recorder keeps its spans after it ends."""
    with span(name, attributes) as current:
        state = _state
        context = current.get_span_context()
        if state is not None and context.is_valid:
            state.recorder.expect(context.trace_id)
        yield current


@contextmanager
def untraced() -> Iterator[None]:
    """Work that is not part of the turn (storing its spans): no spans, the instrumentations' included."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def current_trace_id() -> str:
    """The current trace's id (32 hex digits), or "" when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else ""


def turn_spans_claim(trace_id: str) -> list[dict[str, Any]]:
    """The stored form of the trace's spans this process recorded so far (once)."""
    state = _state
    if state is None or not trace_id:
        return []
    from apps.core.trace_recorder import spans_compact

    return spans_compact(state.recorder.claim(int(trace_id, 16)))


def turn_spans_sink_set(sink: Any) -> None:
    """Where spans of a turn recorded in another process go (the conversations app's store)."""
    global _sink
    _sink = sink
    if _state is not None:
        _state.recorder.sink = sink


def model_call_describe(current: Span, llm: Any, *, error: Any = None) -> None:
    """The model call's attributes (GenAI semantic conventions): model, token usage, time to first token.
    `llm` is the call's StreamOutcome (None when it failed); `error` its LLMCallError, whose kind only is
    kept (the detail may name the endpoint's answer)."""
    if llm is not None:
        current.set_attribute("gen_ai.request.model", str(llm.model))
        if llm.prompt_tokens is not None:
            current.set_attribute("gen_ai.usage.input_tokens", int(llm.prompt_tokens))
        current.set_attribute("gen_ai.usage.output_tokens", int(llm.completion_tokens))
        current.set_attribute("helpdesk.time_to_first_token_ms", round(llm.ttft_seconds * 1000, 1))
        current.set_attribute("helpdesk.attempts", int(llm.attempts))
    else:
        current.set_attribute("gen_ai.request.model", str(getattr(settings, "LLM_MODEL", "")))
    if error is not None:
        current.set_attribute("helpdesk.error", str(error.kind))
        current.set_status(Status(StatusCode.ERROR, str(error.kind)))
