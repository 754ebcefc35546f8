"""chat_stream against a real HTTP server on loopback: streaming, retries, timeouts, cuts, refusals."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field

import pytest
from pytest_django.fixtures import Settings

from apps.llm.breaker import breaker_for
from apps.llm.streaming import ChatMessage, LLMCallError, StreamOutcome, chat_stream
from tests.fakes.openai_server import DEFAULT_REPLY, FakeOpenAI, split_tokens
from tests.llm.conftest import run

# Content that must never reach a log line or an error detail.
SECRET = "Jane Roe, card 4111 1111 1111 1111"
MESSAGES = [
    ChatMessage(role="system", content="You are a support assistant."),
    ChatMessage(role="user", content=f"Where is my order? {SECRET}"),
]
PROMPT_WORDS = 5 + 4 + len(SECRET.split())


@dataclass
class Call:
    deltas: list[str] = field(default_factory=list)
    outcome: StreamOutcome | None = None
    error: LLMCallError | None = None
    seconds: float = 0.0

    async def on_delta(self, text: str) -> None:
        self.deltas.append(text)


def call(*, max_tokens: int = 64, **kwargs: object) -> Call:
    result = Call()
    started = time.monotonic()
    try:
        result.outcome = run(
            chat_stream(MESSAGES, on_delta=result.on_delta, max_tokens=max_tokens, **kwargs)  # type: ignore[arg-type]
        )
    except LLMCallError as exc:
        result.error = exc
    result.seconds = time.monotonic() - started
    return result


def succeeded(result: Call) -> StreamOutcome:
    assert result.error is None, result.error
    assert result.outcome is not None
    return result.outcome


def failed(result: Call) -> LLMCallError:
    assert result.outcome is None, result.outcome
    assert result.error is not None
    return result.error


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_streams_each_piece_once_and_reports_usage_and_timings(llm: FakeOpenAI) -> None:
    llm.reply_text = "Your parcel left our warehouse this morning."
    llm.token_delay = 0.02

    result = call()

    outcome = succeeded(result)
    tokens = split_tokens(llm.reply_text)
    assert result.deltas == tokens  # the role chunk's empty content is not passed on
    assert outcome.text == llm.reply_text
    assert outcome.finish_reason == "stop"
    assert outcome.prompt_tokens == PROMPT_WORDS
    assert outcome.completion_tokens == len(tokens)
    assert outcome.attempts == 1
    assert (outcome.model, outcome.endpoint) == ("test-model", llm.base_url)
    assert 0.02 <= outcome.ttft_seconds < outcome.total_seconds < 5
    assert llm.chat_requests == [
        {
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You are a support assistant."},
                {"role": "user", "content": f"Where is my order? {SECRET}"},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ]


def test_explicit_model_and_endpoint_win_over_settings(llm: FakeOpenAI, settings: Settings) -> None:
    settings.LLM_BASE_URL = f"http://127.0.0.1:{closed_port()}/v1"
    settings.LLM_MODEL = "other"

    outcome = succeeded(call(model="test-model", base_url=llm.base_url, temperature=0.0))

    assert (outcome.model, outcome.endpoint) == ("test-model", llm.base_url)
    assert [(b["model"], b["temperature"]) for b in llm.chat_requests] == [("test-model", 0.0)]


def test_server_that_ignores_include_usage_gets_its_chunks_counted(llm: FakeOpenAI) -> None:
    llm.report_usage = False

    result = call()

    outcome = succeeded(result)
    assert outcome.prompt_tokens is None
    assert outcome.completion_tokens == len(result.deltas) == len(split_tokens(llm.reply_text))


def test_reaching_max_tokens_is_a_whole_answer_with_finish_reason_length(llm: FakeOpenAI) -> None:
    result = call(max_tokens=3)

    outcome = succeeded(result)
    assert outcome.finish_reason == "length"
    assert result.deltas == split_tokens(llm.reply_text)[:3]
    assert outcome.text == "".join(split_tokens(llm.reply_text)[:3])


@pytest.mark.parametrize("failure", ["error_500", "error_429"])
def test_a_transient_failure_before_any_text_is_retried(llm: FakeOpenAI, failure: str) -> None:
    llm.script([failure, "ok"])

    result = call()

    outcome = succeeded(result)
    assert outcome.attempts == 2
    assert result.deltas == split_tokens(llm.reply_text)
    first, second = llm.chat_requests
    assert first == second
    assert outcome.ttft_seconds < outcome.total_seconds


def test_a_refused_connection_exhausts_the_attempts_quickly(llm: FakeOpenAI, settings: Settings) -> None:
    settings.LLM_BASE_URL = f"http://127.0.0.1:{closed_port()}/v1"

    result = call()

    error = failed(result)
    assert (error.kind, error.attempts, error.partial_text) == ("unavailable", 3, "")
    assert error.detail.startswith("connection failed")
    assert result.deltas == []
    assert result.seconds < 2


def test_a_connection_dropped_before_the_response_is_retried_then_unavailable(llm: FakeOpenAI) -> None:
    llm.behaviour = "refuse"

    error = failed(call())

    assert (error.kind, error.attempts) == ("unavailable", 3)
    assert len(llm.chat_requests) == 3


def test_a_hung_server_exhausts_the_attempts_in_bounded_time(llm: FakeOpenAI, settings: Settings) -> None:
    settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 0.3
    llm.behaviour = "hang"

    result = call()

    error = failed(result)
    assert (error.kind, error.attempts, error.detail) == ("unavailable", 3, "no response within 0.3s")
    assert len(llm.chat_requests) == 3
    assert 0.9 <= result.seconds < 3


def test_silence_after_the_role_chunk_is_a_first_token_timeout_and_retried(
    llm: FakeOpenAI, settings: Settings
) -> None:
    settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 0.3
    settings.LLM_MAX_ATTEMPTS = 2
    llm.behaviour = "stall"
    llm.cut_after = 0

    result = call()

    error = failed(result)
    assert (error.kind, error.attempts, error.detail) == ("unavailable", 2, "no first token within 0.3s")
    assert len(llm.chat_requests) == 2
    assert result.seconds < 2


def test_a_stream_cut_mid_answer_keeps_the_partial_text_and_is_not_retried(llm: FakeOpenAI) -> None:
    llm.behaviour = "cut"
    llm.cut_after = 3

    result = call()

    error = failed(result)
    delivered = split_tokens(llm.reply_text)[:3]
    assert (error.kind, error.attempts) == ("cut", 1)
    assert error.partial_text == "".join(delivered)
    assert result.deltas == delivered
    assert len(llm.chat_requests) == 1
    assert breaker_for(llm.base_url, "test-model").consecutive_failures == 1


def test_a_stream_that_goes_silent_mid_answer_is_cut_by_the_idle_timeout(
    llm: FakeOpenAI, settings: Settings
) -> None:
    settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 0.3
    llm.behaviour = "stall"
    llm.cut_after = 2

    result = call()

    error = failed(result)
    assert (error.kind, error.attempts, error.detail) == ("cut", 1, "no chunk for 0.3s")
    assert error.partial_text == "".join(split_tokens(llm.reply_text)[:2])
    assert len(llm.chat_requests) == 1
    assert result.seconds < 2


@pytest.mark.parametrize(("behaviour", "partial"), [("refusal", ""), ("content_filter", DEFAULT_REPLY)])
def test_a_refusal_is_reported_and_is_no_endpoint_failure(
    llm: FakeOpenAI, behaviour: str, partial: str
) -> None:
    llm.behaviour = behaviour

    result = call()

    error = failed(result)
    assert (error.kind, error.attempts, error.partial_text) == ("refused", 1, partial)
    assert "".join(result.deltas) == partial
    assert len(llm.chat_requests) == 1
    breaker = breaker_for(llm.base_url, "test-model")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)


def test_a_rejected_request_is_not_retried_and_its_echo_is_not_logged(
    llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="apps.llm")
    llm.behaviour = "error_400"  # the fake echoes the request body in its error message

    error = failed(call())

    assert (error.kind, error.attempts, error.detail) == ("unavailable", 1, "HTTP 400")
    assert len(llm.chat_requests) == 1
    assert "HTTP 400" in caplog.text
    assert SECRET not in caplog.text
    assert breaker_for(llm.base_url, "test-model").consecutive_failures == 0


def test_log_lines_carry_no_message_content(llm: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK's and the HTTP client's debug lines too
    llm.reply_text = f"Noted: {SECRET}."
    llm.script(["error_500", "ok", "cut"])

    first, second = call(), call()

    assert succeeded(first).text == llm.reply_text
    assert failed(second).kind == "cut"
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("apps.llm")]
    assert len(ours) == 3  # a retry, a completed stream, a cut
    everything = [r.getMessage() for r in caplog.records]
    for word in ("Jane", "4111", "support assistant", "order"):
        assert all(word not in m for m in everything), word


def test_cancelling_the_call_closes_the_stream_promptly(llm: FakeOpenAI) -> None:
    llm.reply_text = " ".join(f"word{i}" for i in range(100))
    llm.token_delay = 0.05

    async def scenario() -> tuple[float, list[str]]:
        deltas: list[str] = []
        started = asyncio.Event()

        async def on_delta(text: str) -> None:
            deltas.append(text)
            started.set()

        task = asyncio.create_task(chat_stream(MESSAGES, on_delta=on_delta, max_tokens=500))
        await asyncio.wait_for(started.wait(), 5)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at, deltas

    seconds, deltas = run(scenario())

    assert seconds < 1
    assert 1 <= len(deltas) < 10
    assert llm.wait_for_disconnects(1, timeout=2)  # the server noticed and stopped writing
    assert len(llm.chat_requests) == 1
    breaker = breaker_for(llm.base_url, "test-model")
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)


def test_cancelling_while_waiting_for_the_first_token_returns_promptly(llm: FakeOpenAI) -> None:
    llm.behaviour = "hang"

    async def scenario() -> float:
        async def on_delta(text: str) -> None:
            raise AssertionError("no text expected")

        task = asyncio.create_task(chat_stream(MESSAGES, on_delta=on_delta, max_tokens=50))
        # Until the request is on the server: a fixed sleep raced the client's first set-up on a busy machine.
        for _ in range(100):
            if llm.chat_requests:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at

    assert run(scenario()) < 1
    assert len(llm.chat_requests) == 1
    assert breaker_for(llm.base_url, "test-model").consecutive_failures == 0


def test_an_undecodable_chunk_before_any_text_is_retried(llm: FakeOpenAI) -> None:
    llm.cut_after = 0
    llm.script(["malformed", "ok"])

    outcome = succeeded(call())

    assert outcome.attempts == 2
    assert outcome.text == llm.reply_text


def test_an_undecodable_chunk_mid_answer_is_a_cut(llm: FakeOpenAI) -> None:
    llm.behaviour = "malformed"
    llm.cut_after = 2

    error = failed(call())

    assert (error.kind, error.attempts, error.detail) == ("cut", 1, "malformed chunk (JSONDecodeError)")
    assert error.partial_text == "".join(split_tokens(llm.reply_text)[:2])


def test_the_fake_can_answer_from_the_request(llm: FakeOpenAI) -> None:
    llm.responder = lambda body: f"You sent {len(body['messages'])} messages."

    assert succeeded(call()).text == "You sent 2 messages."
