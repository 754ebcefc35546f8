"""A fake OpenAI-compatible server on loopback, settings aimed at it with short timeouts, fresh breakers."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from pytest_django.fixtures import Settings

from apps.llm import breaker
from apps.llm.clients import close_async_clients
from tests.fakes.openai_server import FakeOpenAI

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` that also closes the loop's LLM clients (pytest-asyncio is not a dependency)."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await close_async_clients()

    return asyncio.run(main())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake_clock = FakeClock()
    breaker.reset_breakers(clock=fake_clock)
    yield fake_clock
    breaker.reset_breakers()


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    breaker.reset_breakers()
    yield
    breaker.reset_breakers()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["test-model"]) as server:
        server.hang_seconds = 10.0
        yield server


@pytest.fixture
def llm(settings: Settings, fake: FakeOpenAI) -> FakeOpenAI:
    """The fake, with the settings pointing at it and timeouts short enough for tests."""
    settings.LLM_BASE_URL = fake.base_url
    settings.LLM_MODEL = "test-model"
    settings.LLM_MAX_ATTEMPTS = 3
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 2.0
    settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 2.0
    settings.LLM_BREAKER_FAILURES = 100
    settings.LLM_BREAKER_RESET_SECONDS = 30.0
    return fake
