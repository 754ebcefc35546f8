"""Streaming chat completions with bounded retries, first-token and idle timeouts, and a circuit breaker.

`chat_stream` hands each piece of text to `on_delta` as it arrives and returns a `StreamOutcome`, or
raises `LLMCallError` with a `kind` the caller maps to what the customer sees:

- `unavailable`: no answer started: the endpoint refused, failed or stayed silent on every attempt
  (`LLM_MAX_ATTEMPTS`), rejected the request outright, or no stream slot came free within
  `LLM_QUEUE_TIMEOUT_SECONDS`.
- `circuit_open`: the breaker for this endpoint is open; no request was made.
- `cut`: text was delivered, then the stream broke, idled or ended without a finish_reason. Never
  retried here: a second attempt would repeat the text the customer already saw.
- `refused`: the model refused or the server's content filter stopped it. Not an endpoint failure.

Retries happen only before the first content delta. Nothing here logs message content: details are
built from status codes, exception types and timings only.

A call waits its turn: while `LLM_MAX_CONCURRENT_STREAMS` streams of this process are on the endpoint, it
queues (apps/llm/breaker.py, `StreamQueue`) and `on_wait(position)` tells the caller its place; the
first-token timeout starts only once it has a slot. A busy endpoint is not a broken one: an HTTP 503 or 429,
or a first-token or idle timeout while other streams of this process were on the endpoint, is retried or
reported like any failure but does not count towards the circuit breaker.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import openai
from django.conf import settings
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from apps.llm.breaker import (
    BUSY_STATUS,
    Admission,
    CircuitBreaker,
    OnWait,
    QueueTimeout,
    StreamQueue,
    breaker_for,
    stream_queue_for,
)
from apps.llm.clients import async_llm_client

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
# Conflict and request-timeout answers are transient by definition; every 5xx is retried too.
_RETRYABLE_STATUS = frozenset({408, 409, 429})
# "Not now", not "broken": llama-server answers 503 while it loads the model; hosted APIs 503 or 429 when
# overloaded or over quota.
# Defaults of settings that may be unset: the embedded server's parallel slots
# (helpdesk/stack/embedded.py, LLM_PARALLEL_SLOTS), and how long a call may wait for one.
DEFAULT_MAX_CONCURRENT_STREAMS = 4
DEFAULT_QUEUE_TIMEOUT_SECONDS = 60.0
_MAX_BACKOFF_SECONDS = 5.0

ErrorKind = Literal["unavailable", "circuit_open", "cut", "refused"]


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class StreamOutcome:
    text: str  # everything delivered through on_delta
    finish_reason: str | None
    prompt_tokens: int | None  # None when the server does not report usage
    completion_tokens: int  # the server's count, else the number of content chunks
    ttft_seconds: float  # start of the successful attempt -> first content delta (-> end if none came)
    total_seconds: float  # start of the first attempt -> end
    attempts: int
    model: str
    endpoint: str  # base URL
    queued_seconds: float = 0.0  # waiting for a stream slot, before the first attempt


class LLMCallError(Exception):
    def __init__(self, kind: ErrorKind, *, detail: str, partial_text: str = "", attempts: int = 0) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: ErrorKind = kind
        self.detail = detail  # safe for logs: never message content
        self.partial_text = partial_text
        self.attempts = attempts


class _EndpointFault(Exception):
    """The attempt failed before any text was delivered, for a reason another attempt may not meet.

    `busy`: the server said it is loading or overloaded. `silent`: nothing came in time, which counts
    against the endpoint only if no other stream of this process was using it meanwhile."""

    def __init__(self, detail: str, *, busy: bool = False, silent: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.busy = busy
        self.silent = silent


class _RequestRejected(_EndpointFault):
    """A 4xx that another attempt would get too (bad request, wrong key, unknown model)."""


class _Cut(_EndpointFault):
    pass


class _Refused(_EndpointFault):
    pass


@dataclass
class _Attempt:
    started: float
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft: float | None = None

    @property
    def delivered(self) -> bool:
        return bool(self.parts)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def interrupted(self, detail: str, *, silent: bool = False) -> _EndpointFault:
        return _Cut(detail, silent=silent) if self.delivered else _EndpointFault(detail, silent=silent)


async def chat_stream(
    messages: Sequence[ChatMessage],
    *,
    on_delta: Callable[[str], Awaitable[None]],
    max_tokens: int,
    temperature: float = 0.2,
    stop: Sequence[str] = (),
    model: str | None = None,
    base_url: str | None = None,
    on_wait: OnWait | None = None,
    api_key: str | None = None,
) -> StreamOutcome:
    """`api_key` None: LLM_API_KEY; a registered endpoint's route passes its own (apps.llm.routing).

    `on_wait(position)`, if given, is awaited while the call waits for a stream slot: when it starts
    waiting, whenever its place in the queue changes (1 = next), and every few seconds otherwise. It is not
    called when a slot is free at once. Whatever it raises ends the call, as `on_delta`'s errors do."""
    model = model or settings.LLM_MODEL
    endpoint = base_url or settings.LLM_BASE_URL
    breaker = breaker_for(endpoint, model)
    if breaker.state == "open":
        # Fail fast without queueing behind calls that are about to fail fast too.
        logger.warning("llm call to %s model %s not made: circuit open", endpoint, model)
        raise LLMCallError("circuit_open", detail=f"circuit open for {breaker.key}")
    queue = stream_queue_for(endpoint)
    limit = int(getattr(settings, "LLM_MAX_CONCURRENT_STREAMS", DEFAULT_MAX_CONCURRENT_STREAMS))
    queue_timeout = float(getattr(settings, "LLM_QUEUE_TIMEOUT_SECONDS", DEFAULT_QUEUE_TIMEOUT_SECONDS))
    queued_at = time.monotonic()
    try:
        await queue.acquire(limit=limit, timeout=queue_timeout, on_wait=on_wait)
    except QueueTimeout as exc:
        # The endpoint is busy with this process's own streams: no verdict on its health.
        logger.warning("llm call to %s model %s not made: %s", endpoint, model, exc.detail)
        raise LLMCallError("unavailable", detail=exc.detail) from None
    started = time.monotonic()
    waited = started - queued_at
    if waited >= 0.05:
        logger.info("llm call to %s model %s got a stream slot after %.2fs", endpoint, model, waited)
    try:
        return await _chat_stream(
            messages,
            on_delta=on_delta,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            model=model,
            endpoint=endpoint,
            started=started,
            queued_seconds=waited,
            api_key=api_key,
        )
    finally:
        queue.release()


async def _chat_stream(
    messages: Sequence[ChatMessage],
    *,
    on_delta: Callable[[str], Awaitable[None]],
    max_tokens: int,
    temperature: float,
    stop: Sequence[str],
    model: str,
    endpoint: str,
    started: float,
    queued_seconds: float,
    api_key: str | None = None,
) -> StreamOutcome:
    """`chat_stream` once it holds a stream slot: the attempts, the breaker, the outcome."""
    max_attempts = max(1, int(settings.LLM_MAX_ATTEMPTS))
    breaker = breaker_for(endpoint, model)
    queue = stream_queue_for(endpoint)
    params = [message_param(m) for m in messages]
    attempts = 0
    last_detail = ""

    while True:
        admission = breaker.allow()
        if admission is None:
            if attempts == 0:
                logger.warning("llm call to %s model %s not made: circuit open", endpoint, model)
                raise LLMCallError("circuit_open", detail=f"circuit open for {breaker.key}")
            detail = f"{last_detail}; then the circuit opened"
            logger.warning(
                "llm call to %s model %s gave up after %d attempts: %s", endpoint, model, attempts, detail
            )
            raise LLMCallError("unavailable", detail=detail, attempts=attempts)
        attempts += 1
        attempt = _Attempt(started=time.monotonic())
        # Other streams of this process on the endpoint while the attempt ran: then a silence is the server
        # working on them, not a fault.
        others_before, started_before = queue.in_flight - 1, queue.started
        try:
            await _stream_once(
                async_llm_client(base_url=endpoint, api_key=api_key),
                attempt,
                on_delta,
                model=model,
                params=params,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop),
            )
        except _Refused as exc:
            breaker.record_success()  # the endpoint works; the model declined
            logger.info("llm call to %s model %s refused: %s", endpoint, model, exc.detail)
            raise LLMCallError(
                "refused", detail=exc.detail, partial_text=attempt.text, attempts=attempts
            ) from None
        except _Cut as exc:
            _verdict(breaker, admission, exc, shared=_shared(queue, others_before, started_before))
            logger.warning(
                "llm stream from %s model %s cut after %d chunks (%d chars): %s",
                endpoint,
                model,
                len(attempt.parts),
                len(attempt.text),
                exc.detail,
            )
            raise LLMCallError(
                "cut", detail=exc.detail, partial_text=attempt.text, attempts=attempts
            ) from None
        except _RequestRejected as exc:
            breaker.release(admission)  # says nothing about the endpoint's health
            logger.error("llm request to %s model %s rejected: %s", endpoint, model, exc.detail)
            raise LLMCallError("unavailable", detail=exc.detail, attempts=attempts) from None
        except _EndpointFault as exc:
            busy = _verdict(breaker, admission, exc, shared=_shared(queue, others_before, started_before))
            last_detail = exc.detail + (" (the endpoint was busy)" if busy else "")
            if attempts >= max_attempts:
                logger.warning(
                    "llm call to %s model %s gave up after %d attempts: %s",
                    endpoint,
                    model,
                    attempts,
                    last_detail,
                )
                raise LLMCallError("unavailable", detail=last_detail, attempts=attempts) from None
            delay = _backoff(attempts)
            logger.warning(
                "llm attempt %d/%d to %s model %s failed: %s; retrying in %.2fs",
                attempts,
                max_attempts,
                endpoint,
                model,
                last_detail,
                delay,
            )
            await asyncio.sleep(delay)
            continue
        except BaseException:
            # Cancelled by the caller, or on_delta failed: no verdict on the endpoint.
            breaker.release(admission)
            raise
        breaker.record_success()
        break

    finished = time.monotonic()
    outcome = StreamOutcome(
        text=attempt.text,
        finish_reason=attempt.finish_reason,
        prompt_tokens=attempt.prompt_tokens,
        completion_tokens=(
            attempt.completion_tokens if attempt.completion_tokens is not None else len(attempt.parts)
        ),
        ttft_seconds=attempt.ttft if attempt.ttft is not None else finished - attempt.started,
        total_seconds=finished - started,
        attempts=attempts,
        model=model,
        endpoint=endpoint,
        queued_seconds=round(queued_seconds, 3),
    )
    logger.info(
        "llm stream from %s model %s done: finish=%s attempts=%d ttft=%.3fs total=%.3fs tokens=%s+%d",
        endpoint,
        model,
        outcome.finish_reason,
        outcome.attempts,
        outcome.ttft_seconds,
        outcome.total_seconds,
        outcome.prompt_tokens,
        outcome.completion_tokens,
    )
    return outcome


async def _stream_once(
    client: openai.AsyncOpenAI,
    attempt: _Attempt,
    on_delta: Callable[[str], Awaitable[None]],
    *,
    model: str,
    params: list[ChatCompletionMessageParam],
    max_tokens: int,
    temperature: float,
    stop: list[str],
) -> None:
    """One request. Raises an `_EndpointFault` subclass; whatever else is raised (cancellation,
    `on_delta`'s errors) propagates after the HTTP stream is closed."""
    first_token_timeout = float(settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS)
    idle_timeout = float(settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS)
    loop = asyncio.get_running_loop()
    # Both deadlines are enforced here; the HTTP client's read timeout is only a backstop behind them.
    first_token_deadline = loop.time() + first_token_timeout
    backstop = max(first_token_timeout, idle_timeout) + 1.0
    stream = None
    try:
        try:
            async with asyncio.timeout_at(first_token_deadline):
                stream = await client.chat.completions.create(
                    model=model,
                    messages=params,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stream=True,
                    # Most servers accept at most 4 stop sequences.
                    stop=stop[:4] or openai.omit,
                    # Servers that ignore it just send no usage chunk: then the chunks are counted.
                    stream_options={"include_usage": True},
                    timeout=openai.Timeout(backstop, connect=CONNECT_TIMEOUT_SECONDS),
                )
        except TimeoutError:
            raise _EndpointFault(f"no response within {first_token_timeout:g}s", silent=True) from None
        except openai.APIError as exc:
            raise _classify(exc) from None

        while True:
            if attempt.delivered:
                deadline, waiting_for = loop.time() + idle_timeout, f"no chunk for {idle_timeout:g}s"
            else:
                deadline, waiting_for = (
                    first_token_deadline,
                    f"no first token within {first_token_timeout:g}s",
                )
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise attempt.interrupted(waiting_for, silent=True) from None
            except openai.APIError as exc:
                if attempt.finish_reason is not None:
                    break  # the answer is whole; only the usage chunk or [DONE] was lost
                raise attempt.interrupted(describe_error(exc)) from None
            except ValueError as exc:  # undecodable event data
                raise attempt.interrupted(f"malformed chunk ({type(exc).__name__})") from None
            await _consume(chunk, attempt, on_delta)
        if attempt.finish_reason is None:
            raise attempt.interrupted("the stream ended without a finish_reason")
    finally:
        if stream is not None:
            # Closing an unfinished response drops the connection, which tells the server to stop.
            await stream.close()


async def _consume(
    chunk: ChatCompletionChunk, attempt: _Attempt, on_delta: Callable[[str], Awaitable[None]]
) -> None:
    if chunk.usage is not None:
        attempt.prompt_tokens = chunk.usage.prompt_tokens
        attempt.completion_tokens = chunk.usage.completion_tokens
    if not chunk.choices:
        return
    choice = chunk.choices[0]
    if getattr(choice.delta, "refusal", None):
        raise _Refused("the model refused (delta.refusal)")
    content = choice.delta.content
    if content:
        if attempt.ttft is None:
            attempt.ttft = time.monotonic() - attempt.started
        attempt.parts.append(content)
        await on_delta(content)
    if choice.finish_reason == "content_filter":
        raise _Refused("stopped by the server's content filter")
    if choice.finish_reason:
        attempt.finish_reason = choice.finish_reason


def _classify(exc: openai.APIError) -> _EndpointFault:
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500 or status in _RETRYABLE_STATUS:
            return _EndpointFault(f"HTTP {status}", busy=status in BUSY_STATUS)
        return _RequestRejected(f"HTTP {status}")
    return _EndpointFault(describe_error(exc))


def _shared(queue: StreamQueue, others_before: int, started_before: int) -> bool:
    """Whether another stream of this process used the endpoint during the attempt."""
    return others_before > 0 or queue.in_flight > 1 or queue.started != started_before


def _verdict(breaker: CircuitBreaker, admission: Admission, fault: _EndpointFault, *, shared: bool) -> bool:
    """Records a failed attempt against the endpoint unless the endpoint was only busy; True if busy."""
    busy = fault.busy or (fault.silent and shared)
    if busy:
        breaker.release(admission)
    else:
        breaker.record_failure()
    return busy


def describe_error(exc: BaseException) -> str:
    """A log-safe description: the server's own error text is left out, it may echo the request."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return "request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return f"connection failed ({type(cause).__name__}: {cause})"[:200] if cause else "connection failed"
    if isinstance(exc, openai.APIError):
        return f"the server sent an error event ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"[:200]


def _backoff(failed_attempts: int) -> float:
    base = float(settings.LLM_RETRY_BACKOFF_SECONDS) * 2 ** (failed_attempts - 1)
    # Jitter spreads the retries of many conversations that failed at the same moment.
    return min(_MAX_BACKOFF_SECONDS, base * random.uniform(0.75, 1.25))  # noqa: S311


def message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}
