"""Redis connections are bounded and die with the event loop that opened them (issue 14).

A probe found 199 Redis connections still open in Daphne after 300 widget sockets had come and gone: every
pool grew to the number of sockets that used it at once and kept each connection for good. The end-to-end
test counts, with `CLIENT LIST`, the connections of a real Daphne (started as `make run` starts it) after a
wave of sockets has opened, said hello, pinged and closed, for two wave sizes: the count stays under a small
bound and does not grow with the number of sockets.

The others run in this process: a loop that ends (a test's, an `async_to_sync` call's, a Celery task's
`asyncio.run`) closes its connections, and a later loop never gets a client of an ended one.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import websockets
from asgiref.sync import async_to_sync
from websockets.typing import Origin

from apps.accounts import services as accounts
from apps.conversations import services
from apps.core.ratelimit import Limit, rate_limit_check
from apps.core.redis import ASYNC_CLIENT_NAME, ASYNC_MAX_CONNECTIONS, astate_redis, state_redis
from tests.daphne import daphne_serving

ORIGIN = "https://shop.example"
STATE_CLIENT = ASYNC_CLIENT_NAME
# What a Daphne may keep after any number of sockets: the state pool of its loop (8), the channel layer's
# (8 per loop, one of them the receive loop's blocking pop), the sync state and metrics pools' few.
BOUND = 20
# Sockets open at the same time: Daphne drops a socket its application has not accepted within 5 s, which
# a loaded 2-core machine may not manage for many more handshakes at once.
AT_ONCE = 25


def _clients() -> list[dict[str, Any]]:
    return list(state_redis().client_list())


def _named(name: str) -> int:
    return sum(1 for c in _clients() if c.get("name") == name)


def test_a_loop_that_ends_closes_its_connections_and_the_next_loop_gets_a_client_of_its_own() -> None:
    before = _named(STATE_CLIENT)
    seen: list[tuple[int, int]] = []

    async def busy() -> None:
        client = astate_redis()
        # Many callers at once: the pool opens at most its bound, the others wait for a free connection.
        await asyncio.gather(*(client.eval("return redis.call('PING')", 0) for _ in range(50)))
        seen.append((id(client), _named(STATE_CLIENT) - before))

    asyncio.run(busy())
    assert 1 <= seen[0][1] <= ASYNC_MAX_CONNECTIONS
    assert _named(STATE_CLIENT) == before  # closed as the loop closed, not left to the garbage collector
    asyncio.run(busy())
    assert seen[1][0] != seen[0][0]
    assert _named(STATE_CLIENT) == before


def test_sync_code_calling_async_checks_leaves_no_connection_behind() -> None:
    """A sync view calls `async_to_sync(rate_limit_check)`: outside Daphne each call runs on a loop of its
    own, which used to leave its client's connection open until the garbage collector found it."""
    before = _named(STATE_CLIENT)
    limits = [Limit("ip", "198.51.100.99", 10_000, 60)]

    def many() -> None:
        for _ in range(30):
            async_to_sync(rate_limit_check)(limits)

    worker = threading.Thread(target=many)  # no loop in this thread: a fresh one per call
    worker.start()
    worker.join(timeout=60)
    assert _named(STATE_CLIENT) == before


# ---- a real Daphne --------------------------------------------------------------------------------------


@pytest.fixture
def tenant(transactional_db: None) -> Any:
    return accounts.tenant_create(slug="sockets", name="Socket Telecom", origins=[ORIGIN])


@pytest.fixture
def daphne(tenant: Any) -> Iterator[str]:
    from django.db import connection

    budgets = "1000000"
    with daphne_serving(
        database=connection.settings_dict["NAME"],
        WIDGET_SOCKETS_PER_IP=budgets,
        WIDGET_RATE_FRAMES_IP=budgets,
        WIDGET_RATE_FRAMES_VISITOR=budgets,
    ) as url:
        yield url


def _daphne_process(url: str) -> psutil.Process:
    port = url.rsplit(":", 1)[1]
    for child in psutil.Process().children(recursive=True):
        cmdline = child.cmdline()
        if "daphne" in cmdline and port in cmdline:
            return child
    raise AssertionError(f"no daphne child serving {url}")


def _connections_of(process: psutil.Process) -> Counter[str]:
    """Redis connections of `process`, by client name ("" for unnamed ones), from the server's CLIENT LIST
    matched with the process's own sockets."""
    redis_port = state_redis().connection_pool.connection_kwargs["port"]
    ports = {
        c.laddr.port for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == redis_port
    }
    counts: Counter[str] = Counter()
    for client in _clients():
        if int(client["addr"].rsplit(":", 1)[1]) in ports:
            counts[client.get("name") or ""] += 1
    return counts


async def _wave(url: str, widget_key: str, tokens: list[str], n: int, *, timeout: float = 60) -> None:
    """`n` widget sockets, AT_ONCE of them open at any time: connect, hello, ping, close."""
    ws_url = url.replace("http://", "ws://") + f"/ws/widget/?key={widget_key}"
    at_once = asyncio.Semaphore(AT_ONCE)

    async def until(ws: Any, kind: str) -> None:
        while json.loads(await asyncio.wait_for(ws.recv(), timeout=timeout))["type"] != kind:
            pass

    async def one(i: int) -> None:
        async with at_once, websockets.connect(ws_url, origin=Origin(ORIGIN), open_timeout=timeout) as ws:
            hello = {"type": "hello", "token": tokens[i % len(tokens)], "client_msg_id": "h"}
            await ws.send(json.dumps(hello))
            await until(ws, "welcome")
            await ws.send(json.dumps({"type": "ping", "client_msg_id": "p"}))
            await until(ws, "pong")

    await asyncio.gather(*(one(i) for i in range(n)))


def _settled(process: psutil.Process) -> Counter[str]:
    """The count once the closed sockets' disconnects have run (it stops changing)."""
    import time

    last: Counter[str] | None = None
    for _ in range(40):
        time.sleep(0.5)
        now = _connections_of(process)
        if now == last:
            return now
        last = now
    assert last is not None
    return last


@pytest.mark.slow
def test_daphne_keeps_a_bounded_number_of_redis_connections_whatever_the_number_of_sockets(
    daphne: str, tenant: Any
) -> None:
    tokens = [services.widget_session_open(tenant=tenant, token=None, claim=None).token for _ in range(10)]
    process = _daphne_process(daphne)
    # One socket first, alone: the first hello of a process loads what later ones reuse.
    asyncio.run(_wave(daphne, tenant.widget_key, tokens, 1, timeout=180))
    idle = _settled(process)
    asyncio.run(_wave(daphne, tenant.widget_key, tokens, 50))
    after_50 = _settled(process)
    asyncio.run(_wave(daphne, tenant.widget_key, tokens, 150))
    after_150 = _settled(process)
    print(  # the figures for the report: `pytest -s`
        f"redis connections of daphne: after one socket {dict(idle)}, after 50 sockets {dict(after_50)}, "
        f"after 150 sockets {dict(after_150)}; rss {process.memory_info().rss // 2**20} MiB"
    )
    assert sum(after_150.values()) <= BOUND
    # Three times the sockets, at once: not more connections (a pool may open the few it had not needed).
    assert sum(after_150.values()) <= sum(after_50.values()) + 4
    assert after_150[STATE_CLIENT] <= ASYNC_MAX_CONNECTIONS


def test_every_cache_object_of_a_process_borrows_from_one_bounded_pool() -> None:
    """Under ASGI each request's context gets its own `caches["default"]`; with Django's per-object pools
    every one of them opened a connection of its own. Fifty cache objects, kept alive, used at once from
    threads: at most the shared pool's connections exist."""
    from django.core.cache import caches

    from apps.core.redis import CACHE_CLIENT_NAME, CACHE_MAX_CONNECTIONS

    objects = [caches.create_connection("default") for _ in range(50)]
    before = _named(CACHE_CLIENT_NAME)
    barrier = threading.Barrier(len(objects))

    def use(cache: Any, n: int) -> None:
        barrier.wait()
        cache.set(f"pool-test-{n}", n, 30)
        assert cache.get(f"pool-test-{n}") == n

    threads = [threading.Thread(target=use, args=(c, n)) for n, c in enumerate(objects)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert 1 <= _named(CACHE_CLIENT_NAME) <= CACHE_MAX_CONNECTIONS
    assert _named(CACHE_CLIENT_NAME) - before <= CACHE_MAX_CONNECTIONS
    assert len(objects) == 50  # all still alive: nothing was closed by the garbage collector
