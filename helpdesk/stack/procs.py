"""Child processes that die with their parent and stop as a whole process group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        # If the supervisor is killed outright (SIGKILL), the kernel stops its children too.
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)
        # The supervisor blocks its stop signals while it starts a child (`Child.start`); the child must
        # not inherit that.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    return preexec


class Child:
    """One supervised process, in its own session so that a terminal's Ctrl-C reaches only the supervisor,
    which then stops the children in order."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path,
        env: dict[str, str],
        cwd: Path,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0  # where this start's output begins in the log
        self._stopped = False

    def start(self) -> None:
        """Starts (or starts again) the process. A stop signal arriving meanwhile is held until `proc` is
        set: raised from the middle of `Popen`, it would leave a process nobody stops."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name} ----\n".encode())
        self._log.flush()
        self._log_start = self._log.tell()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
            self._stopped = False
        except BaseException:
            self._log.close()
            self._log = None
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_bytes()[-16384:].decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def output_since_start(self) -> str:
        """What the process has written to its log since its latest start."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Polite signal, then the whole process group is killed after `stop_timeout`. Once stopped,
        stopping again does nothing until the next start: the reaped pid may since name another group."""
        if self.proc is None or self._stopped:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=self.stop_timeout)
        # Whatever is left of the group (worker pools, server backends) goes now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self._log:
            self._log.close()
            self._log = None
        self._stopped = True
