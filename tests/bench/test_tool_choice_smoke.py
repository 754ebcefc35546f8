"""bench/tool_choice.py still runs: its `--smoke` size exits 0, prints its table and ends with a JSON line
of sane figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed or quality. It
starts the two real local model servers (no database) and asks the bundled model about 14 requests.
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
METHODS = ("embedding", "bundled_model")
TOOLS = ["bill_explain", "order_lookup", "plan_change", "plans_compare", "ticket_create"]


@pytest.mark.slow
def test_tool_choice_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tool_choice.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("(a) embedding chooser: tools_choose") for line in lines)
    assert any(line.startswith("(b) bundled model: tools_decide") for line in lines)
    assert any("not measured: no capable model configured" in line for line in lines)
    report = json.loads(lines[-1])

    assert report["bench"] == "tool_choice"
    rows = report["rows"]
    # Two requests per tool and four that need none.
    assert (report["requests"], report["need_tool"], len(rows)) == (14, 10, 14)
    assert report["capable_model"] == "not measured: no capable model configured"
    for method in METHODS:
        figures = report["methods"][method]
        assert figures["n"] == 14
        for name in ("precision", "recall", "accuracy", "no_tool_accuracy", "end_to_end"):
            assert figures[name] is None or 0 <= figures[name] <= 1
        assert 0 <= figures["ms"]["p50"] <= figures["ms"]["p95"]
        assert sorted(figures["per_tool"]) == TOOLS
    assert report["methods"]["bundled_model"]["model_calls"] == 14  # the old path asks every time
    assert 0 <= report["methods"]["embedding"]["model_calls"] < 14
    for row in rows:
        assert set(METHODS) <= set(row)
        for method in METHODS:
            outcome = row[method]
            assert outcome["ms"] >= 0
            assert all(len(call) == 2 for call in outcome["calls"])
    config = report["config"]
    assert config["smoke"] is True
    assert config["tools"] == [
        "bill_explain",
        "order_lookup",
        "plan_change",
        "plans_compare",
        "ticket_create",
    ]
    assert config["decisions_server"]["chat_format"] == "chatml-function-calling"
    assert set(config["thresholds"]) == {
        "similarity",
        "margin_over_none",
        "margin_over_runner_up",
        "topic_bonus",
        "impersonal_bonus",
    }
    assert report["embed_ms"]["n"] == 14
