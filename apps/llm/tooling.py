"""The tool decision: one non-streamed completion that offers the model the company's tools.

It is separate from the streamed answer on purpose. llama.cpp's function-calling chat handler cannot
stream tool calls (it sends an empty stream), and a separate call keeps the answer path identical for
every server: the decision returns tool calls or nothing, and the customer's answer always streams from
a call without tools. A strong model's plain-text reply to the decision is ignored, not shown.

A failed decision is not a failed answer: the caller answers without tools.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from django.conf import settings
from openai.types.chat import ChatCompletionFunctionToolParam

from apps.llm.breaker import BUSY_STATUS, breaker_for
from apps.llm.clients import async_llm_client
from apps.llm.streaming import CONNECT_TIMEOUT_SECONDS, ChatMessage, describe_error, message_param

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelToolCall:
    call_id: str
    name: str
    arguments: str  # the model's JSON text, unparsed: validation is the tools app's job


@dataclass(frozen=True)
class ToolDecision:
    calls: list[ModelToolCall] = field(default_factory=list)
    error: str = ""  # why no decision was made (logged; the answer goes on without tools)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # What the customer should be asked for before a tool can run, when a required argument is not in
    # their words: "your order number (it looks like NM-123456)" (apps/tools/choice.py).
    ask_for: str | None = None


async def tools_decide(
    messages: Sequence[ChatMessage],
    *,
    tools: list[dict[str, Any]],
    tool_choice: str | dict[str, Any] = "auto",
    max_tokens: int = 160,
    model: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
) -> ToolDecision:
    model = model or settings.LLM_TOOLS_MODEL or settings.LLM_MODEL
    endpoint = base_url or settings.LLM_TOOLS_BASE_URL or settings.LLM_BASE_URL
    timeout = timeout or float(settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS)
    started = time.monotonic()
    breaker = breaker_for(endpoint, model)
    admission = breaker.allow()
    if admission is None:
        return ToolDecision(error="circuit open")
    with breaker.call() as shared:
        try:
            async with asyncio.timeout(timeout):
                response = await async_llm_client(base_url=endpoint).chat.completions.create(
                    model=model,
                    messages=[message_param(m) for m in messages],
                    tools=cast("list[ChatCompletionFunctionToolParam]", tools),
                    # "auto", or {"type": "function", "function": {"name": ...}} to have that tool's
                    # arguments written (llama.cpp's function-calling format then runs one constrained
                    # pass).
                    tool_choice=cast("Any", tool_choice),
                    max_tokens=max_tokens,
                    temperature=0,
                    stream=False,
                    timeout=openai.Timeout(timeout + 1, connect=CONNECT_TIMEOUT_SECONDS),
                )
        except (TimeoutError, openai.APITimeoutError):
            # Silence counts against the endpoint only when no other decision was waiting on it.
            breaker.settle_fault(admission, busy=shared())
            return _failed(f"no decision within {timeout:g}s", started)
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 429):
                breaker.settle_fault(admission, busy=exc.status_code in BUSY_STATUS)
            else:
                breaker.release(admission)
            return _failed(describe_error(exc), started)
        except openai.APIError as exc:
            breaker.record_failure()
            return _failed(describe_error(exc), started)
        except BaseException:
            breaker.release(admission)
            raise
    breaker.record_success()
    calls: list[ModelToolCall] = []
    choice = response.choices[0] if response.choices else None
    for n, call in enumerate((choice.message.tool_calls if choice else None) or []):
        function = getattr(call, "function", None)
        if function is None:
            continue
        calls.append(
            ModelToolCall(
                call_id=str(call.id or f"call_{n}"),
                name=str(function.name or ""),
                arguments=function.arguments or "",
            )
        )
    usage = response.usage
    decision = ToolDecision(
        calls=calls,
        seconds=time.monotonic() - started,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )
    logger.info(
        "tool decision from %s model %s in %.3fs: %s",
        endpoint,
        model,
        decision.seconds,
        ", ".join(c.name[:64] for c in calls) or "no tool",
    )
    return decision


def _failed(detail: str, started: float) -> ToolDecision:
    logger.warning("tool decision failed: %s; answering without tools", detail)
    return ToolDecision(error=detail, seconds=time.monotonic() - started)
