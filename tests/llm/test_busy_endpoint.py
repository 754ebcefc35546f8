"""A busy model is not a broken one: calls wait their turn (and hear their place), health checks never
disturb an answer, and only real faults open the circuit breaker.

The fake here serves one generation at a time, as llama_cpp.server does with `interrupt_requests` off:
a second request waits on the model until the first is written."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from apps.llm.breaker import breaker_for, stream_queue_for
from apps.llm.clients import check_llm, forget_model_checks
from apps.llm.streaming import ChatMessage, LLMCallError, StreamOutcome, chat_stream
from tests.fakes.openai_server import FakeOpenAI, split_tokens
from tests.llm.conftest import run

MESSAGES = [ChatMessage(role="user", content="Can I return a gift?")]
REPLY = "Yes, within thirty days of delivery, with the receipt."


class SerialFakeOpenAI(FakeOpenAI):
    """The fake, with one generation at a time (a lock held while a completion is written)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_lock = threading.Lock()
        self.generations = 0
        self.health_probes = 0

    def _handler(self) -> type:
        fake = self
        base: Any = super()._handler()

        class Handler(base):
            def end_headers(self) -> None:
                # The fake ends each stream by closing the connection: say so, as a real server would,
                # or the client may send its next request on the closed connection (a real fault here).
                if self.close_connection:
                    self.send_header("Connection", "close")
                super().end_headers()

            def do_GET(self) -> None:
                if self.path == "/health":
                    fake.health_probes += 1
                return super().do_GET()

            def _chat(self, behaviour: str, body: dict[str, Any]) -> None:
                with fake.model_lock:
                    fake.generations += 1
                    super()._chat(behaviour, body)

        return Handler


@pytest.fixture
def serial(settings: Settings) -> Any:
    with SerialFakeOpenAI(models=["test-model"]) as server:
        server.hang_seconds = 10.0
        server.reply_text = REPLY
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_MODEL = "test-model"
        settings.LLM_MAX_ATTEMPTS = 3
        settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
        settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 2.0
        settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 2.0
        # Strict: a single counted failure would open it.
        settings.LLM_BREAKER_FAILURES = 1
        settings.LLM_BREAKER_RESET_SECONDS = 30.0
        settings.LLM_QUEUE_TIMEOUT_SECONDS = 30.0
        forget_model_checks()
        yield server
        forget_model_checks()


@dataclass
class Caller:
    name: str
    positions: list[int] = field(default_factory=list)
    outcome: StreamOutcome | None = None
    error: LLMCallError | None = None
    first_text_at: float | None = None

    async def on_delta(self, text: str) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()

    async def on_wait(self, position: int) -> None:
        self.positions.append(position)

    async def call(self, **kwargs: Any) -> None:
        try:
            self.outcome = await chat_stream(
                MESSAGES, on_delta=self.on_delta, max_tokens=64, on_wait=self.on_wait, **kwargs
            )
        except LLMCallError as exc:
            self.error = exc


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def test_a_slow_answer_five_more_callers_and_health_checks_all_complete_with_the_breaker_closed(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    settings.LLM_MAX_CONCURRENT_STREAMS = 1  # the serial server's one slot
    # Shorter than the slow answer itself: the wait for a slot must not count as waiting for a first token.
    settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 0.6
    serial.token_delay = 0.08  # ~0.8 s per answer
    health: list[str] = []
    health_errors: list[BaseException] = []
    stop_probing = threading.Event()

    def probe() -> None:  # what /healthz runs, from its thread pool, while the answers are written
        while not stop_probing.is_set():
            try:
                health.append(check_llm())
            except BaseException as exc:
                health_errors.append(exc)
            time.sleep(0.05)

    assert check_llm() == "test-model"  # the model confirmed once, while idle
    listed_before = sum(1 for _, path, _ in serial.requests if path == "/v1/models")

    async def scenario() -> list[Caller]:
        slow = Caller("slow")
        first = asyncio.create_task(slow.call())
        await until(lambda: serial.generations == 1)
        others = [Caller(f"c{i}") for i in range(5)]
        tasks = [asyncio.create_task(c.call()) for c in others]
        await asyncio.gather(first, *tasks)
        return [slow, *others]

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        callers = run(scenario())
    finally:
        stop_probing.set()
        prober.join()

    assert [(c.name, c.error) for c in callers if c.error] == []
    assert all(c.outcome and c.outcome.text == REPLY and c.outcome.attempts == 1 for c in callers)
    assert len(serial.chat_requests) == 6  # no retries, nothing cut off and asked again
    breaker = breaker_for(serial.base_url, "test-model")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
    # The five waited their turn, in the order they came, and were told their place.
    assert [c.positions[0] for c in callers[1:]] == [1, 2, 3, 4, 5]
    assert all(c.positions == sorted(set(c.positions), reverse=True) for c in callers)
    assert callers[-1].positions[-1] == 1
    queued = [c.outcome.queued_seconds for c in callers[1:] if c.outcome]
    assert queued == sorted(queued)
    # Health checks were answered throughout, all green, and never asked the model again.
    assert health_errors == []
    assert len(health) >= 5
    assert set(health) == {"test-model"}
    assert serial.health_probes >= len(health)
    assert sum(1 for _, path, _ in serial.requests if path == "/v1/models") == listed_before


def test_a_first_token_timeout_while_other_streams_are_in_flight_does_not_open_the_breaker(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    # Four streams admitted at once to a server that writes one answer at a time: the last ones wait on
    # the server past their first-token timeout.
    settings.LLM_MAX_CONCURRENT_STREAMS = 4
    settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 0.5
    settings.LLM_MAX_ATTEMPTS = 4
    serial.token_delay = 0.04  # ~0.4 s per answer

    async def scenario() -> list[Caller]:
        callers = [Caller(f"c{i}") for i in range(4)]
        await asyncio.gather(*(c.call() for c in callers))
        return callers

    callers = run(scenario())

    breaker = breaker_for(serial.base_url, "test-model")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
    retried = [c for c in callers if c.outcome and c.outcome.attempts > 1]
    failed = [c for c in callers if c.error]
    assert retried or failed  # the server really was too busy for some first tokens
    assert all(c.error and c.error.kind == "unavailable" for c in failed)
    assert all(c.error and c.error.detail.endswith("(the endpoint was busy)") for c in failed)
    # And the breaker still lets the next caller through.
    serial.token_delay = 0
    assert run(chat_stream(MESSAGES, on_delta=Caller("next").on_delta, max_tokens=64)).text == REPLY


def test_busy_and_loading_answers_are_retried_without_counting(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    serial.script(["error_503", "error_429", "ok"])

    outcome = run(chat_stream(MESSAGES, on_delta=Caller("c").on_delta, max_tokens=64))

    assert (outcome.text, outcome.attempts) == (REPLY, 3)
    breaker = breaker_for(serial.base_url, "test-model")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)


def test_a_server_still_loading_after_every_attempt_is_unavailable_but_not_broken(
    serial: SerialFakeOpenAI,
) -> None:
    serial.behaviour = "error_503"

    with pytest.raises(LLMCallError) as caught:
        run(chat_stream(MESSAGES, on_delta=Caller("c").on_delta, max_tokens=64))

    assert (caught.value.kind, caught.value.attempts) == ("unavailable", 3)
    assert caught.value.detail == "HTTP 503 (the endpoint was busy)"
    assert breaker_for(serial.base_url, "test-model").state == "closed"


@pytest.mark.parametrize(
    ("behaviour", "detail"),
    [
        ("error_500", "HTTP 500"),
        ("refuse", "connection failed"),
        ("hang", "no response within 0.3s"),  # silent, and nothing else was using the endpoint
    ],
)
def test_real_faults_still_open_the_breaker(
    serial: SerialFakeOpenAI, settings: Settings, behaviour: str, detail: str
) -> None:
    settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 0.3
    settings.LLM_BREAKER_FAILURES = 2
    serial.behaviour = behaviour

    with pytest.raises(LLMCallError) as caught:
        run(chat_stream(MESSAGES, on_delta=Caller("c").on_delta, max_tokens=64))

    assert caught.value.kind == "unavailable"
    assert caught.value.detail.startswith(detail)
    assert caught.value.detail.endswith("then the circuit opened")
    assert breaker_for(serial.base_url, "test-model").state == "open"
    with pytest.raises(LLMCallError) as refused:
        run(chat_stream(MESSAGES, on_delta=Caller("c").on_delta, max_tokens=64))
    assert refused.value.kind == "circuit_open"


def test_a_stall_mid_answer_without_other_load_still_counts(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 0.3
    serial.behaviour = "stall"
    serial.cut_after = 2

    with pytest.raises(LLMCallError) as caught:
        run(chat_stream(MESSAGES, on_delta=Caller("c").on_delta, max_tokens=64))

    assert (caught.value.kind, caught.value.detail) == ("cut", "no chunk for 0.3s")
    assert breaker_for(serial.base_url, "test-model").state == "open"


def test_callers_hear_their_place_and_move_up_as_streams_end(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    settings.LLM_MAX_CONCURRENT_STREAMS = 2
    serial.token_delay = 0.05
    queue = stream_queue_for(serial.base_url)

    async def scenario() -> list[Caller]:
        callers = [Caller(f"c{i}") for i in range(5)]
        tasks = []
        for arrived, caller in enumerate(callers, start=1):  # one by one: the order of arrival is known
            tasks.append(asyncio.create_task(caller.call()))
            await until(lambda n=arrived: queue.in_flight + queue.waiting == n)
        assert (queue.in_flight, queue.waiting) == (2, 3)
        await asyncio.gather(*tasks)
        return callers

    callers = run(scenario())

    assert [c.positions for c in callers] == [[], [], [1], [2, 1], [3, 2, 1]]
    assert all(c.outcome and c.outcome.text == REPLY for c in callers)
    assert [c.outcome.queued_seconds > 0 for c in callers if c.outcome] == [False, False, True, True, True]
    assert (queue.in_flight, queue.waiting) == (0, 0)


def test_a_caller_that_leaves_the_queue_lets_the_ones_behind_move_up(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    settings.LLM_MAX_CONCURRENT_STREAMS = 1
    serial.token_delay = 0.05
    queue = stream_queue_for(serial.base_url)

    async def scenario() -> tuple[Caller, Caller]:
        holder, leaving, staying = Caller("holder"), Caller("leaving"), Caller("staying")
        held = asyncio.create_task(holder.call())
        await until(lambda: queue.in_flight == 1)
        leave = asyncio.create_task(leaving.call())
        await until(lambda: queue.waiting == 1)
        stay = asyncio.create_task(staying.call())
        await until(lambda: staying.positions == [2])
        leave.cancel()  # the customer went away
        await until(lambda: staying.positions == [2, 1])
        await asyncio.gather(held, stay)
        with pytest.raises(asyncio.CancelledError):
            await leave
        return leaving, staying

    leaving, staying = run(scenario())

    assert (leaving.positions, staying.positions) == ([1], [2, 1])
    assert staying.outcome is not None
    assert len(serial.chat_requests) == 2  # the one who left never reached the server
    assert (queue.in_flight, queue.waiting) == (0, 0)


def test_a_wait_past_the_queue_deadline_is_unavailable_and_no_verdict(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    settings.LLM_MAX_CONCURRENT_STREAMS = 1
    settings.LLM_QUEUE_TIMEOUT_SECONDS = 0.3
    serial.token_delay = 0.1

    async def scenario() -> Caller:
        holder, late = Caller("holder"), Caller("late")
        held = asyncio.create_task(holder.call())
        await until(lambda: stream_queue_for(serial.base_url).in_flight == 1)
        await late.call()
        await held
        return late

    late = run(scenario())

    assert late.error is not None
    assert (late.error.kind, late.error.attempts) == ("unavailable", 0)
    assert late.error.detail.startswith("waited 0.3s for one of 1 streams to ")
    assert late.positions == [1]
    assert len(serial.chat_requests) == 1
    breaker = breaker_for(serial.base_url, "test-model")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)


def test_an_open_breaker_fails_fast_without_queueing(serial: SerialFakeOpenAI, settings: Settings) -> None:
    settings.LLM_MAX_CONCURRENT_STREAMS = 1
    breaker_for(serial.base_url, "test-model").record_failure()  # threshold 1: open

    caller = Caller("c")
    started = time.monotonic()
    run(caller.call())

    assert caller.error is not None
    assert caller.error.kind == "circuit_open"
    assert time.monotonic() - started < 0.5
    assert (caller.positions, serial.chat_requests) == ([], [])


def test_waiters_from_another_event_loop_are_woken(serial: SerialFakeOpenAI, settings: Settings) -> None:
    """Daphne's loop and a Celery task's `asyncio.run` in another thread share the process's queue."""
    settings.LLM_MAX_CONCURRENT_STREAMS = 1
    serial.token_delay = 0.05
    queue = stream_queue_for(serial.base_url)
    other = Caller("other-loop")

    def in_other_thread() -> None:
        run(other.call())

    async def scenario() -> Caller:
        holder = Caller("holder")
        held = asyncio.create_task(holder.call())
        await until(lambda: queue.in_flight == 1)
        thread = threading.Thread(target=in_other_thread)
        thread.start()
        await until(lambda: queue.waiting == 1)
        await held
        await asyncio.to_thread(thread.join, 10)
        return holder

    holder = run(scenario())

    assert holder.outcome is not None
    assert other.outcome is not None
    assert other.positions == [1]
    assert (queue.in_flight, queue.waiting) == (0, 0)


def test_health_checks_ask_for_the_model_list_once_and_then_only_probe(
    serial: SerialFakeOpenAI, settings: Settings
) -> None:
    for _ in range(5):
        assert check_llm() == "test-model"

    paths = [path for _, path, _ in serial.requests]
    assert paths.count("/v1/models") == 1
    assert paths.count("/health") == 5
    assert serial.chat_requests == []
    assert breaker_for(serial.base_url, "test-model").consecutive_failures == 0


def test_health_reports_a_loading_server(serial: SerialFakeOpenAI) -> None:
    from apps.core.health import CheckFailed

    serial.behaviour = "error_503"

    with pytest.raises(CheckFailed, match=r"is loading the model \(HTTP 503\)"):
        check_llm()


def test_the_reply_tokens_are_unchanged_by_queueing(serial: SerialFakeOpenAI, settings: Settings) -> None:
    settings.LLM_MAX_CONCURRENT_STREAMS = 1
    deltas: list[list[str]] = [[], []]

    async def scenario() -> None:
        async def collect(i: int) -> None:
            async def on_delta(text: str) -> None:
                deltas[i].append(text)

            await chat_stream(MESSAGES, on_delta=on_delta, max_tokens=64)

        await asyncio.gather(collect(0), collect(1))

    run(scenario())

    assert deltas == [split_tokens(REPLY), split_tokens(REPLY)]
