"""The tool decision behind the breaker: a busy tools server (429, 503, or a silence while other decisions
were waiting on it) is not a broken one; refusals and silences with nobody else on it still count."""

from __future__ import annotations

import asyncio

import pytest
from pytest_django.fixtures import Settings

from apps.llm.breaker import CircuitBreaker, breaker_for
from apps.llm.streaming import ChatMessage
from apps.llm.tooling import ToolDecision, tools_decide
from tests.fakes.openai_server import FakeOpenAI
from tests.llm.conftest import run

MESSAGES = [ChatMessage(role="user", content="Where is my order NM-123456?")]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "order_status",
            "description": "Look up an order",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def tools_llm(llm: FakeOpenAI, settings: Settings) -> FakeOpenAI:
    settings.LLM_TOOLS_BASE_URL = llm.base_url
    settings.LLM_TOOLS_MODEL = "test-model"
    settings.LLM_BREAKER_FAILURES = 1  # strict: one counted failure opens it
    return llm


def breaker(settings: Settings) -> CircuitBreaker:
    return breaker_for(settings.LLM_TOOLS_BASE_URL, settings.LLM_TOOLS_MODEL)


def decide(timeout: float = 2.0) -> ToolDecision:
    return run(tools_decide(MESSAGES, tools=TOOLS, timeout=timeout))


@pytest.mark.parametrize("busy", ["error_429", "error_503"])
def test_a_busy_or_loading_tools_server_is_not_counted(
    tools_llm: FakeOpenAI, settings: Settings, busy: str
) -> None:
    tools_llm.behaviour = busy

    decision = decide()

    assert decision.error
    assert not decision.calls
    assert breaker(settings).state == "closed"


def test_a_server_error_still_opens_the_breaker(tools_llm: FakeOpenAI, settings: Settings) -> None:
    tools_llm.behaviour = "error_500"

    assert decide().error
    assert breaker(settings).state == "open"
    assert decide().error == "circuit open"


def test_silences_while_other_decisions_waited_do_not_open_it_but_one_alone_does(
    tools_llm: FakeOpenAI, settings: Settings
) -> None:
    tools_llm.behaviour = "hang"

    async def three_at_once() -> list[ToolDecision]:
        return list(
            await asyncio.gather(*(tools_decide(MESSAGES, tools=TOOLS, timeout=0.5) for _ in range(3)))
        )

    decisions = run(three_at_once())

    assert all(d.error.startswith("no decision within") for d in decisions)
    assert breaker(settings).state == "closed"

    assert decide(timeout=0.3).error.startswith("no decision within")
    assert breaker(settings).state == "open"
