"""A circuit breaker per business-system adapter, shared by every worker through Redis (pybreaker).

Tool runs of one company spread over many worker processes, so an in-process breaker would let each process
hammer a dead system on its own. The state machine and its storage are pybreaker's
(`apps.core.breakers.shared_breaker`):

closed --TOOLS_BREAKER_FAILURES consecutive transient failures--> open --TOOLS_BREAKER_RESET_SECONDS-->
half-open: one trial call, the others fail fast --success--> closed, --failure--> open.

What this module adds to pybreaker:

- The worker classifies an adapter's outcome itself (a transient failure, an answer that is a no, a reply
  that does not validate), so outcomes are reported with `record_success()` / `record_failure()` rather than
  by wrapping the call. Each report goes through pybreaker's own `call()`, so its transitions apply.
- One trial at a time across processes: pybreaker lets "the next call" of each process through when the
  reset period is over; a short Redis lock (`SET NX EX`) makes it one call in all. The lock expires by itself
  if its holder dies mid-call.

Redis down means no breaker, not no tools: the adapter is called and its own timeouts still bound it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pybreaker
from django.conf import settings

from apps.core.breakers import shared_breaker
from apps.core.redis import state_key, state_redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerState:
    state: str  # closed | open | half_open
    failures: int


class _Failed(Exception):
    """Reports a failed attempt to pybreaker."""


def _fail() -> None:
    raise _Failed


def _succeed() -> None:
    return None


class AdapterBreaker:
    def __init__(self, key: str) -> None:
        self.key = key
        self._breaker = shared_breaker(
            f"tool:{key}", fail_max=self.threshold, reset_seconds=self.reset_seconds
        )
        self._trial = state_key("breaker", "tool", key, "trial")

    @property
    def threshold(self) -> int:
        return max(1, int(settings.TOOLS_BREAKER_FAILURES))

    @property
    def reset_seconds(self) -> float:
        return float(settings.TOOLS_BREAKER_RESET_SECONDS)

    def state(self) -> BreakerState:
        storage = self._breaker._state_storage
        current = storage.state
        failures = storage.counter
        if current == pybreaker.STATE_CLOSED:
            return BreakerState("closed", failures)
        if current == pybreaker.STATE_HALF_OPEN:
            return BreakerState("half_open", failures)
        opened_at = storage.opened_at
        if opened_at is not None and (datetime.now(UTC) - opened_at).total_seconds() < self.reset_seconds:
            return BreakerState("open", failures)
        return BreakerState("half_open", failures)

    def allow(self) -> bool:
        current = self.state()
        if current.state == "closed":
            return True
        if current.state == "open":
            return False
        try:
            took = bool(state_redis().set(self._trial, b"1", nx=True, ex=max(5, int(self.reset_seconds))))
        except Exception:
            return True
        if took:
            self._breaker.half_open()
        return took

    def record_success(self) -> None:
        with contextlib.suppress(pybreaker.CircuitBreakerError):
            self._breaker.call(_succeed)
        self._trial_release()

    def record_failure(self) -> None:
        with contextlib.suppress(_Failed, pybreaker.CircuitBreakerError):
            self._breaker.call(_fail)
        if self._breaker.current_state == pybreaker.STATE_OPEN:
            self._trial_release()

    def _trial_release(self) -> None:
        with contextlib.suppress(Exception):
            state_redis().delete(self._trial)

    def reset(self) -> None:
        self._breaker.close()
        self._trial_release()
