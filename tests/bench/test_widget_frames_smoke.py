"""bench/widget_frames.py still runs: its `--smoke` size exits 0, prints its table and ends with a JSON line
of sane figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed. It starts its own
PostgreSQL, Valkey, Daphne and a websockets echo server.
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
def test_widget_frames_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "widget_frames.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("A1 ping -> pong (ours)") for line in lines)
    assert any(line.startswith("B2 connect + echo (floor)") for line in lines)
    report = json.loads(lines[-1])
    assert report["bench"] == "widget_frames"
    for name in ("frame_ms", "conversation_frame_ms", "echo_ms", "hello_ms", "echo_connect_ms"):
        assert report[name]["n"] == 20
        assert 0 < report[name]["p50"] <= report[name]["p95"]
    # A frame through the desk does strictly more than an echo: parse, budget, session check.
    assert report["ratio_frame_p50"] > 1
    assert report["ratio_hello_p50"] > 1
    assert report["ratio_conversation_frame_p50"] > 1
    for key in ("ratio_frame_ci90", "ratio_conversation_frame_ci90", "ratio_hello_ci90"):
        low, high = report[key]
        assert 0 < low <= high
    config = report["config"]
    assert (config["rounds"], config["warmup"]) == (20, 3)
    assert config["session"] == "verified customer"
