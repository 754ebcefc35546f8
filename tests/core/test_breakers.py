"""Circuit breakers on pybreaker with Redis storage (apps/core/breakers.py, apps/tools/breaker.py): every
process sees one state, one trial goes through after the reset period, and Redis being down costs the
breaker, not the calls."""

from __future__ import annotations

import logging
import time
import uuid

import pybreaker
import pytest
import redis

from apps.core import breakers
from apps.tools import breaker as tool_breaker
from apps.tools.breaker import AdapterBreaker


@pytest.fixture
def fast(settings) -> None:
    settings.TOOLS_BREAKER_FAILURES = 2
    settings.TOOLS_BREAKER_RESET_SECONDS = 2.0


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_two_processes_see_the_same_open_breaker(fast: None) -> None:
    key = _key()
    # Two instances stand for two worker processes: nothing is shared between them but Redis.
    one, other = AdapterBreaker(key), AdapterBreaker(key)
    one.record_failure()
    assert other.state().state == "closed"
    assert other.state().failures == 1
    other.record_failure()
    assert one.state().state == "open"
    assert not one.allow()
    assert not AdapterBreaker(key).allow()


def test_after_the_reset_period_one_trial_goes_through_and_its_success_closes(fast: None) -> None:
    key = _key()
    one, other = AdapterBreaker(key), AdapterBreaker(key)
    one.record_failure()
    one.record_failure()
    time.sleep(2.1)
    assert one.state().state == "half_open"
    assert one.allow() is True
    assert other.allow() is False  # the other process waits for the trial's verdict
    one.record_success()
    assert other.state() == tool_breaker.BreakerState("closed", 0)
    assert other.allow() is True


def test_a_failed_trial_opens_the_breaker_again(fast: None) -> None:
    key = _key()
    one = AdapterBreaker(key)
    one.record_failure()
    one.record_failure()
    time.sleep(2.1)
    assert one.allow() is True
    one.record_failure()
    assert AdapterBreaker(key).state().state == "open"
    assert not AdapterBreaker(key).allow()


def test_a_late_failure_does_not_extend_the_open_period(fast: None) -> None:
    key = _key()
    one = AdapterBreaker(key)
    one.record_failure()
    one.record_failure()
    opened = one._breaker._state_storage.opened_at
    one.record_failure()  # a call admitted before the breaker opened fails late
    assert one._breaker._state_storage.opened_at == opened
    assert one.state().state == "open"


def test_redis_down_falls_back_to_this_process_and_says_so_once(
    fast: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    monkeypatch.setattr(breakers, "state_redis", lambda: dead)
    monkeypatch.setattr(tool_breaker, "state_redis", lambda: dead)
    name = _key()
    with caplog.at_level(logging.WARNING, logger="apps.core.breakers"):
        first = breakers.breaker_storage(name)
        breakers.breaker_storage(name)
    assert isinstance(first, pybreaker.CircuitMemoryStorage)
    said = [r for r in caplog.records if "kept in this process only" in r.getMessage()]
    assert len(said) == 1
    # The tools are still called: the breaker works in memory for this process.
    guarded = AdapterBreaker(name)
    assert guarded.allow() is True
    guarded.record_failure()
    assert guarded.state().failures == 1


def test_state_changes_are_logged_in_a_sentence(fast: None, caplog: pytest.LogCaptureFixture) -> None:
    key = _key()
    with caplog.at_level(logging.INFO, logger="apps.core.breakers"):
        one = AdapterBreaker(key)
        one.record_failure()
        one.record_failure()
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"circuit tool:{key} open" in m and "2 consecutive failures" in m for m in messages)
