"""bench/tool_decision.py still runs: its `--smoke` size exits 0, prints its table and ends with a JSON line
of sane figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed. It starts the
two real local model servers (no database), and takes about 30 seconds.
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
def test_tool_decision_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tool_decision.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("A  ours: tools_decide, wall time") for line in lines)
    assert any(line.startswith("B  floor: raw TTFT, streamed plain answer") for line in lines)
    report = json.loads(lines[-1])

    assert report["bench"] == "tool_decision"
    for name in ("decision_ms", "floor_ttft_ms"):
        figures = report[name]
        assert figures["n"] == 4
        assert 0 < figures["p50"] <= figures["p95"]
    assert report["ratio_p50"] > 0
    assert report["ratio_p95"] > 0
    assert report["decision_ms_p50"] == report["decision_ms"]["p50"] > 0
    assert report["floor_ttft_ms_p50"] == report["floor_ttft_ms"]["p50"] > 0

    # Every measured decision is tallied under its question: a tool name, "a+b", "no tool" or "error: ...".
    choices = report["choices"]
    assert choices
    assert sum(n for tally in choices.values() for n in tally.values()) == 4
    assert len(report["rounds"]) == 4
    for row in report["rounds"]:
        assert row["choice"] in choices[row["question"]]
        assert row["decision_prompt_tokens"] > 0
        assert row["decision_server_passes"] > 0
        assert row["decision_prompt_tokens_evaluated"] + row["decision_prompt_tokens_reused"] > 0

    config = report["config"]
    assert config["smoke"] is True
    assert (config["rounds"], config["warmup"]) == (4, 1)
    assert config["model_file"].endswith(".gguf")
    # Two servers, as `make run`: decisions with the function-calling format, answers with the model's own.
    assert config["chat_format"] == "chatml-function-calling"
    assert config["answers_chat_format"] is None
    servers = config["servers"]
    assert servers["decisions"]["chat_format"] == "chatml-function-calling"
    assert servers["answers"]["chat_format"] is None
    assert "--chat_format" not in servers["answers"]["argv"]
    assert (
        servers["answers"]["argv"][servers["answers"]["argv"].index("--port") + 1]
        != (servers["decisions"]["argv"][servers["decisions"]["argv"].index("--port") + 1])
    )
    assert config["n_ctx"] > 0
    assert config["n_threads"] > 0
    assert config["llama_cpp_python"] != "?"
    assert len(config["tools"]) == 5
    assert config["floor_request"]["stream"] is True
