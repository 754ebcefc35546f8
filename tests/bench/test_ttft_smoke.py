"""bench/ttft.py still runs: its `--smoke` size exits 0 and ends with a JSON line of sane figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed. It starts the
whole stack with the real local model, so it gets more time than the other bench smoke tests; on a busy
2-core machine the model alone can take a minute for three replies.
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
def test_ttft_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ttft.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["bench"] == "ttft"
    for name in ("ttft_ms", "itl_ms"):
        for side in ("ours", "raw"):
            figures = report[name][side]
            assert figures["n"] == 2
            assert 0 < figures["p50"] <= figures["p95"]
    for key in ("ttft_ratio_p50", "ttft_ratio_p95", "itl_ratio_p50", "itl_ratio_p95"):
        assert report[key] > 0
    # A goal is reported, never enforced: a miss must not fail the run.
    for verdict in report["goals"].values():
        assert verdict.split(",")[0] in {"PASS", "PASS (stretch)", "MISS"}

    # The pipeline's own record of the same replies.
    breakdown = report["breakdown_ms"]
    for key in ("server ttft_ms", "server llm_ttft_ms", "server retrieval_ms", "client t0 -> thinking"):
        assert breakdown[key]["n"] == 2
        assert breakdown[key]["p50"] > 0
    assert breakdown["server llm_ttft_ms"]["p50"] <= breakdown["server ttft_ms"]["p50"]

    # The fairness the pairing is for: no request found its whole prompt in the model server's cache,
    # and both sides reused only a shared prefix (the system prompt) of similar size.
    cache = report["cache"]
    assert cache["full_prompt_cache_hits"] == 0
    for side in ("ours", "raw"):
        assert cache[f"{side}_prompt_tokens_evaluated"]["n"] == 2
        assert 0 <= cache[f"{side}_prefix_reused_tokens"]["p95"] < cache[f"{side}_prompt_tokens"]["p50"]

    presidio = report["presidio"]
    assert presidio["pattern_only_ms"]["p50"] > 0
    assert presidio["pii_redact_ms"]["p50"] > 0
    assert 0 <= report["presidio_share"] < 1

    config = report["config"]
    assert config["smoke"] is True
    assert (config["rounds"], config["warmup"]) == (2, 1)
    assert config["model_file"].endswith(".gguf")
    assert config["quantisation"] == "Q4_1"
    assert config["n_ctx"] > 0
    assert config["n_threads"] > 0
    assert config["floor_request"]["max_tokens"] > 0
    assert config["floor_request"]["stream"] is True
    assert len(config["questions"]) == 2
