"""`make run` once the product is up: a part that exits is restarted, as a process manager would.

Each exit waits an exponential backoff with jitter (1 s, 2 s, 4 s ... capped at 30 s), then the part is
started again and its readiness probed; a part that has run healthy for a minute starts again from the
shortest wait. More than five restarts of one part within two minutes is a crash loop: a restart will not
fix it, so the product ends with one line naming the part, the fix, and its log tail. Every event is one
`[stack]` line. The watcher never blocks on a part: while one waits or starts, the others are watched.
"""

from __future__ import annotations

import contextlib
import enum
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from helpdesk.stack.embedded import NotReady
from helpdesk.stack.procs import Child


class CrashLoop(NotReady):
    """A part kept exiting however long it was given: the product stops instead of hiding it."""


@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 1.0
    max_delay: float = 30.0
    # Each wait is up to this fraction longer, at random: parts that died together (a lost database takes
    # both workers with it) do not all come back in the same instant.
    jitter: float = 0.1
    healthy_after: float = 60.0
    max_restarts: int = 5
    window: float = 120.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before restart number `attempt` (1-based) since the part last ran healthy."""
        base = min(self.max_delay, self.first_delay * 2 ** max(0, attempt - 1))
        return base * (1 + rng.uniform(0, self.jitter))


@dataclass
class Backoff:
    """One part's restart history."""

    policy: RestartPolicy
    attempt: int = 0  # restarts since the part last ran healthy for `policy.healthy_after`
    recent: list[float] = field(default_factory=list)  # when each restart within `policy.window` was decided

    def after_exit(self, now: float, rng: random.Random) -> float | None:
        """The wait before the next start after an exit at `now`; None when the part is crash-looping."""
        self.recent = [at for at in self.recent if now - at < self.policy.window]
        if len(self.recent) >= self.policy.max_restarts:
            return None
        self.recent.append(now)
        self.attempt += 1
        return self.policy.delay(self.attempt, rng)

    def ran_healthy(self) -> None:
        self.attempt = 0


class State(enum.Enum):
    UP = "up"
    WAITING = "waiting"  # exited; its backoff runs
    STARTING = "starting"  # started again; readiness not yet shown


@dataclass(eq=False)
class Part:
    """A supervised child with how to tell it is ready and what must happen before it starts again."""

    child: Child
    probe: Callable[[], object] | None = None
    ready_timeout: float = 60.0
    prepare: Callable[[Child], None] | None = None
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    state: State = State.UP
    up_since: float = field(default_factory=time.monotonic)
    down_since: float = 0.0
    due: float = 0.0
    deadline: float = 0.0
    restarts: int = 0
    backoff: Backoff = field(init=False)

    def __post_init__(self) -> None:
        self.backoff = Backoff(self.policy)

    @property
    def name(self) -> str:
        return self.child.name


def describe_exit(code: int) -> str:
    if code >= 0:
        return f"code {code}"
    try:
        return f"code {code} (signal {signal.Signals(-code).name})"
    except ValueError:
        return f"code {code}"


@dataclass
class Watcher:
    parts: list[Part]
    say: Callable[[str], None]
    on_started: Callable[[Child], None] = lambda child: None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    interval: float = 0.5

    def run(self) -> NoReturn:
        """Watch until a crash loop (raised) or a signal (the supervisor's handler raises)."""
        while True:
            self.tick()
            busy = any(part.state is not State.UP for part in self.parts)
            self.sleep(min(self.interval, 0.2) if busy else self.interval)

    def tick(self) -> None:
        for part in self.parts:
            now = self.clock()
            if part.state is State.UP:
                self._watch_up(part, now)
            elif part.state is State.WAITING:
                if now >= part.due:
                    self._start(part, now)
            else:
                self._watch_starting(part, now)

    def _watch_up(self, part: Part, now: float) -> None:
        code = part.child.exit_code()
        if code is None:
            if part.backoff.attempt and now - part.up_since >= part.policy.healthy_after:
                part.backoff.ran_healthy()
            return
        part.down_since = now
        self._failed(part, now, f"exited with {describe_exit(code)}")

    def _start(self, part: Part, now: float) -> None:
        try:
            if part.prepare is not None:
                part.prepare(part.child)
            part.child.start()
        except (NotReady, OSError, subprocess.SubprocessError) as exc:
            part.child.stop()
            self._failed(part, now, f"could not be started again ({exc})")
            return
        part.state, part.deadline = State.STARTING, now + part.ready_timeout
        self.on_started(part.child)

    def _watch_starting(self, part: Part, now: float) -> None:
        code = part.child.exit_code()
        if code is not None:
            self._failed(part, now, f"exited with {describe_exit(code)} while restarting")
            return
        try:
            if part.probe is not None:
                part.probe()
        except Exception as exc:
            if now >= part.deadline:
                part.child.stop()
                reason = str(exc) or exc.__class__.__name__
                self._failed(part, now, f"was not ready {part.ready_timeout:.0f}s after restarting: {reason}")
            return
        part.state, part.up_since = State.UP, now
        self.say(f"{part.name} is back after {now - part.down_since:.1f}s")

    def _failed(self, part: Part, now: float, what: str) -> None:
        # Whatever the dead process left in its group (a worker's pool, a server's helpers) goes with it.
        part.child.stop()
        delay = part.backoff.after_exit(now, self.rng)
        if delay is None:
            raise CrashLoop(self._crash_loop(part, what))
        part.restarts += 1
        part.state, part.due = State.WAITING, now + delay
        self.say(f"{part.name} {what}; restarting in {delay:.1f}s (restart {part.restarts})")

    def _crash_loop(self, part: Part, what: str) -> str:
        policy, child = part.policy, part.child
        return (
            f"{part.name} keeps failing: it {what}, {policy.max_restarts + 1} times within "
            f"{policy.window:.0f}s, so it is not restarted again; fix the cause its log shows, then run "
            f"`make run` again. Last lines of {child.log_path}:\n{child.log_tail()}"
        )


# ---- PostgreSQL killed outright ------------------------------------------------------------------------


def postgres_clear_leftovers(
    *, data_dir: Path, socket_dir: Path, dead_pid: int | None, timeout: float = 5
) -> None:
    """Before the embedded PostgreSQL starts again after its postmaster died (SIGKILL, the OOM killer).

    Its backends and background processes each run in a session of their own, so they outlive the
    postmaster's process group, and a new postmaster refuses the data directory while any of them is still
    attached to the old shared memory. They exit by themselves once they notice the postmaster is gone;
    those that do not within `timeout` are killed. Ours are told from other PostgreSQL servers (the test
    harness runs one from the same binary) by their working directory, the data directory. Then the lock
    files naming the dead postmaster are removed: its pid may since belong to another process, which would
    make the new postmaster think the old one still runs.
    """
    import psutil

    data = data_dir.resolve()

    def leftovers() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["exe", "cwd"]):
            exe, cwd = proc.info.get("exe"), proc.info.get("cwd")
            if exe and cwd and Path(exe).name == "postgres" and Path(cwd) == data:
                found.append(proc)
        return found

    _, alive = psutil.wait_procs(leftovers(), timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, alive = psutil.wait_procs(alive, timeout=5)
    if alive:
        raise NotReady(f"PostgreSQL processes {[p.pid for p in alive]} of the previous server would not exit")
    if dead_pid is None:
        return
    # `dead_pid` was reaped by the supervisor: whoever holds that pid now is not our postmaster.
    for lock in (data_dir / "postmaster.pid", socket_dir / ".s.PGSQL.5432.lock"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(lock.read_text().splitlines()[0]) == dead_pid:
                lock.unlink()


def log_says(child: Child, text: str) -> Callable[[], None]:
    """A readiness probe for a part with no port to ask: ready once its latest start has logged `text`
    (a Celery worker logs `<name>@<host> ready.` once it consumes)."""

    def probe() -> None:
        if text not in child.output_since_start():
            raise NotReady(f"{child.name} has not logged {text!r} yet")

    return probe
