"""The turn recorder: the spans of a customer turn, kept in memory until the reply is stored with them
(docs/architecture/tracing.md).

Agents see a turn's waterfall from data we store ourselves, so it works without a tracing backend. This
span processor runs in every process that traces, whether or not spans are exported:

- web process: the spans of a turn (its trace was `expect`ed when the widget message or the turn span
  started) stay in a buffer until the turn `claim`s them and stores them with the reply;
- Celery worker: the spans under a task whose parent came from another process (a tool run, the case
  file) are handed to the sink when the task span ends; the conversations app's sink adds them to the
  reply of that trace (or parks them in Redis until the reply is stored);
- anything else (an HTTP request, a beat task) is dropped when its local root span ends.

Memory is bounded: at most MAX_TRACES traces and MAX_SPANS spans each; the oldest trace goes first, so a
turn that never claims its spans (a process killed mid-turn) costs nothing for long.

Only a few safe attributes are kept (ids, counts, scores, model names, statuses: see `SAFE_ATTRIBUTES`);
database and Redis calls are not stored one by one but counted on the stage that made them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

logger = logging.getLogger(__name__)

MAX_TRACES = 512
MAX_SPANS = 400
MAX_EXPECTED = 2048
MAX_STRING = 80

OUR_SCOPE = "helpdesk"
# Spans worth a bar in the waterfall: ours, Celery's (the queue hop and the worker's run) and outbound
# HTTP (the model, remote embeddings). Database and Redis calls are counted on their stage instead.
KEPT_SCOPES = (OUR_SCOPE, "opentelemetry.instrumentation.celery", "opentelemetry.instrumentation.httpx")
COUNTED_SCOPES = {
    "opentelemetry.instrumentation.psycopg": "helpdesk.db_calls",
    "opentelemetry.instrumentation.dbapi": "helpdesk.db_calls",
    "opentelemetry.instrumentation.redis": "helpdesk.redis_calls",
}
# Attributes of other libraries' spans that are safe to store (never a URL, a statement or arguments).
SAFE_ATTRIBUTES = frozenset(
    {
        "celery.task_name",
        "celery.state",
        "celery.action",
        "http.request.method",
        "http.method",
        "http.response.status_code",
        "http.status_code",
        "server.address",
    }
)
# Our own spans put only ids, counts, scores, model names and statuses under these prefixes.
SAFE_PREFIXES = ("helpdesk.", "gen_ai.")

Attribute = str | int | float | bool
Sink = Callable[[str, list[dict[str, Any]]], None]


@dataclass
class SpanRecord:
    """What is kept of one finished span."""

    trace_id: int
    span_id: int
    parent_id: int | None
    name: str
    scope: str
    start_ns: int
    end_ns: int
    status: str  # "ok" | "error" | "unset"
    attributes: dict[str, Attribute] = field(default_factory=dict)


def _safe_attributes(span: ReadableSpan, scope: str) -> dict[str, Attribute]:
    kept: dict[str, Attribute] = {}
    for key, value in (span.attributes or {}).items():
        ours = scope == OUR_SCOPE and key.startswith(SAFE_PREFIXES)
        if not (ours or key in SAFE_ATTRIBUTES):
            continue
        if isinstance(value, bool | int | float):
            kept[key] = value
        elif isinstance(value, str):
            kept[key] = value[:MAX_STRING]
    return kept


def span_record(span: ReadableSpan) -> SpanRecord | None:
    context = span.context
    if context is None or span.start_time is None or span.end_time is None:
        return None
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    code = span.status.status_code
    status = "error" if code is StatusCode.ERROR else "ok" if code is StatusCode.OK else "unset"
    counted = scope in COUNTED_SCOPES
    return SpanRecord(
        trace_id=context.trace_id,
        span_id=context.span_id,
        parent_id=span.parent.span_id if span.parent is not None else None,
        name=span.name,
        scope=scope,
        start_ns=span.start_time,
        end_ns=span.end_time,
        status=status,
        attributes={} if counted else _safe_attributes(span, scope),
    )


def spans_compact(records: Iterable[SpanRecord]) -> list[dict[str, Any]]:
    """The stored form: the spans worth a bar, each with the database and Redis calls made under it
    (counted on its nearest kept ancestor in the same batch), in start order."""
    records = list(records)
    by_id = {r.span_id: r for r in records}
    kept = {r.span_id: r for r in records if r.scope in KEPT_SCOPES}
    counts: dict[int, dict[str, int]] = {}
    for record in records:
        counter = COUNTED_SCOPES.get(record.scope)
        if counter is None:
            continue
        parent = record.parent_id
        seen = 0
        while parent is not None and parent not in kept and parent in by_id and seen < MAX_SPANS:
            parent, seen = by_id[parent].parent_id, seen + 1
        if parent is not None and parent in kept:
            bucket = counts.setdefault(parent, {})
            bucket[counter] = bucket.get(counter, 0) + 1
    rows = []
    for record in sorted(kept.values(), key=lambda r: r.start_ns):
        # A kept span's parent may be a dropped one (a Django request): point at the nearest kept one.
        parent = record.parent_id
        seen = 0
        while parent is not None and parent not in kept and parent in by_id and seen < MAX_SPANS:
            parent, seen = by_id[parent].parent_id, seen + 1
        rows.append(
            {
                "trace_id": format_trace_id(record.trace_id),
                "span_id": format_span_id(record.span_id),
                "parent_id": format_span_id(parent) if parent is not None else None,
                "name": record.name[:MAX_STRING],
                "start_ms": round(record.start_ns / 1e6, 3),
                "duration_ms": round((record.end_ns - record.start_ns) / 1e6, 3),
                "status": record.status,
                "attributes": {**record.attributes, **counts.get(record.span_id, {})},
            }
        )
    return rows


class TurnRecorder(SpanProcessor):
    """Keeps finished spans by trace until a turn claims them (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffers: OrderedDict[int, list[SpanRecord]] = OrderedDict()
        self._expected: OrderedDict[int, None] = OrderedDict()
        # Traces a turn of this process has claimed: what ends after (a push finishing late) is not kept.
        self._claimed: OrderedDict[int, None] = OrderedDict()
        self.sink: Sink | None = None

    # ---- the turn's side

    def expect(self, trace_id: int) -> None:
        """A turn of this process will claim this trace's spans: keep them when its root span ends."""
        with self._lock:
            self._expected[trace_id] = None
            self._expected.move_to_end(trace_id)
            while len(self._expected) > MAX_EXPECTED:
                self._expected.popitem(last=False)

    def claim(self, trace_id: int) -> list[SpanRecord]:
        """The trace's spans finished so far, handed over once; later ones go to the sink."""
        with self._lock:
            self._expected.pop(trace_id, None)
            self._claimed[trace_id] = None
            while len(self._claimed) > MAX_EXPECTED:
                self._claimed.popitem(last=False)
            return self._buffers.pop(trace_id, [])

    def buffered_traces(self) -> int:
        with self._lock:
            return len(self._buffers)

    # ---- SpanProcessor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        record = span_record(span)
        if record is None:
            return
        flush: list[SpanRecord] | None = None
        trace_id = record.trace_id
        parent = span.parent
        task_of_another_process = parent is not None and parent.is_remote and span.kind is SpanKind.CONSUMER
        with self._lock:
            if trace_id in self._claimed and not task_of_another_process:
                return
            buffer = self._buffers.get(trace_id)
            if buffer is None:
                buffer = self._buffers[trace_id] = []
                while len(self._buffers) > MAX_TRACES:
                    self._buffers.popitem(last=False)
            if len(buffer) < MAX_SPANS:
                buffer.append(record)
            if trace_id in self._expected:
                pass
            elif parent is None:
                del self._buffers[trace_id]  # a local trace nobody will claim (an HTTP request)
            elif task_of_another_process:
                flush = self._buffers.pop(trace_id)  # a task of a turn another process owns
        if flush and self.sink is not None:
            try:
                self.sink(format_trace_id(trace_id), spans_compact(flush))
            except Exception as exc:  # the waterfall is a convenience: a task never fails for it
                logger.warning(
                    "spans of trace %s not stored: %s", format_trace_id(trace_id), exc.__class__.__name__
                )

    def shutdown(self) -> None:
        with self._lock:
            self._buffers.clear()
            self._expected.clear()
            self._claimed.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
