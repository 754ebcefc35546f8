"""The benchmarks still run: each script's `--smoke` size exits 0 and ends with a JSON line of sane figures.

Not timed tests (CONTRACTS §4): the figures are only checked for shape and range, never for speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The scripts start their own PostgreSQL and Valkey; the harness's URLs must not leak into them.
HARNESS_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "LLM_BASE_URL",
    "EMBEDDINGS_BASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "HELPDESK_VAR_DIR",
)


def run_smoke(script: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    return json.loads(last)


def is_fraction(value: object) -> bool:
    return isinstance(value, int | float) and 0.0 <= value <= 1.0


@pytest.mark.slow
def test_answer_quality_smoke() -> None:
    report = run_smoke("answer_quality.py")

    assert set(report) == {"retrieval", "fusion_variants", "abstention", "ingestion", "config"}
    assert set(report["retrieval"]) == {"hybrid", "vector", "fulltext"}
    for figures in [*report["retrieval"].values(), *report["fusion_variants"].values()]:
        assert set(figures) == {"recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"}
        assert all(is_fraction(v) for v in figures.values())
        assert figures["recall_at_1"] <= figures["recall_at_5"] <= figures["recall_at_10"]
    # Weight 1 recomputes the SQL's own fusion, so it must agree with the measured hybrid ranking.
    assert report["fusion_variants"]["rrf_fulltext_weight_1.0"] == report["retrieval"]["hybrid"]

    abstention = report["abstention"]
    for key in ("configured", "best"):
        assert is_fraction(abstention[key]["unanswerable_flagged"])
        assert is_fraction(abstention[key]["answerable_flagged"])
        assert -1.0 <= abstention[key]["threshold"] <= 1.0
    assert abstention["best"]["balanced_accuracy"] >= abstention["configured"]["balanced_accuracy"]
    assert set(abstention["top_similarity"]) == {"answerable", "unanswerable"}

    ingestion = report["ingestion"]
    assert ingestion["pages"] == 5
    assert ingestion["chunks"] > 0
    assert ingestion["pages_per_s"] > 0
    assert ingestion["chunks_per_s"] > 0

    config = report["config"]
    assert config["documents"] == 3
    assert (config["questions_answerable"], config["questions_unanswerable"]) == (7, 3)
    assert config["embedding_dims"] == 384
    assert config["chunks"] > 0
    assert config["smoke"] is True


@pytest.mark.slow
def test_retrieval_smoke() -> None:
    report = run_smoke("retrieval.py")

    assert set(report) == {"latency", "ratios", "recall_at_10", "ef_search_sweep", "explain", "config"}
    assert {"hybrid", "vector", "raw", "raw_tenant", "proposed_vec_local"} <= set(report["latency"])
    for figures in report["latency"].values():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]
    for figures in report["ratios"].values():
        assert figures["p50"] > 0
        assert figures["p95"] > 0
    for figures in report["recall_at_10"].values():
        assert is_fraction(figures["mean"])
        assert is_fraction(figures["worst_5pct"])
        assert figures["worst_5pct"] <= figures["mean"]
    for figures in report["ef_search_sweep"].values():
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]
        assert is_fraction(figures["mean"])
    assert report["explain"]["execution_ms_mean"]["hybrid"] > 0

    config = report["config"]
    assert config["chunks"] == 3000
    assert config["chunks_other_tenant"] == 300
    assert config["tenants"] == 2
    assert config["dims"] == 384
    assert (config["m"], config["ef_construction"]) == (16, 64)
    assert config["ef_search"] > 0
    assert config["queries"] == 20
    assert config["query_vector_given"] is True
