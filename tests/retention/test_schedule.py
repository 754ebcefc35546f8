"""The retention run is on celery beat's schedule (its interval set by RETENTION_INTERVAL_SECONDS), and
`make run` supervises one `celery beat` whose schedule file is run state under var/run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from helpdesk.celery import app
from helpdesk.env import Env, local_stack
from helpdesk.stack.embedded import free_port
from helpdesk.stack.procs import Child
from helpdesk.stack.supervisor import BEAT_READY, Supervisor

ROOT = Path(__file__).resolve().parents[2]


def test_the_beat_schedule_sends_the_retention_run_hourly():
    entry = settings.CELERY_BEAT_SCHEDULE["retention-run"]
    assert entry == {
        "task": "apps.retention.tasks.retention_run",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    }
    app.loader.import_default_modules()
    assert "apps.retention.tasks.retention_run" in app.tasks
    # What beat reads is Django's setting, through the Celery app's namespace.
    assert app.conf.beat_schedule["retention-run"]["task"] == "apps.retention.tasks.retention_run"


def _settings_in_a_new_process(**environ: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from django.conf import settings; print(settings.CELERY_BEAT_SCHEDULE['retention-run']['schedule'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_interval_comes_from_the_environment_and_a_too_short_one_is_refused():
    assert _settings_in_a_new_process(RETENTION_INTERVAL_SECONDS="900").stdout.strip() == "900.0"
    refused = _settings_in_a_new_process(RETENTION_INTERVAL_SECONDS="0")
    assert refused.returncode != 0
    assert "RETENTION_INTERVAL_SECONDS must be at least 60" in refused.stderr


def _supervisor(var_dir: Path) -> Supervisor:
    env = Env({"HELPDESK_VAR_DIR": str(var_dir), "HELPDESK_PORT": str(free_port())})
    return Supervisor(env=env, local=local_stack(env))


def test_make_run_supervises_one_celery_beat_with_its_schedule_under_var_run(tmp_path):
    supervisor = _supervisor(tmp_path)
    children = supervisor.celery_children(supervisor.child_env())
    names = [child.name for child, _ in children]
    assert names == ["celery", "celery-tools", "celery-voice", "celery-beat"]
    beats = [(child, ready) for child, ready in children if " beat " in f" {' '.join(child.argv)} "]
    assert len(beats) == 1
    beat, ready = beats[0]
    assert beat.argv == [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "helpdesk",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(tmp_path.resolve() / "run" / "celerybeat-schedule"),
    ]
    assert beat.log_path == tmp_path.resolve() / "log" / "celery-beat.log"
    assert ready == BEAT_READY
    # The workers are unchanged: three, each on its own queues.
    workers = {child.name: child.argv[child.argv.index("--queues") + 1] for child, _ in children[:3]}
    assert workers == {"celery": "celery", "celery-tools": "tools,handoff", "celery-voice": "voice"}


@pytest.mark.slow
def test_celery_beat_logs_the_line_the_supervisor_waits_for(tmp_path):
    """The readiness line is what this Celery release really logs: a wrong one would fail `make run`."""
    supervisor = _supervisor(tmp_path)
    beat, ready = supervisor.celery_children(supervisor.child_env())[-1]
    # The harness's Redis and settings, not the embedded ones `make run` would start.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    (tmp_path / "run").mkdir()  # made by `make run`'s lock before any part starts
    child = Child(beat.name, beat.argv, log_path=beat.log_path, env=env, cwd=ROOT)
    child.start()
    try:
        deadline = time.monotonic() + 60
        while ready not in child.output_since_start() and time.monotonic() < deadline:
            assert child.exit_code() is None, child.output_since_start()
            time.sleep(0.5)
        assert ready in child.output_since_start(), child.output_since_start()
    finally:
        child.stop()
    assert list((tmp_path / "run").glob("celerybeat-schedule*")) != []
