"""bench/tool_roundtrip.py still runs: its `--smoke` size exits 0, prints its table and ends with a JSON line
of sane figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed. It starts its own
PostgreSQL, Valkey and a real Celery worker on the "tools" queue, and takes about 15 seconds.
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
def test_tool_roundtrip_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tool_roundtrip.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("A  tool: task sent -> result re-read") for line in lines)
    assert any(line.startswith("B  floor: Redis PING") for line in lines)
    report = json.loads(lines[-1])

    assert report["bench"] == "tool_roundtrip"
    for name in ("tool_ms", "ping_ms", "lpush_blpop_ms", "propose_to_result_ms"):
        figures = report[name]
        assert figures["n"] == 10
        assert 0 < figures["p50"] <= figures["p95"]
    # A tool round trip is a Redis round trip plus a queue, a worker and the database: never cheaper.
    assert report["ratio_p50"] > 1
    assert report["ratio_p95"] > 0
    assert report["added_ms_p50"] == pytest.approx(
        report["tool_ms"]["p50"] - report["ping_ms"]["p50"], abs=0.01
    )
    assert report["propose_to_result_ms"]["p50"] >= report["tool_ms"]["p50"]
    low, high = report["ratio_ci90"]["ping_p50"]
    assert 0 < low <= high

    breakdown = report["breakdown_ms"]
    assert len(breakdown) == 4
    for figures in breakdown.values():
        assert figures["n"] == 10
        assert figures["p50"] is not None
    assert len(report["rounds"]) == 10

    config = report["config"]
    assert config["smoke"] is True
    assert (config["rounds"], config["warmup"]) == (10, 2)
    assert (config["worker_pool"], config["worker_concurrency"], config["worker_queue"]) == (
        "prefork",
        2,
        "tools",
    )
    assert config["broker"].startswith("redis://")
    assert config["conversation"] is True
