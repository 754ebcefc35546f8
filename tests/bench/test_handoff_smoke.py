"""bench/handoff.py still runs: its `--smoke` size exits 0, prints its table and ends with a JSON line of sane
figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed. It starts its own
PostgreSQL, Valkey, Daphne, a Celery worker for "tools,handoff" and a websockets echo server; the scripted
model (`--llm fake`) keeps it to about two minutes on a busy machine, where the local model can take that
for one answer.
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
def test_handoff_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "handoff.py"),
            "--smoke",
            "--llm",
            "fake",
            "--fake-delay",
            "0.3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("A1 handoff acked -> console case_file.ready") for line in lines)
    assert any(line.startswith("A2 agent reply -> widget agent.message") for line in lines)
    assert any(line.startswith("B1 floor: websockets echo round trip") for line in lines)
    report = json.loads(lines[-1])

    assert report["bench"] == "handoff"
    for name in ("case_file_ms", "reply_ms", "echo_1_ms", "echo_2_ms", "request_ack_ms", "reply_ack_ms"):
        figures = report[name]
        assert figures["n"] == 3
        assert 0 < figures["p50"] <= figures["p95"]
    assert report["echo_ms"]["n"] == 6
    # C replays the previous round's prompt: the first measured round has one (the warm-up's).
    assert report["llm_ms"]["n"] == 3
    # Each path is a websocket round trip plus storage, a queue or a model: never cheaper than the echo.
    assert report["ratio_case_file_p50"] > 1
    assert report["ratio_reply_p50"] > 1
    # The case file waits for its completion (0.3 s in the fake): at least that.
    assert report["case_file_ms"]["p50"] >= 300
    for key in ("case_file_p50", "reply_p50"):
        low, high = report["ratio_ci90"][key]
        assert 0 < low <= high
    assert len(report["breakdown_ms"]) == 4
    for figures in report["breakdown_ms"].values():
        assert figures["n"] == 3
    assert report["model_lines"] == {"goal_from_model": 3, "reply_from_model": 3, "rounds": 3}
    assert report["pii_in_case_files"] == 0
    assert len(report["rounds"]) == 3

    config = report["config"]
    assert config["smoke"] is True
    assert (config["rounds"], config["warmup"]) == (3, 1)
    assert (config["llm"], config["fake_delay_s"]) == ("fake", 0.3)
    assert (config["worker_queues"], config["worker_concurrency"]) == ("tools,handoff", 2)
    assert config["server_settings"] == "helpdesk.settings.production"
