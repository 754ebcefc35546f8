"""A circuit breaker per model endpoint, so a dead or drowning LLM server is not hammered by every reply.

closed --N consecutive failed attempts--> open --reset period--> half-open (one trial call, others fail
fast) --trial succeeds--> closed, --trial fails--> open again.

The state is in-process: each web or worker process learns on its own that the endpoint is down, after at
most `LLM_BREAKER_FAILURES` attempts. Sharing it through Redis would add a round trip to every call and a
second thing that can fail; a few wasted attempts per process is the cheaper price.

Every method holds a `threading.Lock` and never awaits, so one breaker is safe from event loops and threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings

logger = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Admission:
    """What `allow()` hands an attempt. Only the holder of the trial admission may give the trial back."""

    trial: bool
    generation: int


class CircuitBreaker:
    def __init__(
        self, *, key: str, failure_threshold: int, reset_seconds: float, clock: Clock = time.monotonic
    ) -> None:
        self.key = key
        self.failure_threshold = max(1, failure_threshold)
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        # Bumped whenever a trial starts, so a stale trial admission cannot release a newer trial.
        self._generation = 0

    @property
    def state(self) -> State:
        with self._lock:
            return self._current_state()

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def _current_state(self) -> State:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_seconds:
            return "half_open"
        return self._state

    def allow(self) -> Admission | None:
        """An admission for one attempt, or None: fail fast without calling the endpoint."""
        with self._lock:
            state = self._current_state()
            if state == "closed":
                return Admission(trial=False, generation=self._generation)
            if state == "half_open" and not self._trial_in_flight:
                self._state = "half_open"
                self._trial_in_flight = True
                self._generation += 1
                logger.info("llm circuit %s half-open: letting one trial call through", self.key)
                return Admission(trial=True, generation=self._generation)
            return None

    def record_success(self) -> None:
        with self._lock:
            was = self._state
            self._state = "closed"
            self._failures = 0
            self._trial_in_flight = False
        if was != "closed":
            logger.info("llm circuit %s closed: the endpoint answered again", self.key)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            was = self._state
            if was == "open":
                opened = False  # a late failure of a call admitted earlier does not extend the wait
            elif was == "half_open" or self._failures >= self.failure_threshold:
                self._state = "open"
                self._opened_at = self._clock()
                self._trial_in_flight = False
                opened = True
            else:
                opened = False
            failures = self._failures
        if opened:
            logger.warning(
                "llm circuit %s open after %d consecutive failed attempts%s; failing fast for %.0fs",
                self.key,
                failures,
                " (the half-open trial failed)" if was == "half_open" else "",
                self.reset_seconds,
            )

    def release(self, admission: Admission) -> None:
        """The attempt ended without a verdict (cancelled by the caller, or a request-specific error).

        A trial that ends this way gives its place to the next caller instead of holding the breaker
        half-open forever.
        """
        if not admission.trial:
            return
        with self._lock:
            if self._trial_in_flight and self._generation == admission.generation:
                self._trial_in_flight = False


_registry: dict[str, CircuitBreaker] = {}
_registry_lock = threading.Lock()
_clock: Clock = time.monotonic


def breaker_key(base_url: str, model: str) -> str:
    return f"{base_url.rstrip('/')}|{model}"


def breaker_for(base_url: str, model: str) -> CircuitBreaker:
    """The process's breaker for this endpoint and model, created with the current settings."""
    key = breaker_key(base_url, model)
    with _registry_lock:
        breaker = _registry.get(key)
        if breaker is None:
            breaker = CircuitBreaker(
                key=key,
                failure_threshold=settings.LLM_BREAKER_FAILURES,
                reset_seconds=settings.LLM_BREAKER_RESET_SECONDS,
                clock=_clock,
            )
            _registry[key] = breaker
        return breaker


def breaker_states() -> dict[str, str]:
    with _registry_lock:
        breakers = list(_registry.values())
    return {b.key: b.state for b in breakers}


def reset_breakers(*, clock: Clock | None = None) -> None:
    """Forget every breaker (tests). Breakers created afterwards read time from `clock`."""
    global _clock
    with _registry_lock:
        _registry.clear()
        _clock = clock or time.monotonic
