"""Checks that turn a misconfiguration into one line naming the cause and the fix, before anything starts."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from helpdesk.stack.embedded import port_owner


class PreflightError(Exception):
    pass


def check_port(port: int, what: str, variable: str, host: str = "127.0.0.1") -> None:
    owner = port_owner(port, host)
    if owner is not None:
        raise PreflightError(
            f"port {port} ({what}) is already in use by {owner}: stop it, or set {variable} to a free port"
        )


def check_external_database(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'),"
                " (SELECT count(*) FROM pg_extension WHERE extname = 'vector')"
            ).fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise PreflightError(
            f"DATABASE_URL: cannot connect ({reason}): check the URL, or unset it to use the embedded "
            "PostgreSQL"
        ) from None
    available, installed = row if row else (0, 0)
    if not available and not installed:
        raise PreflightError(
            "DATABASE_URL points at a PostgreSQL without the pgvector extension: install pgvector on that "
            "server (package postgresql-NN-pgvector), or unset DATABASE_URL to use the embedded PostgreSQL"
        )


def check_external_redis(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as exc:
        raise PreflightError(
            f"REDIS_URL: cannot reach {url} ({exc}): check the URL, or unset it to use the embedded server"
        ) from None


def check_openai_compatible(base_url: str, variable: str, api_key: str) -> None:
    if not base_url.startswith(("http://", "https://")):
        raise PreflightError(f"{variable} must be an http(s) URL ending in /v1, got {base_url!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - scheme checked above
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise PreflightError(
                f"{variable} {base_url} refused the API key (HTTP {exc.code}): check it"
            ) from None
        raise PreflightError(f"{variable} {base_url} answered HTTP {exc.code} to /models") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PreflightError(
            f"{variable} {base_url} is unreachable ({reason}): start that server, or unset {variable} "
            "to use the embedded one"
        ) from None


@dataclass
class StackLock:
    """`var/run/stack.lock` is held (flock) while a supervisor lives; `stack.json` lists its children so a
    later run can clean up after one that was killed outright."""

    run_dir: Path
    handle: IO[str] | None = None

    @property
    def state_path(self) -> Path:
        return self.run_dir / "stack.json"

    def acquire(self) -> list[str]:
        """Returns notes about stale state it cleaned; raises if another supervisor is running."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.handle = (self.run_dir / "stack.lock").open("a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            self.handle = None  # not ours: release() must leave the live run's state alone
            pid = self._recorded().get("supervisor", "?")
            raise PreflightError(
                f"another `make run` is already running (pid {pid}) on {self.run_dir.parent}: "
                "stop it first (Ctrl-C in its terminal, or kill {pid})".replace("{pid}", str(pid))
            ) from None
        return self._clean_stale()

    def _recorded(self) -> dict[str, object]:
        try:
            data = json.loads(self.state_path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _clean_stale(self) -> list[str]:
        import psutil

        notes = []
        recorded = self._recorded()
        children = recorded.get("children", {})
        if not isinstance(children, dict):
            children = {}
        for name, info in children.items():
            try:
                pid, started = int(info["pid"]), float(info["started"])
                proc = psutil.Process(pid)
                if abs(proc.create_time() - started) > 2:
                    continue  # the pid now belongs to an unrelated process
                sig = signal.SIGINT if name == "postgres" else signal.SIGTERM
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=20)
                except psutil.TimeoutExpired:
                    proc.kill()
                notes.append(f"stopped {name} (pid {pid}) left running by a previous run that was killed")
            except (psutil.Error, KeyError, TypeError, ValueError):
                continue
        if recorded:
            notes.append("removed the stale state file of a previous run that did not stop cleanly")
        self.state_path.unlink(missing_ok=True)
        return notes

    def record(self, children: dict[str, int]) -> None:
        import psutil

        entries = {}
        for name, pid in children.items():
            try:
                entries[name] = {"pid": pid, "started": psutil.Process(pid).create_time()}
            except psutil.Error:
                continue
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"supervisor": os.getpid(), "at": time.time(), "children": entries}))
        tmp.replace(self.state_path)

    def release(self) -> None:
        if self.handle:
            self.state_path.unlink(missing_ok=True)
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
