"""One non-streamed chat completion, for text nobody watches being written (the handoff case file).

One attempt under a total deadline, behind the endpoint's circuit breaker: its callers have a
deterministic fallback, so a retry would only delay them. Failures raise `LLMCallError` with the kinds
`chat_stream` uses (`unavailable`, `circuit_open`, `refused`), so one error type covers every LLM call.

The sync client suits the Celery tasks that call this. Its read timeout bounds the whole answer because an
unstreamed response arrives in one piece, after generation. Nothing here logs message content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import openai
from django.conf import settings

from apps.llm.breaker import BUSY_STATUS, breaker_for
from apps.llm.clients import llm_client
from apps.llm.streaming import (
    CONNECT_TIMEOUT_SECONDS,
    ChatMessage,
    LLMCallError,
    describe_error,
    message_param,
)

logger = logging.getLogger(__name__)

# Answers worth another look later; every other 4xx is this request's fault, not the endpoint's.
_ENDPOINT_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float
    model: str


def chat_complete(
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int,
    timeout: float,
    temperature: float = 0.2,
    model: str | None = None,
) -> Completion:
    model = model or settings.LLM_MODEL
    endpoint = settings.LLM_BASE_URL
    breaker = breaker_for(endpoint, model)
    admission = breaker.allow()
    if admission is None:
        logger.warning("llm completion from %s model %s not requested: circuit open", endpoint, model)
        raise LLMCallError("circuit_open", detail=f"circuit open for {breaker.key}")
    started = time.monotonic()
    with breaker.call() as shared:
        try:
            response = llm_client().chat.completions.create(
                model=model,
                messages=[message_param(m) for m in messages],
                max_tokens=max_tokens,
                temperature=temperature,
                stream=False,
                timeout=openai.Timeout(timeout, connect=min(CONNECT_TIMEOUT_SECONDS, timeout)),
            )
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in _ENDPOINT_STATUS:
                breaker.settle_fault(admission, busy=exc.status_code in BUSY_STATUS)
            else:
                breaker.release(admission)
            raise _failed(describe_error(exc), started) from None
        except openai.APITimeoutError as exc:  # a silence is a fault only if nobody else had the server
            breaker.settle_fault(admission, busy=shared())
            raise _failed(describe_error(exc), started) from None
        except openai.APIError as exc:  # refused connections, undecodable answers
            breaker.record_failure()
            raise _failed(describe_error(exc), started) from None
        except BaseException:
            breaker.release(admission)
            raise
    breaker.record_success()
    seconds = time.monotonic() - started
    choice = response.choices[0] if response.choices else None
    if choice is not None and (
        choice.finish_reason == "content_filter" or getattr(choice.message, "refusal", None)
    ):
        logger.info("llm completion from %s model %s refused after %.3fs", endpoint, model, seconds)
        raise LLMCallError("refused", detail="the model refused", attempts=1)
    usage = response.usage
    completion = Completion(
        text=(choice.message.content or "") if choice is not None else "",
        finish_reason=choice.finish_reason if choice is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        seconds=seconds,
        model=model,
    )
    logger.info(
        "llm completion from %s model %s done: finish=%s %.3fs tokens=%s+%s",
        endpoint,
        model,
        completion.finish_reason,
        seconds,
        completion.prompt_tokens,
        completion.completion_tokens,
    )
    return completion


def _failed(detail: str, started: float) -> LLMCallError:
    logger.warning("llm completion failed after %.3fs: %s", time.monotonic() - started, detail)
    return LLMCallError("unavailable", detail=detail, attempts=1)
