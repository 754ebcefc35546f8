"""Fixed-window rate limits and connection slots shared by every process through Redis (CONTRACTS §3:
floods from one visitor, one IP, one tenant).

A window is one INCR plus one EXPIRE in a single round trip; a slot is one Lua call. If Redis cannot be
reached neither is enforced (and a warning is logged): refusing every customer because a counter store is
down would turn a partial outage into a total one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from apps.core.errors import RateLimited
from apps.core.redis import astate_redis, state_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    scope: str  # e.g. "visitor", "ip", "tenant"
    subject: str  # the id within the scope, tenant-qualified where it is tenant data
    limit: int
    window_seconds: int


async def rate_limit_check(limits: list[Limit], *, what: str = "messages") -> None:
    """Counts one hit against every limit; raises RateLimited (with retry_after) if any is exceeded."""
    now = time.time()
    try:
        client = astate_redis()
        async with client.pipeline(transaction=False) as pipe:
            keys = []
            for limit in limits:
                window = int(now // limit.window_seconds)
                key = state_key("rl", limit.scope, limit.subject, limit.window_seconds, window)
                keys.append(key)
                pipe.incr(key)
                pipe.expire(key, limit.window_seconds + 1)
            results = await pipe.execute()
    except Exception as exc:
        logger.warning("rate limits not enforced: Redis unavailable (%s)", exc.__class__.__name__)
        return
    for i, limit in enumerate(limits):
        count = int(results[2 * i])
        if count > limit.limit:
            retry_after = max(1, math.ceil(limit.window_seconds - (now % limit.window_seconds)))
            logger.info(
                "rate limit hit: %s %s (%d/%ds)", limit.scope, what, limit.limit, limit.window_seconds
            )
            raise RateLimited(
                f"Too many {what}. Please wait {retry_after} seconds and try again.", retry_after=retry_after
            )


# Takes a slot in a set of live connections, atomically: drops slots whose lease ran out, refuses when the
# set is full, else adds (or renews) the member with a new lease. Scores are lease expiries (unix seconds).
_SLOT_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class Slots:
    """At most `limit` live connections per subject (e.g. websockets per IP address). A connection holds a
    slot on a lease it renews while it is alive, so slots of a process that died free themselves."""

    scope: str
    subject: str
    limit: int
    lease_seconds: int

    @property
    def key(self) -> str:
        return state_key("slots", self.scope, self.subject)


async def slot_take(slots: Slots, *, member: str) -> bool:
    """Takes (or renews) `member`'s slot; False when every slot is taken. Fails open, like the limits."""
    now = time.time()
    try:
        taken = await astate_redis().eval(
            _SLOT_TAKE, 1, slots.key, now, now + slots.lease_seconds, slots.limit, member, slots.lease_seconds
        )
    except Exception as exc:
        logger.warning("connection limits not enforced: Redis unavailable (%s)", exc.__class__.__name__)
        return True
    if not taken:
        logger.info("connection limit hit: %s (%d)", slots.scope, slots.limit)
    return bool(taken)


async def slot_release(slots: Slots, *, member: str) -> None:
    try:
        await astate_redis().zrem(slots.key, member)
    except Exception as exc:
        logger.warning("connection slot not released (its lease ends it): %s", exc.__class__.__name__)
