"""The async LLM client of a loop that has ended never disturbs a later loop (the flaky "Event loop is
closed" failures of tests that drive the assistant in-process)."""

from __future__ import annotations

import asyncio
import gc

from apps.llm.clients import async_llm_client
from tests.fakes.openai_server import FakeOpenAI


def test_a_client_left_by_an_ended_loop_is_not_closed_from_the_next_one(llm: FakeOpenAI) -> None:
    async def first_loop() -> None:
        # A real request, so the client's pool holds a connection (a transport) of this loop.
        await async_llm_client().models.list()

    asyncio.run(first_loop())  # ends without closing the client, as a test's loop does

    async def next_loop() -> list[BaseException]:
        async_llm_client()  # drops the ended loop's client
        gc.collect()  # ...and whatever it left behind is collected while this loop runs
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        outcomes = await asyncio.gather(*others, return_exceptions=True)
        return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]

    assert asyncio.run(next_loop()) == []
