"""The one wrapped client for chat completions (STYLE rule 10): every LLM call goes through here.

Any OpenAI-compatible server (the embedded llama.cpp server, vLLM, OpenAI) is a configuration change:
`LLM_BASE_URL`, `LLM_MODEL`, `LLM_API_KEY`.
"""

from __future__ import annotations

import asyncio
import threading
from functools import lru_cache

import openai
from django.conf import settings

from apps.core.health import CheckFailed


@lru_cache(maxsize=4)
def _client(base_url: str, api_key: str, timeout: float) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        timeout=timeout,
        max_retries=0,  # retries are the pipeline's decision, bounded and visible, not the SDK's
    )


def llm_client(*, timeout: float | None = None) -> openai.OpenAI:
    return _client(settings.LLM_BASE_URL, settings.LLM_API_KEY, timeout or settings.LLM_TIMEOUT_SECONDS)


_async_clients: dict[asyncio.AbstractEventLoop, dict[tuple[str, str], openai.AsyncOpenAI]] = {}
_async_lock = threading.Lock()


def async_llm_client(*, base_url: str | None = None) -> openai.AsyncOpenAI:
    """The async client for the running event loop; callers pass explicit timeouts per request.

    One per loop because an httpx connection pool belongs to the loop that opened it: sharing one across
    loops (a Celery task's `asyncio.run`, each test) fails with "Event loop is closed".
    """
    loop = asyncio.get_running_loop()
    key = (base_url or settings.LLM_BASE_URL, settings.LLM_API_KEY)
    with _async_lock:
        for closed in [other for other in _async_clients if other.is_closed()]:
            del _async_clients[closed]
        clients = _async_clients.setdefault(loop, {})
        client = clients.get(key)
        if client is None:
            client = openai.AsyncOpenAI(
                base_url=key[0],
                api_key=key[1],
                timeout=settings.LLM_TIMEOUT_SECONDS,
                max_retries=0,  # as above: retries are chat_stream's, counted and bounded
                # Our own HTTP client, not the SDK's default wrapper: when that one is garbage-collected it
                # schedules its own close on whatever loop is running then, and closing connections of a
                # loop that has ended raises "Event loop is closed" inside that other loop (a later test's,
                # a later Celery task's). A client is dropped here only once its loop has closed, when its
                # connections can no longer be closed by anyone; `close_async_clients` closes them while the
                # loop still runs.
                http_client=openai.DefaultAsyncHttpxClient(timeout=settings.LLM_TIMEOUT_SECONDS),
            )
            clients[key] = client
        return client


async def close_async_clients() -> None:
    """Closes the running loop's clients: call it before a short-lived loop (`asyncio.run`) ends."""
    with _async_lock:
        clients = _async_clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.close()


def check_llm() -> str:
    """Ready when the server answers `/models` and serves the configured model."""
    try:
        models = [m.id for m in llm_client(timeout=2.5).models.list()]
    except openai.APIConnectionError as exc:
        raise CheckFailed(
            f"cannot reach LLM_BASE_URL {settings.LLM_BASE_URL}: {exc.__cause__ or exc}"
        ) from exc
    except openai.APIStatusError as exc:
        raise CheckFailed(f"LLM server answered HTTP {exc.status_code} at {settings.LLM_BASE_URL}") from exc
    if settings.LLM_MODEL not in models:
        raise CheckFailed(
            f"LLM_MODEL {settings.LLM_MODEL!r} is not served at {settings.LLM_BASE_URL} "
            f"(it serves: {', '.join(models) or 'nothing'})"
        )
    return settings.LLM_MODEL
