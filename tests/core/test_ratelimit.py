"""Sliding-window rate limits on the test's real Valkey (apps/core/ratelimit.py, CONTRACTS §3).

Time is moved by passing `now` (unix seconds) instead of Redis's clock: no test sleeps."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from apps.core.errors import RateLimited
from apps.core.ratelimit import Limit, rate_limit_check
from apps.core.redis import state_redis

pytestmark = pytest.mark.anyio

# A minute boundary, as fixed windows counted them (a multiple of 60).
BOUNDARY = 1_800_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_windows_left() -> None:
    client = state_redis()
    keys = list(client.scan_iter(match="hd:rl:*", count=1000))
    if keys:
        client.delete(*keys)


def _subject() -> str:
    return f"{uuid.uuid4()}:{uuid.uuid4()}"  # tenant-qualified, as the widget's are


async def _admitted(limits: list[Limit], *, now: float) -> bool:
    try:
        await rate_limit_check(limits, now=now)
    except RateLimited:
        return False
    return True


async def _burst(limits: list[Limit], n: int, *, at: float) -> list[bool]:
    return [await _admitted(limits, now=at + i / 1000) for i in range(n)]


async def test_a_burst_just_before_a_minute_boundary_and_one_just_after_it_is_refused() -> None:
    limits = [Limit("visitor", _subject(), 5, 60)]
    assert await _burst(limits, 5, at=BOUNDARY - 0.1) == [True] * 5
    # A fixed window would start again at the boundary and admit the second burst in full.
    assert await _burst(limits, 5, at=BOUNDARY + 0.1) == [False] * 5
    with pytest.raises(RateLimited) as refused:
        await rate_limit_check(limits, now=BOUNDARY + 0.2)
    # The first hit of the burst leaves the window 60 s after it was made: 59.9 s from now, rounded up.
    assert refused.value.retry_after == 60
    assert "Please wait 60 seconds" in str(refused.value)


async def test_the_limit_recovers_as_hits_leave_the_window() -> None:
    limits = [Limit("visitor", _subject(), 3, 60)]
    assert await _burst(limits, 3, at=BOUNDARY) == [True, True, True]  # at +0, +0.001, +0.002
    assert not await _admitted(limits, now=BOUNDARY + 59.9)
    # 60 s after the first hit one slot is free again, and only one.
    assert await _admitted(limits, now=BOUNDARY + 60.0005)
    assert not await _admitted(limits, now=BOUNDARY + 60.0008)
    with pytest.raises(RateLimited) as refused:
        await rate_limit_check(limits, now=BOUNDARY + 60.0009)
    assert refused.value.retry_after == 1  # the next hit leaves at +60.001: under a second, never 0
    # A whole window later the full budget is back.
    assert await _burst(limits, 3, at=BOUNDARY + 130) == [True, True, True]
    assert not await _admitted(limits, now=BOUNDARY + 130.5)


async def test_refused_hits_are_not_counted_so_a_steady_client_is_admitted_again() -> None:
    limits = [Limit("visitor", _subject(), 2, 60)]
    assert await _burst(limits, 2, at=BOUNDARY) == [True, True]
    # Knocking every second for the rest of the window does not push its end further away.
    assert [await _admitted(limits, now=BOUNDARY + s) for s in range(1, 60)] == [False] * 59
    assert await _admitted(limits, now=BOUNDARY + 60.5)
    assert await _admitted(limits, now=BOUNDARY + 60.5)
    assert state_redis().zcard(limits[0].key) == 2  # a set never holds more than its limit


async def test_one_visitor_address_or_company_does_not_spend_anothers_budget() -> None:
    tenant, other_tenant = uuid.uuid4(), uuid.uuid4()
    visitor, other_visitor = uuid.uuid4(), uuid.uuid4()

    def limits(tenant: uuid.UUID, visitor: uuid.UUID, ip: str) -> list[Limit]:
        return [
            Limit("visitor", f"{tenant}:{visitor}", 3, 60),
            Limit("ip", ip, 5, 60),
            Limit("tenant", str(tenant), 6, 60),
        ]

    flooder = limits(tenant, visitor, "203.0.113.1")
    assert await _burst(flooder, 10, at=BOUNDARY) == [True] * 3 + [False] * 7
    # Its refused messages spent neither its address's nor its company's budget.
    neighbour = limits(tenant, other_visitor, "203.0.113.1")  # same company, same address
    assert await _burst(neighbour, 3, at=BOUNDARY + 1) == [True, True, False]  # the address's 5 are spent
    stranger = limits(tenant, uuid.uuid4(), "198.51.100.7")  # same company, another address
    assert await _burst(stranger, 2, at=BOUNDARY + 2) == [True, False]  # the company's 6 are spent
    # The same visitor id and address under another company: nothing of the first company's counts.
    elsewhere = limits(other_tenant, visitor, "198.51.100.8")
    assert await _burst(elsewhere, 3, at=BOUNDARY + 3) == [True, True, True]


async def test_the_narrowest_refusing_limit_says_how_long_to_wait() -> None:
    subject = _subject()
    per_minute = Limit("frames-visitor", subject, 2, 60)
    per_ten_seconds = Limit("burst", subject, 1, 10)
    assert await _admitted([per_minute, per_ten_seconds], now=BOUNDARY)
    with pytest.raises(RateLimited) as refused:
        await rate_limit_check([per_minute, per_ten_seconds], now=BOUNDARY + 5)
    assert refused.value.retry_after == 5  # only the 10-second limit refuses
    assert await _admitted([per_minute, per_ten_seconds], now=BOUNDARY + 10.5)
    with pytest.raises(RateLimited) as refused:
        await rate_limit_check([per_minute, per_ten_seconds], now=BOUNDARY + 21)
    assert refused.value.retry_after == 39  # now the minute's limit refuses: its oldest hit leaves at +60


async def test_without_a_clock_redis_time_is_used_and_keys_expire_with_the_window() -> None:
    limit = Limit("visitor", _subject(), 2, 60)
    await rate_limit_check([limit])
    await rate_limit_check([limit])
    with pytest.raises(RateLimited) as refused:
        await rate_limit_check([limit])
    assert refused.value.retry_after in (59, 60)
    assert 0 < state_redis().ttl(limit.key) <= 61


async def test_two_processes_hitting_at_once_never_admit_more_than_the_limit() -> None:
    limits = [Limit("tenant", str(uuid.uuid4()), 25, 60)]
    results = await asyncio.gather(*[_admitted(limits, now=BOUNDARY + i / 1e4) for i in range(60)])
    assert results.count(True) == 25


async def test_without_redis_limits_are_not_enforced_and_a_warning_says_so(settings, caplog) -> None:
    """Today's behaviour, kept: a counter store that is down must not refuse every customer (fail open)."""
    settings.REDIS_URL = "redis://127.0.0.1:9"  # nothing listens on the discard port
    limits = [Limit("visitor", _subject(), 1, 60)]
    with caplog.at_level(logging.WARNING, logger="apps.core.ratelimit"):
        for _ in range(3):
            await rate_limit_check(limits, now=BOUNDARY)
    assert [r.getMessage() for r in caplog.records] == [
        "rate limits not enforced: Redis unavailable (ConnectionError)"
    ] * 3
