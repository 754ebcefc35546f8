"""A circuit breaker per business-system adapter, shared by every worker through Redis.

Tool runs of one company spread over many worker processes, so an in-process breaker (as the LLM client
has) would let each process hammer a dead system on its own. Here the state is one Redis hash per adapter:

closed --TOOLS_BREAKER_FAILURES consecutive transient failures--> open --TOOLS_BREAKER_RESET_SECONDS-->
half-open: one trial call (a short Redis lock), the others fail fast --success--> closed, --failure--> open.

Redis down means no breaker, not no tools: the adapter is called and its own timeouts still bound it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from apps.core.redis import state_key, state_redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerState:
    state: str  # closed | open | half_open
    failures: int


class AdapterBreaker:
    def __init__(self, key: str) -> None:
        self.key = key
        self._hash = state_key("breaker", "tool", key)
        self._trial = state_key("breaker", "tool", key, "trial")

    @property
    def threshold(self) -> int:
        return max(1, int(settings.TOOLS_BREAKER_FAILURES))

    @property
    def reset_seconds(self) -> float:
        return float(settings.TOOLS_BREAKER_RESET_SECONDS)

    def state(self) -> BreakerState:
        try:
            raw = state_redis().hgetall(self._hash)
        except Exception:
            return BreakerState("closed", 0)
        failures = int(raw.get(b"failures", 0))
        opened_at = float(raw.get(b"opened_at", 0))
        if not opened_at:
            return BreakerState("closed", failures)
        if time.time() - opened_at < self.reset_seconds:
            return BreakerState("open", failures)
        return BreakerState("half_open", failures)

    def allow(self) -> bool:
        current = self.state()
        if current.state == "closed":
            return True
        if current.state == "open":
            return False
        try:
            # One trial at a time; the lock expires by itself if its holder dies mid-call.
            return bool(state_redis().set(self._trial, b"1", nx=True, ex=max(5, int(self.reset_seconds))))
        except Exception:
            return True

    def record_success(self) -> None:
        try:
            was = self.state().state
            state_redis().delete(self._hash, self._trial)
        except Exception:
            return
        if was != "closed":
            logger.info("tool adapter circuit %s closed again", self.key)

    def record_failure(self) -> None:
        try:
            client = state_redis()
            failures = int(client.hincrby(self._hash, "failures", 1))
            client.expire(self._hash, 86400)
            if failures >= self.threshold:
                opened = client.hget(self._hash, "opened_at")
                client.hset(self._hash, "opened_at", str(time.time()))
                client.delete(self._trial)
                if not opened or self.state().state != "closed":
                    logger.warning(
                        "tool adapter circuit %s open after %d consecutive failures", self.key, failures
                    )
        except Exception as exc:
            logger.warning("tool adapter breaker %s not updated: %s", self.key, exc.__class__.__name__)

    def reset(self) -> None:
        state_redis().delete(self._hash, self._trial)
