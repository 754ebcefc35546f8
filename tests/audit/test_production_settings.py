"""Production settings refuse to start without METRICS_TOKEN, so /metrics can never be left open there.

Each import runs in a fresh interpreter: settings modules read the environment once, at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.production_env import PRODUCTION_ENV, PRODUCTION_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
# Everything else production settings require, so that only METRICS_TOKEN can be missing.
REQUIRED = {
    "DJANGO_SECRET_KEY": PRODUCTION_SECRET_KEY,
    **{k: v for k, v in PRODUCTION_ENV.items() if k != "METRICS_TOKEN"},
}


def import_production_settings(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"METRICS_TOKEN", "HEALTHZ_TOKEN"}}
    env.update(REQUIRED, **extra)
    return subprocess.run(
        [sys.executable, "-c", "import helpdesk.settings.production as s; print(repr(s.METRICS_TOKEN))"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_require_metrics_token():
    result = import_production_settings()
    assert result.returncode == 1, result.stdout + result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        "helpdesk.env.ConfigError: METRICS_TOKEN is not set: production settings need it (see .env.example)"
    )


def test_an_empty_metrics_token_is_not_a_token():
    result = import_production_settings(METRICS_TOKEN="")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "METRICS_TOKEN is not set" in result.stderr.strip().splitlines()[-1]


def test_production_settings_load_with_metrics_token():
    result = import_production_settings(METRICS_TOKEN="a-long-random-scrape-token")
    assert (result.returncode, result.stdout) == (0, "'a-long-random-scrape-token'\n"), result.stderr
