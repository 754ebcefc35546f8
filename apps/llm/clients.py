"""The one wrapped client for chat completions (STYLE rule 10): every LLM call goes through here.

Any OpenAI-compatible server (the embedded llama.cpp server, vLLM, OpenAI) is a configuration change:
`LLM_BASE_URL`, `LLM_MODEL`, `LLM_API_KEY`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from functools import lru_cache

import httpx
import openai
from django.conf import settings

from apps.core.health import CheckFailed
from apps.llm.breaker import stream_queue_for


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


NO_KEY = "no-key"
_async_clients: dict[asyncio.AbstractEventLoop, dict[tuple[str, str], openai.AsyncOpenAI]] = {}
_async_lock = threading.Lock()


def async_llm_client(*, base_url: str | None = None, api_key: str | None = None) -> openai.AsyncOpenAI:
    """The async client for the running event loop; callers pass explicit timeouts per request.
    `api_key` None: LLM_API_KEY (a registered endpoint passes its own, apps.llm.routing).

    One per loop because an httpx connection pool belongs to the loop that opened it: sharing one across
    loops (a Celery task's `asyncio.run`, each test) fails with "Event loop is closed".
    """
    loop = asyncio.get_running_loop()
    # An endpoint registered without a key (a model server on the company's own network needs none) still
    # sends one: the SDK refuses to start without it, and such servers ignore it.
    key = (
        base_url or settings.LLM_BASE_URL,
        (settings.LLM_API_KEY if api_key is None else api_key) or NO_KEY,
    )
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


# How long a confirmed "this server serves LLM_MODEL" stands before `/models` is asked again.
MODELS_RECHECK_SECONDS = 300.0
_HEALTH_TIMEOUT_SECONDS = 2.5
_models_confirmed: dict[tuple[str, str, str], float] = {}
_models_lock = threading.Lock()


def check_llm() -> str:
    """Ready when the server is up and serves the configured model, asked so that it never disturbs an
    answer being written and never counts as a model call (no breaker, no stream slot):

    1. liveness, every time: `GET <root>/health` (llama-server and vLLM answer it beside generation, 503
       while loading). A 4xx means the server has no such endpoint (llama_cpp.server, hosted APIs) but is
       answering HTTP, which is enough.
    2. the model, at most every MODELS_RECHECK_SECONDS per server, URL and model: `GET /models`.
       llama_cpp.server answers it only between two generations (it takes the model's lock), so while this
       process has streams in flight there, or when `/models` times out, an earlier confirmation stands.
    """
    base_url = settings.LLM_BASE_URL.rstrip("/")
    model = settings.LLM_MODEL
    _check_alive(base_url)
    key = (base_url, settings.LLM_API_KEY, model)
    with _models_lock:
        confirmed = _models_confirmed.get(key)
    now = time.monotonic()
    if confirmed is not None and (
        now - confirmed < MODELS_RECHECK_SECONDS or stream_queue_for(base_url).in_flight > 0
    ):
        return model
    try:
        models = [m.id for m in llm_client(timeout=_HEALTH_TIMEOUT_SECONDS).models.list()]
    except openai.APITimeoutError as exc:
        if confirmed is not None:
            return model  # alive (step 1) and busy: the model was there before
        raise CheckFailed(f"LLM server at {base_url} did not list its models within 2.5s") from exc
    except openai.APIConnectionError as exc:
        raise CheckFailed(
            f"cannot reach LLM_BASE_URL {settings.LLM_BASE_URL}: {exc.__cause__ or exc}"
        ) from exc
    except openai.APIStatusError as exc:
        raise CheckFailed(f"LLM server answered HTTP {exc.status_code} at {settings.LLM_BASE_URL}") from exc
    if model not in models:
        with _models_lock:
            _models_confirmed.pop(key, None)
        raise CheckFailed(
            f"LLM_MODEL {model!r} is not served at {settings.LLM_BASE_URL} "
            f"(it serves: {', '.join(models) or 'nothing'})"
        )
    with _models_lock:
        _models_confirmed[key] = time.monotonic()
    return model


def _check_alive(base_url: str) -> None:
    root = base_url.removesuffix("/v1")
    try:
        response = httpx.get(
            f"{root}/health",
            headers={"Authorization": f"Bearer {settings.LLM_API_KEY}"},
            timeout=_HEALTH_TIMEOUT_SECONDS,
        )
    except httpx.TimeoutException as exc:
        raise CheckFailed(f"LLM server at {settings.LLM_BASE_URL} did not answer within 2.5s") from exc
    except httpx.HTTPError as exc:
        raise CheckFailed(f"cannot reach LLM_BASE_URL {settings.LLM_BASE_URL}: {exc}") from exc
    if response.status_code == 503:
        raise CheckFailed(f"LLM server at {settings.LLM_BASE_URL} is loading the model (HTTP 503)")
    if response.status_code >= 500:
        raise CheckFailed(f"LLM server answered HTTP {response.status_code} at {settings.LLM_BASE_URL}")


def forget_model_checks() -> None:
    """Forgets every confirmed model (tests)."""
    with _models_lock:
        _models_confirmed.clear()
