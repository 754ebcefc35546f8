"""Percentiles and ratios the benchmarks report (CONTRACTS.md §4)."""

from __future__ import annotations

import random
import statistics
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from apps.releases.report import percentile

BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 20261124


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1) of a non-empty list (the golden runs' own, one copy)."""
    return percentile(values, q)


def p50_p95(values: list[float], *, digits: int = 3) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    return {"p50": round(pct(values, 0.5), digits), "p95": round(pct(values, 0.95), digits), "n": len(values)}


def ratio(ours: float | None, floor: float | None) -> float | None:
    return round(ours / floor, 2) if ours is not None and floor else None


def bootstrap_ci(ours: list[float], floor: list[float]) -> list[float | None]:
    """90% interval of the ratio of medians, over rounds (pairs) resampled with replacement."""
    if not ours or len(ours) != len(floor):
        return [None, None]
    rng = random.Random(BOOTSTRAP_SEED)
    n = len(ours)
    values = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picks = [rng.randrange(n) for _ in range(n)]
        values.append(statistics.median(ours[i] for i in picks) / statistics.median(floor[i] for i in picks))
    return [round(pct(values, 0.05), 2), round(pct(values, 0.95), 2)]


def package_version(name: str) -> str:
    """An installed distribution's version, for a benchmark's recorded configuration."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def argv_value(argv: list[str], flag: str) -> str | None:
    """The value after `flag` in a command line (a server's --port, --model...)."""
    return argv[argv.index(flag) + 1] if flag in argv else None
