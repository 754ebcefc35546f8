"""bench/answers.py still runs: its `--smoke` size exits 0 and ends with a JSON line of sane figures, no
false answer-cache hit and no unsupported composed sentence shown.

Not a timed test (CONTRACTS §4): latencies are checked for shape, never for speed. It starts the whole stack
with the real local model (the compose questions call it), so it gets the time bench/ttft.py's smoke gets.
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
ROW_KEYS = {
    "questions",
    "answerable",
    "right",
    "right_document_cited",
    "unanswerable",
    "abstained_right",
    "wrongly_abstained",
    "answered_unanswerable",
    "composed_shown",
    "unsupported_shown",
    "unsupported_shown_from_question",
    "dropped",
    "fell_back_to_quote",
    "cache_hits",
    "failed",
    "first_content_ms",
    "complete_ms",
}


@pytest.mark.slow
def test_answers_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "answers.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["bench"] == "answers"
    assert set(report) >= {
        "unsupported_shown",
        "false_cache_hits",
        "cache_hits_on_same",
        "dropped",
        "failed",
        "styles",
        "cache",
        "misses",
        "config",
    }
    # The two promises: the cache never answers a different question, and no composed sentence with a
    # number the evidence lacks reaches a customer.
    assert report["false_cache_hits"] == 0
    assert report["unsupported_shown"] == 0
    assert report["failed"] == 0

    styles = report["styles"]
    assert set(styles) == {"quote", "compose"}
    # The shared acceptance set when this checkout has it, else the labelled set stands in.
    name = "acceptance" if report["config"]["acceptance_file"] else "labelled"
    assert set(styles["quote"]) == {name, "concurrent"}
    assert set(styles["compose"]) == {name}
    quote, compose = styles["quote"][name], styles["compose"][name]
    for row in (quote, compose, styles["quote"]["concurrent"]):
        assert set(row) >= ROW_KEYS
        for timing in ("first_content_ms", "complete_ms"):
            assert row[timing]["n"] == row["questions"]
            assert 0 < row[timing]["p50"] <= row[timing]["p95"]
        assert row["first_content_ms"]["p50"] <= row["complete_ms"]["p50"]
    assert (quote["questions"], quote["answerable"], quote["unanswerable"]) == (5, 3, 2)
    assert (compose["questions"], compose["answerable"]) == (2, 2)
    assert styles["quote"]["concurrent"]["questions"] == 2
    # `quote` never calls the model: nothing composed, nothing dropped.
    assert quote["composed_shown"] == quote["dropped"] == quote["fell_back_to_quote"] == 0
    assert 0 <= quote["right"] <= 3
    assert 0 <= quote["abstained_right"] <= 2
    # A cold cache per set: five different questions make no hit.
    assert quote["cache_hits"] == 0

    cache = report["cache"]
    assert (cache["pairs"], cache["same_pairs"], cache["different_pairs"]) == (2, 1, 1)
    assert cache["false_hits"] == report["false_cache_hits"]
    assert 0 <= cache["hits_on_same"] <= cache["same_pairs_stored"] <= 1

    config = report["config"]
    assert config["smoke"] is True
    assert config["model_file"].endswith(".gguf")
    assert config["questions"] == {"quote": {name: 5}, "compose": {name: 2}}
    assert 0 < config["abstain_threshold"] < 1
