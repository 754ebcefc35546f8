"""Time from `make run` to a green /healthz, and the resident memory of the idle stack per part.

    .venv/bin/python bench/stack_footprint.py [--idle 20]

Runs the supervisor twice on a fresh data directory: a first start (initdb, migrations, demo load) and a
second start reusing the data. Prints a table and a last line of JSON. This is a report, not a ratio: there
is no floor to compare a whole stack's start-up with.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpdesk.stack.embedded import free_port  # noqa: E402

PARTS = {
    "postgres": "pginstall/bin/postgres",
    "valkey": "valkey-server",
    "llm": "llama_cpp.server",
    "celery": "celery",
    "daphne": "daphne",
}


def start(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpdesk.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{env['HELPDESK_PORT']}/healthz"
    while time.monotonic() - started < 600:
        if proc.poll() is not None:
            raise SystemExit(f"the stack exited with {proc.returncode}; see {env['HELPDESK_VAR_DIR']}/log/")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return proc, time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit("no green /healthz within 600s")


def rss_by_part(proc: subprocess.Popen[bytes]) -> dict[str, float]:
    totals = dict.fromkeys(["supervisor", *PARTS], 0.0)
    totals["supervisor"] = psutil.Process(proc.pid).memory_info().rss / 2**20
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            rss = child.memory_info().rss / 2**20
        except psutil.Error:
            continue
        part = next((name for name, needle in PARTS.items() if needle in cmd), None)
        if part:
            totals[part] += rss
    return {k: round(v, 1) for k, v in totals.items()}


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=20.0, help="seconds to idle before reading memory")
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="hdb-", dir="/tmp"))
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("DATABASE_URL", "REDIS_URL", "LLM_BASE_URL", "EMBEDDINGS_BASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env = {
        **base,
        "HELPDESK_VAR_DIR": str(var_dir),
        "HELPDESK_REDIS_PORT": str(free_port()),
        "HELPDESK_LLM_PORT": str(free_port()),
    }
    try:
        proc, first = start({**env, "HELPDESK_PORT": str(free_port())})
        stop(proc)
        proc, second = start({**env, "HELPDESK_PORT": str(free_port())})
        time.sleep(args.idle)
        memory = rss_by_part(proc)
        stop(proc)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    print(f"{'measure':<34}{'value':>10}")
    print(f"{'first start to green /healthz (s)':<34}{first:>10.1f}")
    print(f"{'second start to green /healthz (s)':<34}{second:>10.1f}")
    for part, mib in memory.items():
        print(f"{'idle RSS ' + part + ' (MiB)':<34}{mib:>10.1f}")
    print(f"{'idle RSS total (MiB)':<34}{sum(memory.values()):>10.1f}")
    print(
        json.dumps(
            {
                "first_start_s": round(first, 2),
                "second_start_s": round(second, 2),
                "rss_mib": memory,
                "cpus": os.cpu_count(),
                "model": "SmolLM2-135M-Instruct Q4_1",
                "celery_concurrency": 2,
            }
        )
    )


if __name__ == "__main__":
    main()
