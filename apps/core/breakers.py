"""Circuit breakers whose state every process shares, built on pybreaker with its Redis storage.

The desk runs many web and worker processes. A breaker that lives in one process lets each of them hammer a
dead system on its own, so `shared_breaker` keeps the state (closed / open / half-open, the failure count and
when it opened) in Redis through `pybreaker.CircuitRedisStorage`, under `hd:breaker:<name>`.

Redis down means no shared breaker, not no calls: the breaker falls back to pybreaker's in-memory storage for
this process (said once in the log) and the calls' own timeouts still bound them.

pybreaker runs a guarded call under a per-instance lock, so one instance serialises its calls. The tools use
a fresh instance per run (`apps.tools.breaker`), each in its own worker process, so nothing waits on that
lock. The LLM client keeps its own breaker for that reason (docs/adr/0010-maintained-libraries.md).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pybreaker
from redis.exceptions import RedisError

from apps.core.redis import state_key, state_redis

logger = logging.getLogger(__name__)

_warned: set[str] = set()
_warned_lock = threading.Lock()


class _LogStateChanges(pybreaker.CircuitBreakerListener):
    """Says, in a sentence, each state change this process makes or notices."""

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else "unknown"
        if new_state.name == pybreaker.STATE_OPEN:
            logger.warning(
                "circuit %s open (was %s) after %d consecutive failures; failing fast for %.0fs",
                cb.name,
                old,
                cb.fail_counter,
                cb.reset_timeout,
            )
        elif new_state.name == pybreaker.STATE_HALF_OPEN:
            logger.info("circuit %s half-open: one trial call goes through", cb.name)
        elif old != "unknown":
            logger.info("circuit %s closed again (was %s)", cb.name, old)


_LISTENER = _LogStateChanges()


class _RedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage with `opened_at` kept to the millisecond.

    pybreaker stores whole seconds, so a breaker could reopen for business up to a second early: with a
    reset period of a second or two (tests, impatient operators) that is most of the period.
    """

    @property
    def opened_at(self) -> datetime | None:
        try:
            raw = self._redis.get(self._namespace("opened_at"))
        except RedisError:
            logger.warning("circuit storage: opened_at unreadable, Redis error")
            return None
        return datetime.fromtimestamp(float(raw), tz=UTC) if raw else None

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        try:
            self._redis.set(self._namespace("opened_at"), f"{now.timestamp():.3f}")
        except RedisError:
            logger.warning("circuit storage: opened_at not written, Redis error")


def breaker_storage(name: str) -> pybreaker.CircuitBreakerStorage:
    """Redis storage for the breaker `name`, or this process's memory when Redis cannot be reached."""
    try:
        return _RedisStorage(pybreaker.STATE_CLOSED, state_redis(), namespace=state_key("breaker", name))
    except (RedisError, OSError) as exc:
        with _warned_lock:
            first = name not in _warned
            _warned.add(name)
        if first:
            logger.warning(
                "circuit %s kept in this process only: Redis could not be reached (%s)",
                name,
                exc.__class__.__name__,
            )
        return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)


def shared_breaker(name: str, *, fail_max: int, reset_seconds: float) -> pybreaker.CircuitBreaker:
    """A pybreaker breaker named `name` with its state in Redis (shared by every process)."""
    return pybreaker.CircuitBreaker(
        fail_max=max(1, fail_max),
        reset_timeout=reset_seconds,
        state_storage=breaker_storage(name),
        listeners=[_LISTENER],
        name=name,
    )
