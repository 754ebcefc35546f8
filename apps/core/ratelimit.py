"""Sliding-window rate limits and connection slots shared by every process through Redis (CONTRACTS §3:
floods from one visitor, one IP, one tenant).

A limit is "at most `limit` hits in any `window_seconds`", not per clock minute: fixed windows let a client
send a full budget at 59.9 s and another at 60.1 s. Each limit is a sorted set of its admitted hits (scored
by time, expiring with the window); one Lua call drops the hits that left the window, checks every limit
of the request, and records the hit in all of them only if all admit it, so one atomic round trip whatever
the number of limits. A refused hit is not recorded: a flooding visitor's refused messages do not spend its
address's or its company's budget. A sorted set holds at most `limit` members, so memory is bounded by the
limits (the largest, the tenant's 1200 a minute, is about 60 KB), and the answer is exact where a
two-window counter would be approximate. Time is Redis's own clock (`TIME`), the same for every process.

A slot is one Lua call. If Redis cannot be reached neither is enforced (and a warning is logged): refusing
every customer because a counter store is down would turn a partial outage into a total one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from dataclasses import dataclass

from redis.exceptions import NoScriptError

from apps.core.errors import RateLimited
from apps.core.redis import astate_redis, state_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    scope: str  # e.g. "visitor", "ip", "tenant"
    subject: str  # the id within the scope, tenant-qualified where it is tenant data
    limit: int
    window_seconds: int

    @property
    def key(self) -> str:
        return state_key("rl", self.scope, self.subject, self.window_seconds)


# KEYS: one sorted set per limit. ARGV[1]: now in seconds ('' for the server's clock), ARGV[2]: a unique
# member for this hit, then `limit, window_seconds` per key. Returns {1} when admitted (the hit recorded
# in every set), else {0, index of the first limit that refused (1-based), milliseconds until the
# longest-waiting refusing limit admits again}.
SLIDING_WINDOW = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    if refused == 0 then refused = i end
    local until_free = window
    if limit > 0 then
      -- Admitted again once all but limit - 1 of the hits in the window have left it.
      local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      until_free = tonumber(oldest[2]) + window - now
    end
    if until_free > wait then wait = until_free end
  end
end
if refused > 0 then
  return {0, refused, math.ceil(wait * 1000)}
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[2 + 2 * i])) + 1)
end
return {1}
"""
_SLIDING_WINDOW_SHA = hashlib.sha1(SLIDING_WINDOW.encode()).hexdigest()  # noqa: S324 (Redis's script id)


async def rate_limit_check(limits: list[Limit], *, what: str = "messages", now: float | None = None) -> None:
    """Counts one hit against every limit if all of them admit it; raises RateLimited (with retry_after,
    whole seconds until it would be admitted) if any refuses. `now` (unix seconds) replaces Redis's clock,
    for tests that move time."""
    if not limits:
        return
    keys = [limit.key for limit in limits]
    args: list[str | int | float] = ["" if now is None else repr(now), secrets.token_hex(8)]
    for limit in limits:
        args += [limit.limit, limit.window_seconds]
    try:
        client = astate_redis()
        try:
            result = await client.evalsha(_SLIDING_WINDOW_SHA, len(keys), *keys, *args)
        except NoScriptError:
            result = await client.eval(SLIDING_WINDOW, len(keys), *keys, *args)
    except Exception as exc:
        logger.warning("rate limits not enforced: Redis unavailable (%s)", exc.__class__.__name__)
        return
    if int(result[0]) == 1:
        return
    limit = limits[int(result[1]) - 1]
    retry_after = max(1, math.ceil(int(result[2]) / 1000))
    logger.info("rate limit hit: %s %s (%d/%ds)", limit.scope, what, limit.limit, limit.window_seconds)
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
