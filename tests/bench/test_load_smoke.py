"""bench/load.py still runs: its `--smoke` size (20 idle sockets, 3 askers at once, 2 lone questions
before and after) exits 0, prints its tables and ends with a JSON line of sane figures and no error.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed. It starts its own
stack (PostgreSQL, Valkey, the bundled model, Daphne with the production settings, the demo company).
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
POINTS = ("before", "idle_open", "after_askers", "after_close", "end")


@pytest.mark.slow
def test_load_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("Daphne RSS (MiB)") for line in lines)
    assert any(line.startswith("askers / lone") for line in lines)
    report = json.loads(lines[-1])
    assert report["bench"] == "load"

    # Every visitor got in and every answer ended complete: nothing refused, closed or failed under load.
    errors = report["errors"]
    assert errors["total"] == 0, errors
    idle = report["idle"]
    assert idle["opened"] == idle["wanted"] == 20
    assert 0 < idle["connect_hello_ms"]["p50"] <= idle["connect_hello_ms"]["p95"]
    assert idle["connect_hello_ms"]["n"] == 20

    latency = report["latency_ms"]
    for name, n in (("lone_before", 2), ("lone_after", 2), ("lone", 4), ("askers", 3)):
        row = latency[name]
        assert row["n"] == n
        assert row["errors"] == 0
        for measure in ("first_content", "complete"):
            assert row[measure]["n"] == n
            assert 0 < row[measure]["p50"] <= row[measure]["p95"]
        # The first content is part of the reply: never after its end.
        assert row["first_content"]["p50"] <= row["complete"]["p50"]
    for key in ("first_content_p50", "first_content_p95", "complete_p50", "complete_p95"):
        assert report["ratios"][key] > 0

    memory = report["memory"]
    for point in POINTS:
        assert memory["rss_mib"][point] > 20  # a Django process, not a stray pid
        assert memory["fds"][point] > 0
        clients = report["redis_clients"][point]
        assert 0 <= clients["server"] <= clients["all"]
        assert sum(clients["server_by_name"].values()) == clients["server"]
    # Twenty open sockets hold at least their own descriptors in the server.
    assert memory["fds"]["idle_open"] >= memory["fds"]["before"] + 20
    assert memory["per_idle_socket_kib"] is not None

    # Where the time went: the desk's own record of every reply (own stack), ack before first content.
    for group, n in (("lone", 4), ("askers", 3)):
        rows = report["breakdown_ms"][group]
        for key in ("client t0 -> ack", "server ttft_ms", "server total_ms"):
            assert rows[key]["n"] == n
            assert rows[key]["p50"] > 0
        assert rows["client t0 -> ack"]["p50"] <= latency[group]["first_content"]["p50"]
        # The desk's clock starts at receipt, after the client's: never later than what the client saw.
        assert rows["server ttft_ms"]["p50"] <= latency[group]["first_content"]["p50"]
        # Each question was asked once: no reply came from the answer cache by repetition.
        assert rows["answer_cache_hits"] == 0
    config = report["config"]
    assert config["question_repeats"] == 0
    assert config["questions"] == 1 + 2 * 2 + 3
    assert (config["sockets"], config["askers"], config["lone"]) == (20, 3, 2)
    assert config["smoke"] is True
    assert config["model"].endswith(".gguf")
    assert config["answer_style"]["effective"] in {"quote", "compose"}
    assert config["open_files"]["soft"] >= config["open_files"]["wanted"]
