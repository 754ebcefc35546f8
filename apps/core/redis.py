"""Clients for the short-lived realtime state kept in Redis (partial replies, turns, rate-limit windows).

Everything here is an optimisation or a limit, never the record: the database is the truth. Keys carry the
tenant id (STYLE rule 3) and always an expiry.

Connections are bounded. redis-py's default pool opens a connection for every concurrent caller and keeps
all of them open for the life of the process, so a burst of a few hundred sockets left as many Redis
connections (and their buffers) behind. Here each pool holds at most a fixed number: a caller beyond them
waits for one to be free (a command takes well under a millisecond) and fails after POOL_TIMEOUT_SECONDS,
which every caller already treats as Redis being unavailable.

An asyncio connection belongs to the event loop that opened it, so each loop has its own async client. A
loop that ends (a test's, an `async_to_sync` call's, a Celery task's `asyncio.run`) closes its client's
connections as it closes, while it can still run the close, and the client is forgotten: a later loop never
finds it, and no connection of a dead loop is left for the garbage collector to close from inside another
loop ("Event loop is closed").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import types
from functools import cache
from typing import Any, ClassVar

import redis
import redis.asyncio as aredis
from django.conf import settings

logger = logging.getLogger(__name__)

# The cache's database: its keys are all prefixed and short-lived.
STATE_DB = 3
# Per event loop (async) and per process (sync, shared by its threads). Commands here are single round
# trips of well under a millisecond, so a few connections serve thousands of calls a second.
ASYNC_MAX_CONNECTIONS = 8
SYNC_MAX_CONNECTIONS = 8
POOL_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 2.0
# Named in CLIENT LIST, so who holds a server's connections can be told (the channel layer's are
# "helpdesk:ws").
ASYNC_CLIENT_NAME = "helpdesk:state"
SYNC_CLIENT_NAME = "helpdesk:state-sync"

_async_clients: dict[tuple[asyncio.AbstractEventLoop, str], aredis.Redis] = {}
_async_lock = threading.Lock()


def state_key(*parts: object) -> str:
    return "hd:" + ":".join(str(p) for p in parts)


@cache
def _sync_client(url: str) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(
        f"{url}/{STATE_DB}",
        max_connections=SYNC_MAX_CONNECTIONS,
        timeout=POOL_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
        client_name=SYNC_CLIENT_NAME,
    )
    return redis.Redis(connection_pool=pool)


def state_redis() -> redis.Redis:
    return _sync_client(settings.REDIS_URL)


def astate_redis() -> aredis.Redis:
    """The async client of the running event loop (an asyncio connection belongs to one loop)."""
    loop = asyncio.get_running_loop()
    key = (loop, settings.REDIS_URL)
    client = _async_clients.get(key)
    if client is not None:
        return client
    with _async_lock:
        # A loop closed without `close()` (never the case for asyncio.run, asgiref or pytest's runners)
        # could not run our clean-up: forget its clients, whose sockets the garbage collector closes.
        for gone in [k for k in _async_clients if k[0].is_closed()]:
            del _async_clients[gone]
        client = _async_clients.get(key)
        if client is None:
            pool = aredis.BlockingConnectionPool.from_url(
                f"{key[1]}/{STATE_DB}",
                max_connections=ASYNC_MAX_CONNECTIONS,
                timeout=POOL_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                client_name=ASYNC_CLIENT_NAME,
            )
            client = aredis.Redis(connection_pool=pool)
            if not any(k[0] is loop for k in _async_clients):
                _close_with_loop(loop)
            _async_clients[key] = client
    return client


def async_clients_count() -> int:
    """How many event loops' clients this process holds (for tests and diagnostics)."""
    return len(_async_clients)


def _close_with_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Makes `loop.close()` first close this module's clients of that loop, while it can still run them
    (channels_redis closes its own per-loop pools the same way)."""
    original = loop.close

    def close(self: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> None:
        if self.is_running() or self.is_closed():
            original(*args, **kwargs)  # refuses a running loop; closing twice does nothing
            return
        with _async_lock:
            mine = [k for k in _async_clients if k[0] is self]
            clients = [_async_clients.pop(k) for k in mine]
        for client in clients:
            try:
                self.run_until_complete(client.aclose(close_connection_pool=True))
            except Exception as exc:  # closing is best-effort: the sockets die with the process anyway
                logger.warning("redis client of a closing loop not closed: %s", exc.__class__.__name__)
        self.close = original  # type: ignore[method-assign]
        original(*args, **kwargs)

    loop.close = types.MethodType(close, loop)  # type: ignore[method-assign]


CACHE_MAX_CONNECTIONS = 8
CACHE_CLIENT_NAME = "helpdesk:cache"


class SharedCachePool:
    """The pool of Django's Redis cache (CACHES "pool_class"): one bounded pool per process and URL.

    Django's RedisCache keeps its pools on the cache object, and under ASGI `caches["default"]` is a new
    object in every request's context: each request (a DRF throttle, a session) opened a pool and a
    connection of its own, left open until the garbage collector got to it, so the number of Redis
    connections grew with traffic. Here every cache object borrows from one pool per process (redis-py
    resets a pool in a forked child, so Celery's workers get their own).
    """

    _pools: ClassVar[dict[str, redis.BlockingConnectionPool]] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> redis.BlockingConnectionPool:
        with cls._lock:
            pool = cls._pools.get(url)
            if pool is None:
                options.setdefault("max_connections", CACHE_MAX_CONNECTIONS)
                options.setdefault("timeout", POOL_TIMEOUT_SECONDS)
                options.setdefault("client_name", CACHE_CLIENT_NAME)
                pool = redis.BlockingConnectionPool.from_url(url, **options)
                cls._pools[url] = pool
            return pool
