"""The channel layer: channels_redis with a bounded connection pool per event loop.

channels_redis opens its pools with redis-py's default `ConnectionPool`, which opens a connection for every
concurrent command and keeps each one for the life of the process: a burst of sockets joining and leaving
their groups at once (`group_add`, `group_discard`, a `group_send` each) leaves as many idle connections
behind. A `BlockingConnectionPool` holds at most `max_connections`; a command beyond them waits up to
`timeout` seconds for one to be free. One connection is held by the process's receive loop (a blocking
pop of up to `brpop_timeout` seconds); every other command is a single short round trip.

Configured per host in CHANNEL_LAYERS (helpdesk/settings/base.py): `max_connections` and `timeout` next to
the usual connection arguments.
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer
from redis import asyncio as aredis


class BoundedRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        if "address" not in host:
            return super().create_pool(index)  # sentinels and the like: channels_redis's own pools
        address = host.pop("address")
        return aredis.BlockingConnectionPool.from_url(address, **host)
