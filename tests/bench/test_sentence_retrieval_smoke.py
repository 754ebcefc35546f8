"""bench/sentence_retrieval.py still runs: its `--smoke` size exits 0 and ends with a JSON line of sane
figures.

Not a timed test (CONTRACTS §4): figures are checked for shape and range, never for speed.
"""

from __future__ import annotations

import pytest

from tests.bench.test_bench_smoke import is_fraction, run_smoke


@pytest.mark.slow
def test_sentence_retrieval_smoke() -> None:
    report = run_smoke("sentence_retrieval.py")

    assert set(report) == {"latency", "ratios", "coverage", "config"}
    assert set(report["latency"]) == {
        "candidates",
        "passages",
        "retrieve",
        "two_trips",
        "neighbours",
        "raw_sentences",
        "select_1",
    }
    for figures in report["latency"].values():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]
    for figures in report["ratios"].values():
        assert figures["p50"] > 0
    coverage = report["coverage"]
    assert coverage["answerable"] > 0
    for key in ("answer_in_pool", "answer_in_top_5", "answer_in_top_10"):
        assert is_fraction(coverage[key])
    assert coverage["answer_in_top_5"] <= coverage["answer_in_top_10"] <= coverage["answer_in_pool"]
    config = report["config"]
    assert config["documents"] == 3
    assert 0 < config["chunks"] < config["sentences"]
    assert config["queries"] == 20
    assert config["smoke"] is True
