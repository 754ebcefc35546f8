"""bench/ratelimit.py still runs: its `--smoke` size exits 0, prints its table and ends with a JSON line of
sane figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed. It starts its own
Valkey.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import HARNESS_VARS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ratelimit_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ratelimit.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("A check, 3 limits (ours)") for line in lines)
    assert any(line.startswith("B PING (floor)") for line in lines)
    report = json.loads(lines[-1])
    assert report["bench"] == "ratelimit"
    for name in ("check_ms", "ping_ms"):
        assert report[name]["n"] == 200
        assert 0 < report[name]["p50"] <= report[name]["p95"]
    # A check runs a script over three sorted sets: more than a PING, never less.
    assert report["ratio_p50"] > 1
    low, high = report["ratio_ci90"]
    assert 0 < low <= high
    assert (report["config"]["rounds"], report["config"]["warmup"]) == (200, 20)
    assert report["config"]["limits_per_check"] == 3
