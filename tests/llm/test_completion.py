"""chat_complete against a real HTTP server on loopback: one unstreamed attempt under a deadline, behind the
circuit breaker, with errors that never quote the request."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
from pytest_django.fixtures import Settings

from apps.llm.breaker import CircuitBreaker, breaker_for
from apps.llm.completion import Completion, chat_complete
from apps.llm.streaming import ChatMessage, LLMCallError
from tests.fakes.openai_server import FakeOpenAI

# Content that must never reach a log line or an error detail.
SECRET = "Jane Roe, card 4111 1111 1111 1111"
MESSAGES = [
    ChatMessage(role="system", content="You write case files."),
    ChatMessage(role="user", content=f"Summarise: {SECRET}"),
]


def complete(timeout: float = 2.0, max_tokens: int = 64) -> Completion:
    return chat_complete(MESSAGES, max_tokens=max_tokens, timeout=timeout)


def fails(timeout: float = 2.0) -> LLMCallError:
    with pytest.raises(LLMCallError) as caught:
        complete(timeout=timeout)
    return caught.value


def breaker(settings: Settings) -> CircuitBreaker:
    return breaker_for(settings.LLM_BASE_URL, settings.LLM_MODEL)


def test_returns_the_whole_answer_with_usage_from_one_unstreamed_request(llm: FakeOpenAI) -> None:
    llm.reply_text = "GOAL: a refund.\nREPLY: I'm on it."

    completion = complete(max_tokens=160)

    assert (completion.text, completion.finish_reason, completion.model) == (
        "GOAL: a refund.\nREPLY: I'm on it.",
        "stop",
        "test-model",
    )
    assert (completion.prompt_tokens, completion.completion_tokens) == (
        4 + 8,
        7,
    )  # words, as the fake counts them
    assert 0 < completion.seconds < 2
    [body] = llm.chat_requests
    assert body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You write case files."},
            {"role": "user", "content": f"Summarise: {SECRET}"},
        ],
        "max_tokens": 160,
        "temperature": 0.2,
        "stream": False,
    }


def test_max_tokens_cuts_the_answer_with_finish_reason_length(llm: FakeOpenAI) -> None:
    llm.reply_text = "one two three four five"

    completion = complete(max_tokens=3)

    assert (completion.text, completion.finish_reason) == ("one two three", "length")


@pytest.mark.parametrize("failure", ["error_500", "refuse"])
def test_an_endpoint_failure_is_tried_once_and_counted_by_the_breaker(
    llm: FakeOpenAI, settings: Settings, failure: str
) -> None:
    llm.behaviour = failure

    error = fails()

    assert (error.kind, error.attempts) == ("unavailable", 1)
    assert len(llm.chat_requests) == 1  # the caller has a fallback: no retry delays it
    assert breaker(settings).consecutive_failures == 1


def test_a_hung_server_is_given_up_on_at_the_deadline(llm: FakeOpenAI, settings: Settings) -> None:
    llm.behaviour = "hang"
    started = time.monotonic()

    error = fails(timeout=0.5)

    assert time.monotonic() - started < 2.0
    assert (error.kind, error.detail) == ("unavailable", "request timed out")
    assert breaker(settings).consecutive_failures == 1


def test_a_refused_connection_is_unavailable_at_once(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.LLM_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.LLM_MODEL = "test-model"
    started = time.monotonic()

    error = fails()

    assert time.monotonic() - started < 2.0
    assert error.kind == "unavailable"
    assert error.detail.startswith("connection failed")


def test_a_rejected_request_says_nothing_of_the_endpoint_nor_of_the_request(
    llm: FakeOpenAI, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    llm.behaviour = "error_400"  # the server echoes the request in its error message
    caplog.set_level(logging.DEBUG, logger="apps.llm")

    error = fails()

    assert (error.kind, error.detail) == ("unavailable", "HTTP 400")
    assert breaker(settings).consecutive_failures == 0
    assert "Jane" not in caplog.text
    assert "4111 1111" not in caplog.text  # not "4111" alone: a random port such as 41111 contains it


@pytest.mark.parametrize("behaviour", ["refusal", "content_filter"])
def test_a_refusal_is_not_an_endpoint_failure(llm: FakeOpenAI, settings: Settings, behaviour: str) -> None:
    llm.behaviour = behaviour

    error = fails()

    assert error.kind == "refused"
    assert breaker(settings).consecutive_failures == 0


def test_an_open_circuit_fails_fast_without_a_request(llm: FakeOpenAI, settings: Settings) -> None:
    settings.LLM_BREAKER_FAILURES = 2
    llm.behaviour = "error_500"
    fails()
    fails()
    llm.behaviour = "ok"

    error = fails()

    assert error.kind == "circuit_open"
    assert len(llm.chat_requests) == 2


def test_success_closes_the_count_and_logs_no_content(
    llm: FakeOpenAI, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="apps.llm")
    llm.script(["error_500"])
    fails()
    assert breaker(settings).consecutive_failures == 1

    complete()

    assert breaker(settings).consecutive_failures == 0
    logged = caplog.text + json.dumps([r.args for r in caplog.records], default=str)
    assert "Jane" not in logged
    assert "4111 1111" not in logged  # the server's random port may contain "4111"
    assert llm.reply_text not in logged


@pytest.mark.parametrize("busy", ["error_429", "error_503"])
def test_a_busy_or_loading_server_is_unavailable_but_not_counted(
    llm: FakeOpenAI, settings: Settings, busy: str
) -> None:
    settings.LLM_BREAKER_FAILURES = 1
    llm.behaviour = busy

    error = fails()

    assert error.kind == "unavailable"
    assert breaker(settings).consecutive_failures == 0
    assert breaker(settings).state == "closed"


def test_a_timeout_while_another_call_had_the_server_is_busy_not_broken(
    llm: FakeOpenAI, settings: Settings
) -> None:
    """Two case files at once on a server that writes one at a time: the one that waits past its deadline
    says nothing about the endpoint's health. A timeout with nobody else on it still counts."""
    settings.LLM_BREAKER_FAILURES = 1
    llm.behaviour = "hang"
    errors: list[LLMCallError] = []

    def call() -> None:
        try:
            complete(timeout=0.5)
        except LLMCallError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert [e.detail for e in errors] == ["request timed out", "request timed out"]
    assert breaker(settings).state == "closed"

    fails(timeout=0.3)  # alone, the same silence is a fault
    assert breaker(settings).state == "open"
