"""A circuit breaker per model endpoint, so a dead LLM server is not hammered by every reply; and a queue
per endpoint, so a busy one is not mistaken for a dead one.

closed --N consecutive failed attempts--> open --reset period--> half-open (one trial call, others fail
fast) --trial succeeds--> closed, --trial fails--> open again.

The state is in-process: each web or worker process learns on its own that the endpoint is down, after at
most `LLM_BREAKER_FAILURES` attempts. Sharing it through Redis would add a round trip to every call and a
second thing that can fail; a few wasted attempts per process is the cheaper price.

Every method holds a `threading.Lock` and never awaits, so one breaker is safe from event loops and threads.

Busy is not broken. A server writing other answers is slow to start a new one, and a server that says so
(HTTP 503 "loading" or 429) is not failing: `chat_stream` gives such an attempt back with `release()`
instead of `record_failure()`. What counts: refused connections, other 5xx, protocol errors, and silences
while no other stream of this process was using the endpoint. And a call never has to compete for the
server at all while `LLM_MAX_CONCURRENT_STREAMS` of this process's streams are on it: it waits its turn in
the endpoint's `StreamQueue` (first come, first served, bounded by `LLM_QUEUE_TIMEOUT_SECONDS`), and its
caller is told its place. Unstreamed calls (tool decisions, case files) follow the same rule: a 429 or 503
gives the attempt back, and a timeout counts only when no other call of this process was on the endpoint
during it (`CircuitBreaker.call()` keeps that count).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from django.conf import settings

logger = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]

# What a server says when it is loading its model or writing other answers: busy, not broken.
BUSY_STATUS = frozenset({429, 503})
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
        # Unstreamed calls in flight (tool decisions, case files): a timeout while another call had the
        # endpoint is the server being busy, not broken (streams have their own queue for this).
        self._calls = 0
        self._calls_started = 0

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

    @contextlib.contextmanager
    def call(self) -> Iterator[Callable[[], bool]]:
        """Counts one unstreamed call as in flight; yields `shared()`, which tells whether another call used
        the endpoint at any moment of this one (one was in flight before, started since, or is still on it).
        """
        with self._lock:
            others_before = self._calls
            self._calls += 1
            self._calls_started += 1
            started_at = self._calls_started

        def shared() -> bool:
            with self._lock:
                return others_before > 0 or self._calls > 1 or self._calls_started != started_at

        try:
            yield shared
        finally:
            with self._lock:
                self._calls -= 1

    def settle_fault(self, admission: Admission, *, busy: bool) -> None:
        """The verdict of a failed attempt: a busy endpoint gives the attempt back, anything else counts."""
        if busy:
            self.release(admission)
        else:
            self.record_failure()

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
    """Forget every breaker and stream queue (tests). Breakers created afterwards read time from `clock`."""
    global _clock
    with _registry_lock:
        _registry.clear()
        _queues.clear()
        _clock = clock or time.monotonic


# ---- waiting for a free stream ------------------------------------------------------------------------

OnWait = Callable[[int], Awaitable[None]]
# While a call waits, its caller hears its place at least this often, even when it has not moved: enough to
# keep a "you're next" notice and a reply's heartbeat alive.
WAIT_NOTICE_SECONDS = 5.0


class QueueTimeout(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    granted: bool = False


class StreamQueue:
    """The streams this process has in flight to one endpoint, and the calls waiting for one of them to end.

    Slots are handed over in arrival order: a stream that ends gives its slot straight to the first waiter,
    so a newcomer cannot overtake the queue. Waiters may belong to different event loops (Daphne's, a Celery
    task's `asyncio.run`): they are woken with `call_soon_threadsafe`, and all bookkeeping is under a
    `threading.Lock` that is never held across an await.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._in_flight = 0
        self._started = 0  # streams ever given a slot: tells a caller whether others came and went
        self._limit = 0
        self._waiting: deque[_Waiter] = deque()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def started(self) -> int:
        with self._lock:
            return self._started

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    async def acquire(self, *, limit: int, timeout: float, on_wait: OnWait | None = None) -> None:
        """Returns holding a slot (give it back with `release()`), or raises `QueueTimeout`. `limit` <= 0
        means no limit. `on_wait(position)` (1 = next) is awaited when the call has to wait, whenever its
        place changes, and every WAIT_NOTICE_SECONDS while it does not; whatever it raises ends the wait."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._limit = limit
            if limit <= 0 or (self._in_flight < limit and not self._waiting):
                self._in_flight += 1
                self._started += 1
                return
            waiter = _Waiter(loop=loop)
            self._waiting.append(waiter)
            waited_behind = self._in_flight
        deadline = loop.time() + timeout
        reported: int | None = None
        reported_at = 0.0
        logger.info("llm stream to %s waits: %d in flight, limit %d", self.key, waited_behind, limit)
        try:
            while True:
                waiter.wake.clear()  # before looking: a wake-up sent after this is not lost
                with self._lock:
                    if waiter.granted:
                        return
                    position = self._waiting.index(waiter) + 1
                now = loop.time()
                if now >= deadline:
                    raise QueueTimeout(
                        f"waited {timeout:g}s for one of {limit} streams to {self.key} (place {position})"
                    )
                if on_wait is not None and (position != reported or now - reported_at >= WAIT_NOTICE_SECONDS):
                    reported, reported_at = position, now
                    await on_wait(position)
                    continue  # the slot may have come while the caller was being told
                try:
                    async with asyncio.timeout(min(deadline - now, WAIT_NOTICE_SECONDS)):
                        await waiter.wake.wait()
                except TimeoutError:
                    pass
        except BaseException:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiting.remove(waiter)
                    self._wake_all_locked()  # the ones behind moved up
            if granted:
                self.release()  # handed a slot while leaving: pass it on
            raise

    def release(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            while self._waiting and (self._limit <= 0 or self._in_flight < self._limit):
                waiter = self._waiting.popleft()
                if waiter.loop.is_closed():
                    continue  # its caller is gone with its loop
                waiter.granted = True
                self._in_flight += 1
                self._started += 1
                self._wake_locked(waiter)
            self._wake_all_locked()

    def _wake_all_locked(self) -> None:
        for waiter in self._waiting:
            self._wake_locked(waiter)

    @staticmethod
    def _wake_locked(waiter: _Waiter) -> None:
        # A loop that closed meanwhile raises RuntimeError; its waiter is gone with it.
        with contextlib.suppress(RuntimeError):
            waiter.loop.call_soon_threadsafe(waiter.wake.set)


_queues: dict[str, StreamQueue] = {}


def stream_queue_for(base_url: str) -> StreamQueue:
    """The process's stream queue for this endpoint: the server's slots are shared by all its models."""
    key = base_url.rstrip("/")
    with _registry_lock:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = StreamQueue(key)
        return queue
