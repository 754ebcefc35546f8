"""Clients for the short-lived realtime state kept in Redis (partial replies, turns, rate-limit windows).

Everything here is an optimisation or a limit, never the record: the database is the truth. Keys carry the
tenant id (STYLE rule 3) and always an expiry.
"""

from __future__ import annotations

import asyncio
import weakref
from functools import cache

import redis
import redis.asyncio as aredis
from django.conf import settings

# The cache's database: its keys are all prefixed and short-lived.
STATE_DB = 3

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def state_key(*parts: object) -> str:
    return "hd:" + ":".join(str(p) for p in parts)


@cache
def _sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        f"{url}/{STATE_DB}", socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
    )


def state_redis() -> redis.Redis:
    return _sync_client(settings.REDIS_URL)


def astate_redis() -> aredis.Redis:
    """The async client of the running event loop (an asyncio connection pool is bound to one loop)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aredis.Redis.from_url(
            f"{settings.REDIS_URL}/{STATE_DB}", socket_connect_timeout=2, socket_timeout=2
        )
        _async_clients[loop] = client
    return client
