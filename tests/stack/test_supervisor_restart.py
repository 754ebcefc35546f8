"""`make run` restarts a part that exits once the product is up: with backoff, one line per event, its
readiness probed again; a crash loop ends the product with one line; a stop during a restart leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from helpdesk.stack import embedded
from helpdesk.stack.embedded import NotReady, free_port
from helpdesk.stack.procs import Child
from helpdesk.stack.restart import (
    Backoff,
    CrashLoop,
    Part,
    RestartPolicy,
    State,
    Watcher,
    log_says,
    postgres_clear_leftovers,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.harness import harness_tmp
from tests.stack.test_supervisor import Stack, stack_env, var_dir  # noqa: F401 (var_dir is a fixture)

TOKEN = "restart-test-healthz-token"
CHECKS = {"database", "pgvector", "redis", "celery", "llm", "embeddings", "pii"}


# ---- the policy, on a fake clock -------------------------------------------------------------------------


def test_each_wait_doubles_up_to_the_cap_with_at_most_a_tenth_more_and_resets_after_a_healthy_run():
    policy = RestartPolicy()
    backoff, rng = Backoff(policy), random.Random(14)
    # Exits three minutes apart: never a crash loop, whatever their number.
    delays = [backoff.after_exit(now=180.0 * n, rng=rng) for n in range(8)]
    bases = [1, 2, 4, 8, 16, 30, 30, 30]
    for delay, base in zip(delays, bases, strict=True):
        assert delay is not None
        assert base <= delay <= base * 1.1, (delay, base)
    assert len({round(d / b, 9) for d, b in zip(delays, bases, strict=True) if d}) == 8  # jittered
    backoff.ran_healthy()
    first_again = backoff.after_exit(now=10_000.0, rng=rng)
    assert first_again is not None
    assert 1.0 <= first_again <= 1.1


def test_more_than_five_restarts_within_two_minutes_is_a_crash_loop():
    rng = random.Random(1)
    looping = Backoff(RestartPolicy())
    assert all(looping.after_exit(now=t, rng=rng) is not None for t in (0.0, 20.0, 40.0, 60.0, 80.0))
    assert looping.after_exit(now=119.0, rng=rng) is None  # the sixth exit within 120 s of the first

    # The same exits, the sixth just over two minutes after the first: four restarts remain in the window.
    spread = Backoff(RestartPolicy())
    assert all(spread.after_exit(now=t, rng=rng) is not None for t in (0.0, 20.0, 40.0, 60.0, 80.0))
    assert spread.after_exit(now=120.5, rng=rng) is not None
    assert spread.after_exit(now=121.0, rng=rng) is None  # and a seventh right after is the fifth again


def test_the_watcher_restarts_after_the_backoff_on_its_clock_and_forgets_it_after_a_healthy_minute(tmp_path):
    """Real processes, a fake clock: the waits, the lines said, and the reset after 60 s up."""
    clock = [1000.0]
    said: list[str] = []
    child = Child(
        "sleeper",
        [sys.executable, "-c", "import time; print('serving', flush=True); time.sleep(600)"],
        log_path=tmp_path / "sleeper.log",
        env=dict(os.environ),
        cwd=tmp_path,
    )
    child.start()
    part = Part(child, log_says(child, "serving"), 30, policy=RestartPolicy(jitter=0))
    watcher = Watcher([part], say=said.append, clock=lambda: clock[0], sleep=lambda _: None)
    pids = [child.pid]
    try:
        for restart, wait in ((1, 1.0), (2, 2.0), (3, 1.0)):
            assert child.proc is not None
            child.proc.kill()
            wait_for_exit(child)
            watcher.tick()
            assert said[-1] == (
                f"sleeper exited with code -9 (signal SIGKILL); restarting in {wait:.1f}s (restart {restart})"
            )
            assert part.state is State.WAITING
            clock[0] += wait - 0.1
            watcher.tick()
            assert (part.state, child.pid) == (State.WAITING, pids[-1])  # not before its time
            clock[0] += 0.1
            watcher.tick()
            assert part.state is State.STARTING
            assert child.pid != pids[-1]
            pids.append(child.pid)
            deadline = time.monotonic() + 10
            while part.state is State.STARTING and time.monotonic() < deadline:
                watcher.tick()  # ready once the new process has logged "serving"
                time.sleep(0.05)
            assert said[-1] == f"sleeper is back after {wait:.1f}s"
            # Up for a minute after the second restart: the next wait is the first one again.
            clock[0] += 60.0 if restart == 2 else 5.0
            watcher.tick()
        assert len(said) == 6
    finally:
        child.stop()
    assert [pid for pid in pids if psutil.pid_exists(pid)] == []


def wait_for_exit(child: Child, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while child.exit_code() is None:
        assert time.monotonic() < deadline, f"{child.name} did not exit"
        time.sleep(0.02)


# ---- a crash loop ends the product ------------------------------------------------------------------------


def test_a_part_that_keeps_dying_ends_the_product_with_one_line_naming_it_its_log_and_the_fix(tmp_path):
    said: list[str] = []
    log_path = tmp_path / "log" / "flaky.log"
    child = Child(
        "flaky",
        [sys.executable, "-c", "import sys; print('config /etc/flaky.conf is missing'); sys.exit(3)"],
        log_path=log_path,
        env=dict(os.environ),
        cwd=tmp_path,
    )
    policy = RestartPolicy(first_delay=0.1, max_delay=0.4, jitter=0, max_restarts=3, window=60)
    child.start()
    watcher = Watcher([Part(child, log_says(child, "serving"), 30, policy=policy)], say=said.append)
    started = time.monotonic()
    with pytest.raises(CrashLoop) as raised:
        watcher.run()
    assert time.monotonic() - started < 10
    assert isinstance(raised.value, NotReady)  # what `run()` prints as its one `[stack] error:` line
    assert said == [
        "flaky exited with code 3; restarting in 0.1s (restart 1)",
        "flaky exited with code 3 while restarting; restarting in 0.2s (restart 2)",
        "flaky exited with code 3 while restarting; restarting in 0.4s (restart 3)",
    ]
    first, *tail = str(raised.value).splitlines()
    assert first == (
        "flaky keeps failing: it exited with code 3 while restarting, 4 times within 60s, so it is not "
        "restarted again; fix the cause its log shows, then run `make run` again. "
        f"Last lines of {log_path}:"
    )
    assert tail[-1] == "config /etc/flaky.conf is missing"
    assert log_path.read_text().count("config /etc/flaky.conf is missing") == 4
    assert child.exit_code() == 3  # nothing left running


# ---- PostgreSQL killed outright ---------------------------------------------------------------------------


def test_postgres_killed_with_a_backend_still_attached_starts_again_after_the_leftovers_are_cleared():
    """A backend that cannot notice its postmaster died (stopped here with SIGSTOP) keeps the old shared
    memory attached: a new postmaster refuses the data directory until it is gone."""
    import psycopg

    root = harness_tmp() / f"pgr-{free_port()}"
    data_dir, socket_dir = root / "pgdata", root / "run"
    pg = embedded.postgres_child(
        data_dir=data_dir, socket_dir=socket_dir, log_path=root / "postgres.log", env=dict(os.environ)
    )
    pg.start()
    backend: psutil.Process | None = None
    try:
        embedded.wait_until(lambda: embedded.postgres_ready(socket_dir, "t"), timeout=60, what="pg", child=pg)
        conn = psycopg.connect(host=str(socket_dir), user="postgres", dbname="t", autocommit=True)
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backend = psutil.Process(row[0])
        backend.suspend()
        dead_pid = pg.pid
        assert dead_pid is not None
        os.kill(dead_pid, signal.SIGKILL)
        wait_for_exit(pg)
        pg.stop()

        # Without the clearing, the new server gives up on the old shared memory.
        pg.start()
        wait_for_exit(pg, timeout=30)
        assert "pre-existing shared memory block" in pg.output_since_start()
        pg.stop()

        postgres_clear_leftovers(data_dir=data_dir, socket_dir=socket_dir, dead_pid=dead_pid, timeout=1)
        assert not backend.is_running() or backend.status() == psutil.STATUS_ZOMBIE
        pg.start()
        embedded.wait_until(lambda: embedded.postgres_ready(socket_dir, "t"), timeout=60, what="pg", child=pg)
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="t") as again:
            assert again.execute("SELECT 1").fetchone() == (1,)
        conn.close()
    finally:
        if backend is not None:
            with contextlib.suppress(psutil.Error):
                backend.kill()
        pg.stop()
    # The test session's own PostgreSQL (same binary, another data directory) was left alone.
    with psycopg.connect(host=str(harness_tmp() / "run"), user="postgres", dbname="postgres") as session:
        assert session.execute("SELECT 1").fetchone() == (1,)


# ---- the whole stack --------------------------------------------------------------------------------------


def recorded_pids(root: Path) -> dict[str, int]:
    state = json.loads((root / "run" / "stack.json").read_text())
    return {name: entry["pid"] for name, entry in state["children"].items()}


def healthz_green(stack: Stack, timeout: float) -> dict[str, object]:
    """/healthz read with the children's token until every check is ok."""
    request = urllib.request.Request(f"{stack.web_url}/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.load(response)
            if {name for name, check in body["checks"].items() if check["status"] == "ok"} == CHECKS:
                return body
            last = json.dumps(body)
        except urllib.error.HTTPError as exc:
            last = exc.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(1)
    raise AssertionError(f"/healthz not green within {timeout}s: {last}")


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
@pytest.mark.timeout(720)
def test_each_part_killed_outright_comes_back_and_the_stack_still_stops_cleanly(var_dir):  # noqa: F811
    with FakeOpenAI(models=["smollm2-135m-instruct"]) as llm:
        stack = Stack(stack_env(var_dir, LLM_BASE_URL=llm.base_url, HEALTHZ_TOKEN=TOKEN))
        try:
            stack.wait_for("Stop with Ctrl-C", timeout=420)
            healthz_green(stack, timeout=60)
            for part in ("postgres", "valkey", "daphne", "celery-tools"):
                before = recorded_pids(var_dir)
                os.kill(before[part], signal.SIGKILL)
                stack.wait_for(f"[stack] {part} exited", timeout=10)
                restarting = re.fullmatch(
                    rf"\[stack\] {part} exited with code -9 \(signal SIGKILL\); "
                    r"restarting in (\d+\.\d)s \(restart 1\)",
                    stack.lines[-1],
                )
                assert restarting, stack.lines[-1]
                assert 1.0 <= float(restarting[1]) <= 1.1
                stack.wait_for(f"[stack] {part} is back after ", timeout=120)
                back = re.fullmatch(rf"\[stack\] {part} is back after (\d+\.\d)s", stack.lines[-1])
                assert back, stack.lines[-1]
                assert float(back[1]) >= 1.0
                healthz_green(stack, timeout=90)
                assert stack.proc.poll() is None
                after = recorded_pids(var_dir)  # the lock file names the new process
                assert after[part] != before[part]
                assert psutil.Process(after[part]).is_running()
                assert {n: p for n, p in after.items() if n != part} == {
                    n: p for n, p in before.items() if n != part
                }, "only the killed part was restarted"
            # The data survived, so nothing was set up again.
            assert stack.output.count("applying migrations") == 1
            assert stack.output.count("demo company 'nimbus'") == 1

            # Killed again within the minute, the same worker waits twice as long; a Ctrl-C during that wait
            # stops everything.
            descendants = psutil.Process(stack.proc.pid).children(recursive=True)
            os.kill(recorded_pids(var_dir)["celery-tools"], signal.SIGKILL)
            stack.wait_for("[stack] celery-tools exited", timeout=10)
            assert re.fullmatch(
                r"\[stack\] celery-tools exited with code -9 \(signal SIGKILL\); "
                r"restarting in 2\.[0-2]s \(restart 2\)",
                stack.lines[-1],
            ), stack.lines[-1]
        finally:
            stack.proc.send_signal(signal.SIGINT)
        assert stack.finish() == 0, stack.output
    assert stack.output.count("[stack] celery-tools is back after") == 1  # stopped during the wait
    assert "received SIGINT: stopping every part" in stack.output
    assert stack.output.rstrip().endswith("[stack] stopped")
    assert "[stack] error" not in stack.output
    time.sleep(0.5)
    assert alive(descendants) == [], [p.cmdline() for p in alive(descendants)]
    assert not (var_dir / "run" / "stack.json").exists()
