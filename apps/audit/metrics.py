"""Prometheus metrics shared by every web and worker process, kept in Redis (docs/architecture/metrics.md).

A scrape reaches one random process behind the load balancer, so counts kept in process memory would show
that process's share only. Every process adds into one Redis hash instead, and `/metrics` on any of them
renders the whole installation's totals.

Recording is best-effort: one pipelined round trip per observation, and a Redis failure is logged (at most
once a minute) and swallowed, never raised into the reply that is being measured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.core.errors import TemporarilyUnavailable

logger = logging.getLogger(__name__)

# The cache's database index (helpdesk/settings/base.py), under a prefix of its own; bump the version
# when the field layout or the buckets change, so old and new layouts never mix in one series.
REDIS_DB = 3
REDIS_KEY = "metrics:v1"

REPLY_STATUSES = frozenset({"complete", "interrupted", "failed", "superseded", "abstained", "refused"})
# CONTRACTS.md §1 error codes; extend both together (tests check apps.core.errors against this set).
ERROR_CODES = frozenset(
    {
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "rate_limited",
        "message_too_long",
        "llm_unavailable",
        "temporarily_unavailable",
        "interrupted",
        "conflict",
        # Voice uploads refused (apps/voice/errors.py).
        "voice_too_large",
        "voice_too_long",
        "voice_format",
        "voice_empty",
        "voice_disabled",
    }
)
OTHER = "other"

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)
TPS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0)

# Recording blocks its caller (often an event loop) for one round trip: keep a stalled Redis from costing
# more than this, and after a failure skip recording for a while instead of paying the timeout per reply.
RECORD_TIMEOUT_SECONDS = 0.25
RENDER_TIMEOUT_SECONDS = 2.0
SKIP_AFTER_FAILURE_SECONDS = 5.0
WARN_INTERVAL_SECONDS = 60.0
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Family:
    name: str
    type: str  # "counter" | "histogram"
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


TTFT = Family(
    "helpdesk_assistant_time_to_first_token_seconds",
    "histogram",
    "Seconds from the customer's message to the first streamed token of the assistant's reply.",
    ("tenant",),
    TTFT_BUCKETS,
)
TPS = Family(
    "helpdesk_assistant_tokens_per_second",
    "histogram",
    "Completion tokens per second while the assistant's reply streamed.",
    ("tenant",),
    TPS_BUCKETS,
)
LLM_TOKENS = Family(
    "helpdesk_llm_tokens_total",
    "counter",
    "Tokens sent to the LLM (kind=prompt) and received from it (kind=completion).",
    ("tenant", "kind"),
)
REPLIES = Family(
    "helpdesk_assistant_replies_total",
    "counter",
    "Assistant replies by final status.",
    ("tenant", "status"),
)
ERRORS = Family(
    "helpdesk_errors_total",
    "counter",
    "Errors shown to clients, by stable error code (CONTRACTS.md).",
    ("tenant", "code"),
)
ABSTENTIONS = Family(
    "helpdesk_assistant_abstentions_total",
    "counter",
    "Questions the assistant declined to answer because the sources did not hold the answer.",
    ("tenant",),
)
TOOL_RUNS = Family(
    "helpdesk_tool_runs_total",
    "counter",
    "Tool calls by final status (refused, rejected, done, failed); tools nobody registered count as other.",
    ("tenant", "tool", "status"),
)
TOOL_SECONDS = Family(
    "helpdesk_tool_run_seconds",
    "histogram",
    "Seconds a tool run spent in the worker, from its claim to its result.",
    ("tenant",),
    TTFT_BUCKETS,
)
WAIT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0)
HANDOFFS = Family(
    "helpdesk_handoffs_total",
    "counter",
    "Conversations handed to people, by reason (apps.conversations.models.HandoffReason).",
    ("tenant", "reason"),
)
CLAIM_SECONDS = Family(
    "helpdesk_handoff_claim_seconds",
    "histogram",
    "Seconds a handoff waited in the queue before an agent claimed it.",
    ("tenant",),
    WAIT_BUCKETS,
)
CASE_FILE_SECONDS = Family(
    "helpdesk_case_file_seconds",
    "histogram",
    "Seconds from a handoff to its case file being ready.",
    ("tenant",),
    TTFT_BUCKETS,
)
RATINGS = Family(
    "helpdesk_csat_ratings_total",
    "counter",
    "Customer satisfaction ratings, by score (1 to 5).",
    ("tenant", "score"),
)
ANSWER_CACHE_RESULTS = frozenset({"hit_exact", "hit_neighbour", "miss", "store"})
ANSWER_CACHE = Family(
    "helpdesk_answer_cache_total",
    "counter",
    "Answer cache lookups by result (hit_exact, hit_neighbour, miss) and answers stored (store).",
    ("tenant", "result"),
)
COMPOSED_SENTENCES = Family(
    "helpdesk_composed_sentences_total",
    "counter",
    "Sentences a model composed in the compose style: shown (supported by the evidence) or dropped.",
    ("tenant", "result"),
)
# Per model endpoint (apps.llm.routing): the label is "model@host", one per registered endpoint plus the
# configured one, so the number of series stays bounded by what operators and admins register.
MODEL_REPLIES = Family(
    "helpdesk_model_replies_total",
    "counter",
    "Assistant replies by the model endpoint that answered the conversation and final status.",
    ("endpoint", "status"),
)
MODEL_FIRST_CONTENT = Family(
    "helpdesk_model_time_to_first_content_seconds",
    "histogram",
    "Seconds from the customer's message to the first content of the reply, by model endpoint.",
    ("endpoint",),
    TTFT_BUCKETS,
)
MODEL_ERRORS = Family(
    "helpdesk_model_errors_total",
    "counter",
    "Replies that ended with an error the customer was shown, by model endpoint and stable error code.",
    ("endpoint", "code"),
)
MODEL_ABSTENTIONS = Family(
    "helpdesk_model_abstentions_total",
    "counter",
    "Questions the assistant declined to answer, by the model endpoint of the conversation.",
    ("endpoint",),
)
MODEL_COMPOSED_SENTENCES = Family(
    "helpdesk_model_composed_sentences_total",
    "counter",
    "Sentences a model endpoint composed: shown (supported by the evidence) or dropped (unsupported).",
    ("endpoint", "result"),
)
FAMILIES = (
    TTFT,
    TPS,
    LLM_TOKENS,
    REPLIES,
    ERRORS,
    ABSTENTIONS,
    TOOL_RUNS,
    TOOL_SECONDS,
    HANDOFFS,
    CLAIM_SECONDS,
    CASE_FILE_SECONDS,
    RATINGS,
    ANSWER_CACHE,
    COMPOSED_SENTENCES,
    MODEL_REPLIES,
    MODEL_FIRST_CONTENT,
    MODEL_ERRORS,
    MODEL_ABSTENTIONS,
    MODEL_COMPOSED_SENTENCES,
)
_BY_NAME = {family.name: family for family in FAMILIES}

# Hash field parts: a counter's value, or a histogram's sum; any other part is a bucket's `le`.
_COUNTER = ""
_SUM = "sum"


# --- recording -----------------------------------------------------------------------------------------


def reply_observe(
    *,
    tenant: str,
    status: str,
    ttft_seconds: float | None,
    tokens_per_second: float | None,
    prompt_tokens: int,
    completion_tokens: int,
) -> None:
    """One finished assistant reply. None (or a negative or non-finite value) skips that histogram."""
    status = status if status in REPLY_STATUSES else OTHER
    ops: list[tuple[str, int | float]] = [
        (_field(REPLIES.name, (tenant, status)), 1),
        (_field(LLM_TOKENS.name, (tenant, "prompt")), max(0, int(prompt_tokens))),
        (_field(LLM_TOKENS.name, (tenant, "completion")), max(0, int(completion_tokens))),
    ]
    ops += _histogram_ops(TTFT, tenant, ttft_seconds)
    ops += _histogram_ops(TPS, tenant, tokens_per_second)
    _record(ops)


def error_count(*, tenant: str, code: str) -> None:
    """One error a client was shown, by its CONTRACTS.md code (unknown codes count as `other`)."""
    _record([(_field(ERRORS.name, (tenant, code if code in ERROR_CODES else OTHER)), 1)])


def abstention_count(*, tenant: str) -> None:
    _record([(_field(ABSTENTIONS.name, (tenant,)), 1)])


def tool_run_count(*, tenant: str, tool: str, status: str, seconds: float | None = None) -> None:
    """One tool call that reached a final status (`tool` is a registered name or `other`)."""
    ops: list[tuple[str, int | float]] = [(_field(TOOL_RUNS.name, (tenant, tool, status)), 1)]
    ops += _histogram_ops(TOOL_SECONDS, tenant, seconds)
    _record(ops)


def handoff_count(*, tenant: str, reason: str) -> None:
    _record([(_field(HANDOFFS.name, (tenant, reason)), 1)])


def handoff_claim_observe(*, tenant: str, seconds: float) -> None:
    _record(_histogram_ops(CLAIM_SECONDS, tenant, seconds))


def case_file_observe(*, tenant: str, seconds: float) -> None:
    _record(_histogram_ops(CASE_FILE_SECONDS, tenant, seconds))


def rating_count(*, tenant: str, score: int) -> None:
    _record([(_field(RATINGS.name, (tenant, str(score))), 1)])


def answer_cache_count(*, tenant: str, result: str) -> None:
    """One answer cache lookup (hit_exact, hit_neighbour, miss) or store; anything else counts as other."""
    _record([(_field(ANSWER_CACHE.name, (tenant, result if result in ANSWER_CACHE_RESULTS else OTHER)), 1)])


def composed_sentences_count(*, tenant: str, shown: int, dropped: int) -> None:
    """The sentences one compose-style answer's model wrote: shown after the support check, or dropped."""
    ops: list[tuple[str, int | float]] = []
    if shown:
        ops.append((_field(COMPOSED_SENTENCES.name, (tenant, "shown")), shown))
    if dropped:
        ops.append((_field(COMPOSED_SENTENCES.name, (tenant, "dropped")), dropped))
    if ops:
        _record(ops)


def model_reply_observe(
    *,
    endpoint: str,
    status: str,
    ttft_seconds: float | None,
    shown: int = 0,
    dropped: int = 0,
    abstained: bool = False,
    error_code: str = "",
) -> None:
    """One finished reply of a conversation answered by the model endpoint labelled `endpoint`
    ("model@host", apps.llm.routing.Route.label): its status, time to first content, the sentences the
    model composed (shown or dropped), whether it abstained and the error code it showed, if any."""
    status = status if status in REPLY_STATUSES else OTHER
    ops: list[tuple[str, int | float]] = [(_field(MODEL_REPLIES.name, (endpoint, status)), 1)]
    ops += _histogram_ops(MODEL_FIRST_CONTENT, endpoint, ttft_seconds)
    if abstained:
        ops.append((_field(MODEL_ABSTENTIONS.name, (endpoint,)), 1))
    if error_code:
        code = error_code if error_code in ERROR_CODES else OTHER
        ops.append((_field(MODEL_ERRORS.name, (endpoint, code)), 1))
    if shown > 0:
        ops.append((_field(MODEL_COMPOSED_SENTENCES.name, (endpoint, "shown")), shown))
    if dropped > 0:
        ops.append((_field(MODEL_COMPOSED_SENTENCES.name, (endpoint, "dropped")), dropped))
    _record(ops)


def _histogram_ops(family: Family, tenant: str, value: float | None) -> list[tuple[str, int | float]]:
    if value is None or not math.isfinite(value) or value < 0:
        return []
    index = bisect_left(family.buckets, value)  # first bound >= value: `le` is inclusive
    le = _format_float(family.buckets[index]) if index < len(family.buckets) else "+Inf"
    # Buckets are stored un-cumulated and added up at render time: one increment here, not up to 17.
    return [(_field(family.name, (tenant,), le), 1), (_field(family.name, (tenant,), _SUM), float(value))]


@lru_cache(maxsize=4096)
def _field(family: str, labels: tuple[str, ...], part: str = _COUNTER) -> str:
    # JSON keeps any label value (quotes, newlines, separators) unambiguous; escaping for the exposition
    # format happens once, at render time.
    return json.dumps([family, list(labels), part], separators=(",", ":"), ensure_ascii=False)


class _Sink:
    """This process's connections to the metrics hash for one Redis URL, and its failure back-off."""

    def __init__(self, url: str) -> None:
        self.record_client = _client(url, RECORD_TIMEOUT_SECONDS)
        self.render_client = _client(url, RENDER_TIMEOUT_SECONDS)
        self.skip_until = 0.0


def _client(url: str, timeout: float) -> redis.Redis:
    # No retries: redis-py's default retries would multiply the time a stalled Redis costs the caller.
    return redis.Redis.from_url(
        url,
        db=REDIS_DB,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )


_sinks: dict[str, _Sink] = {}
_sinks_lock = threading.Lock()
_last_warning = -math.inf


def _sink() -> _Sink:
    # Keyed by URL so tests (and settings overrides) that repoint REDIS_URL get their own connections.
    url: str = settings.REDIS_URL
    sink = _sinks.get(url)
    if sink is None:
        with _sinks_lock:
            sink = _sinks.setdefault(url, _Sink(url))
    return sink


def _record(ops: Iterable[tuple[str, int | float]]) -> None:
    try:
        sink = _sink()
        if time.monotonic() < sink.skip_until:
            return
        # MULTI/EXEC: a scrape sees a reply's increments all or none; still a single round trip.
        pipe = sink.record_client.pipeline(transaction=True)
        for field, amount in ops:
            if isinstance(amount, float):
                pipe.hincrbyfloat(REDIS_KEY, field, amount)
            else:
                pipe.hincrby(REDIS_KEY, field, amount)
        pipe.execute()
    except Exception as exc:  # best-effort: never fail the reply being measured
        _on_record_failure(exc)


def _on_record_failure(exc: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    with contextlib.suppress(Exception):  # settings unreadable: there is no sink to back off
        _sink().skip_until = now + SKIP_AFTER_FAILURE_SECONDS
    if now - _last_warning >= WARN_INTERVAL_SECONDS:
        _last_warning = now
        logger.warning(
            "metrics not recorded: Redis unavailable (%s: %s); recording resumes when it answers, "
            "further failures are not logged for %g s",
            exc.__class__.__name__,
            exc,
            WARN_INTERVAL_SECONDS,
        )


def metrics_reset() -> None:
    """Tests only: forget every recorded value and this process's back-off and warning state."""
    global _last_warning
    _sink().render_client.delete(REDIS_KEY)
    for sink in _sinks.values():
        sink.skip_until = 0.0
    _last_warning = -math.inf


# --- rendering -----------------------------------------------------------------------------------------


def metrics_render() -> str:
    """Every family in the Prometheus text format 0.0.4; raises TemporarilyUnavailable without Redis."""
    try:
        raw: dict[bytes, bytes] = _sink().render_client.hgetall(REDIS_KEY)  # type: ignore[assignment]
    except redis.RedisError as exc:
        logger.warning("metrics not rendered: Redis unavailable (%s)", exc.__class__.__name__)
        raise TemporarilyUnavailable(
            "Metrics are briefly unavailable: their store does not answer.", retry_after=RETRY_AFTER_SECONDS
        ) from exc
    counters: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
    buckets: dict[str, dict[tuple[str, ...], dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    sums: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
    for raw_field, raw_value in raw.items():
        parsed = _parse_field(raw_field)
        if parsed is None:
            continue
        family, labels, part = parsed
        value = float(raw_value)
        if family.type == "counter":
            counters[family.name][labels] = value
        elif part == _SUM:
            sums[family.name][labels] = value
        else:
            bound = math.inf if part == "+Inf" else float(part)
            buckets[family.name][labels][bound] = value

    lines: list[str] = []
    for family in FAMILIES:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        if family.type == "counter":
            for labels, value in sorted(counters[family.name].items()):
                lines.append(f"{family.name}{_labels(family.labels, labels)} {_format_value(value)}")
            continue
        series = set(buckets[family.name]) | set(sums[family.name])
        for labels in sorted(series):
            counts = buckets[family.name][labels]
            # Stored buckets are per-bucket counts; the format wants cumulative ones. A `le` no longer in
            # the configured bounds still adds to every bucket above it, so `+Inf` always equals `_count`.
            bounds = sorted(set(family.buckets) | set(counts) | {math.inf})
            running = 0.0
            for bound in bounds:
                running += counts.get(bound, 0.0)
                label_text = _labels((*family.labels, "le"), (*labels, _format_float(bound)))
                lines.append(f"{family.name}_bucket{label_text} {_format_value(running)}")
            base = _labels(family.labels, labels)
            lines.append(f"{family.name}_sum{base} {_format_value(sums[family.name].get(labels, 0.0))}")
            lines.append(f"{family.name}_count{base} {_format_value(running)}")
    return "\n".join(lines) + "\n"


def _parse_field(raw_field: bytes) -> tuple[Family, tuple[str, ...], str] | None:
    """A hash field back into (family, label values, part); None for one this version does not know."""
    try:
        name, labels, part = json.loads(raw_field)
        family = _BY_NAME[name]
        values = tuple(str(v) for v in labels)
    except (ValueError, TypeError, KeyError):
        return None
    if len(values) != len(family.labels):
        return None
    if family.type == "counter" and part != _COUNTER:
        return None
    if family.type == "histogram" and part != _SUM:
        try:
            float(part)
        except (TypeError, ValueError):
            return None
    return family, values, str(part)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return "{" + ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_float(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _format_value(value: float) -> str:
    # Counts are whole numbers: print them as such (2**53 is where floats stop holding every integer).
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return _format_float(value)
