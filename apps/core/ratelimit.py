"""Fixed-window rate limits shared by every process through Redis (CONTRACTS §3: floods from one visitor,
one IP, one tenant).

A window is one INCR plus one EXPIRE in a single round trip. If Redis cannot be reached the limit is not
enforced (and a warning is logged): refusing every customer because a counter store is down would turn a
partial outage into a total one.
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
