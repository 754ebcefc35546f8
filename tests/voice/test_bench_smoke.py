"""bench/voice.py still runs: one espeak-ng question through the local engine, ending with a JSON line of
sane figures. Not a timed test: the figures are checked for shape, never for speed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import HARNESS_VARS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_voice_bench_smoke() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`.ci/run` installs the Debian package)")
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "voice.py"), "--limit", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["clips"] == 1
    assert report["audio_s_total"] > 0.5
    assert report["transcribe_s_total"] > 0
    assert report["rtf_p50"] == report["rtf_p95"] > 0
    assert 0 <= report["wer"] <= 1.5
    assert report["reference_words"] > 0
