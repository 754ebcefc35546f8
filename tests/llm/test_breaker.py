"""The circuit breaker alone (an injected clock), then wired into chat_stream against the fake server."""

from __future__ import annotations

import asyncio
import threading
import time

from pytest_django.fixtures import Settings

from apps.llm.breaker import CircuitBreaker, breaker_for, breaker_key, breaker_states, reset_breakers
from apps.llm.streaming import ChatMessage, LLMCallError, StreamOutcome, chat_stream
from tests.fakes.openai_server import FakeOpenAI
from tests.llm.conftest import FakeClock, run

MESSAGES = [ChatMessage(role="user", content="Can I return a gift?")]


def make_breaker(clock: FakeClock, *, failures: int = 3, reset: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker(key="k", failure_threshold=failures, reset_seconds=reset, clock=clock)


def test_opens_after_consecutive_failures_only(clock: FakeClock) -> None:
    breaker = make_breaker(clock)

    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count: failures must be consecutive
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.allow() is not None

    breaker.record_failure()

    assert breaker.state == "open"
    assert breaker.allow() is None
    clock.advance(29.9)
    assert breaker.allow() is None


def test_half_open_lets_exactly_one_trial_through_and_success_closes(clock: FakeClock) -> None:
    breaker = make_breaker(clock, failures=1)
    breaker.record_failure()
    clock.advance(30)
    assert breaker.state == "half_open"

    trial = breaker.allow()
    assert trial is not None
    assert trial.trial
    assert breaker.allow() is None  # others fail fast while the trial runs
    breaker.record_success()

    assert breaker.state == "closed"
    admission = breaker.allow()
    assert admission is not None
    assert not admission.trial


def test_a_failed_trial_reopens_for_a_whole_reset_period(clock: FakeClock) -> None:
    breaker = make_breaker(clock, failures=3)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(30)
    assert breaker.allow() is not None

    breaker.record_failure()  # one failure is enough in half-open

    assert breaker.state == "open"
    clock.advance(29)
    assert breaker.allow() is None
    clock.advance(1)
    assert breaker.state == "half_open"


def test_a_trial_without_verdict_gives_its_place_to_the_next_caller(clock: FakeClock) -> None:
    breaker = make_breaker(clock, failures=1)
    breaker.record_failure()
    clock.advance(30)
    first = breaker.allow()
    assert first is not None

    breaker.release(first)  # e.g. the caller was cancelled
    second = breaker.allow()

    assert second is not None
    assert second.trial
    breaker.release(first)  # a stale release must not free the newer trial
    assert breaker.allow() is None


def test_concurrent_callers_get_exactly_one_trial(clock: FakeClock) -> None:
    breaker = make_breaker(clock, failures=1)
    breaker.record_failure()
    clock.advance(30)
    barrier = threading.Barrier(16)
    admitted: list[bool] = []

    def caller() -> None:
        barrier.wait()
        admitted.append(breaker.allow() is not None)

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(admitted) == [False] * 15 + [True]


def test_one_breaker_per_endpoint_and_model() -> None:
    a = breaker_for("http://a/v1/", "m1")
    assert breaker_for("http://a/v1", "m1") is a
    breaker_for("http://a/v1", "m2").record_failure()

    assert breaker_states() == {"http://a/v1|m1": "closed", "http://a/v1|m2": "closed"}
    reset_breakers()
    assert breaker_states() == {}


def stream(max_tokens: int = 64) -> StreamOutcome | LLMCallError:
    async def on_delta(text: str) -> None:
        return None

    try:
        return run(chat_stream(MESSAGES, on_delta=on_delta, max_tokens=max_tokens))
    except LLMCallError as exc:
        return exc


def failure_kind(result: StreamOutcome | LLMCallError) -> str | None:
    return result.kind if isinstance(result, LLMCallError) else None


def test_chat_stream_fails_fast_when_open_and_recovers_through_one_trial(
    llm: FakeOpenAI, settings: Settings, clock: FakeClock
) -> None:
    settings.LLM_BREAKER_FAILURES = 2
    settings.LLM_MAX_ATTEMPTS = 1
    key = breaker_key(llm.base_url, "test-model")
    llm.behaviour = "error_500"

    assert [failure_kind(stream()), failure_kind(stream())] == ["unavailable", "unavailable"]
    assert breaker_states() == {key: "open"}

    started = time.monotonic()
    refused = stream()
    assert isinstance(refused, LLMCallError)
    assert (refused.kind, refused.attempts) == ("circuit_open", 0)
    assert time.monotonic() - started < 0.5
    assert len(llm.chat_requests) == 2  # no request while open

    llm.behaviour = "ok"
    llm.token_delay = 0.05
    clock.advance(30)
    assert breaker_states() == {key: "half_open"}

    async def trial_and_bystander() -> tuple[StreamOutcome, str]:
        first_text = asyncio.Event()

        async def on_delta(text: str) -> None:
            first_text.set()

        async def ignore(text: str) -> None:
            return None

        trial = asyncio.create_task(chat_stream(MESSAGES, on_delta=on_delta, max_tokens=64))
        await asyncio.wait_for(first_text.wait(), 5)
        try:
            await chat_stream(MESSAGES, on_delta=ignore, max_tokens=64)
            bystander = "answered"
        except LLMCallError as exc:
            bystander = exc.kind
        return await trial, bystander

    trial, bystander = run(trial_and_bystander())

    assert trial.attempts == 1
    assert bystander == "circuit_open"
    assert len(llm.chat_requests) == 3  # the trial only
    assert breaker_states() == {key: "closed"}
    llm.token_delay = 0
    assert isinstance(stream(), StreamOutcome)
    assert len(llm.chat_requests) == 4


def test_a_failed_trial_reopens_and_calls_fail_fast_again(
    llm: FakeOpenAI, settings: Settings, clock: FakeClock
) -> None:
    settings.LLM_BREAKER_FAILURES = 1
    llm.behaviour = "error_500"
    first = stream()
    assert isinstance(first, LLMCallError)
    # The breaker opened after the first failed attempt, so the call stopped retrying.
    assert (first.kind, first.attempts) == ("unavailable", 1)
    assert first.detail == "HTTP 500; then the circuit opened"
    clock.advance(30)

    trial = stream()

    assert isinstance(trial, LLMCallError)
    assert (trial.kind, trial.attempts) == ("unavailable", 1)
    assert breaker_states() == {breaker_key(llm.base_url, "test-model"): "open"}
    assert failure_kind(stream()) == "circuit_open"
    assert len(llm.chat_requests) == 2


def test_retries_stop_when_the_breaker_opens_mid_call(llm: FakeOpenAI, settings: Settings) -> None:
    settings.LLM_BREAKER_FAILURES = 2
    settings.LLM_MAX_ATTEMPTS = 3
    llm.behaviour = "error_500"

    result = stream()

    assert isinstance(result, LLMCallError)
    assert (result.kind, result.attempts) == ("unavailable", 2)
    assert len(llm.chat_requests) == 2


def test_a_late_failure_does_not_extend_the_open_period(clock: FakeClock) -> None:
    breaker = make_breaker(clock, failures=1)
    breaker.record_failure()
    clock.advance(20)

    breaker.record_failure()  # a call admitted before the breaker opened fails late
    clock.advance(10)

    assert breaker.state == "half_open"
