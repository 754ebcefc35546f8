"""A desk of the fault tests' own: a PostgreSQL, a Valkey and a Daphne that a test may stop, kill and start
again on the same socket path and ports, without disturbing the session's services every other test uses.

The database is a copy of the session's migrated test database (pg_dump piped into psql), so it costs no
migration run. While a test holds `fault_db`, this process's ORM talks to it too, so the test creates its
tenant where Daphne reads it and compares what the clients show with what Daphne stored.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from helpdesk.stack import embedded
from helpdesk.stack.procs import Child
from tests.daphne import DAPHNE_DATABASE_ENV
from tests.fakes.openai_server import FakeOpenAI
from tests.harness import harness_tmp

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "faults"
HEALTHZ_TOKEN = "fault-tests-healthz-token-51e2"


@dataclass(frozen=True)
class Health:
    status: int
    retry_after: str | None
    checks: dict[str, Any]

    def part(self, name: str) -> str:
        return str(self.checks.get(name, {}).get("status"))


class FaultStack:
    def __init__(self, *, llm: FakeOpenAI, source_database: str) -> None:
        self.llm = llm
        # Short: unix socket paths are limited to ~100 bytes.
        self.tmp = Path(tempfile.mkdtemp(prefix="hdf-", dir="/tmp"))
        self.run_dir = self.tmp / "run"
        self.env = dict(os.environ)
        self.postgres = embedded.postgres_child(
            data_dir=self.tmp / "pgdata",
            socket_dir=self.run_dir,
            log_path=self.tmp / "log" / "postgres.log",
            env=self.env,
        )
        self.valkey_port = embedded.free_port()
        self.valkey = embedded.valkey_child(
            port=self.valkey_port,
            data_dir=self.tmp / "valkey",
            log_path=self.tmp / "log" / "valkey.log",
            env=self.env,
        )
        self.web_port = embedded.free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.redis_url = f"redis://127.0.0.1:{self.valkey_port}"
        self.database_url = f"postgresql://postgres@/{DATABASE}?host={self.run_dir}"
        daphne_env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        daphne_env.update(
            DJANGO_SETTINGS_MODULE="helpdesk.settings.test",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            LLM_BASE_URL=llm.base_url,
            LLM_MODEL=llm.models[0],
            LLM_BREAKER_FAILURES="1000",
            LLM_RETRY_BACKOFF_SECONDS="0.05",
            WIDGET_RATE_SESSIONS_IP="10000",
            WIDGET_RATE_IP="10000",
            WIDGET_RATE_FRAMES_IP="100000",
            HEALTHZ_TOKEN=HEALTHZ_TOKEN,
            **DAPHNE_DATABASE_ENV,
        )
        self.web = Child(
            "daphne",
            embedded.web_argv(host="127.0.0.1", port=self.web_port),
            log_path=self.tmp / "log" / "daphne.log",
            env=daphne_env,
            cwd=ROOT,
            stop_timeout=15,
        )
        self._source_database = source_database

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self.postgres_start()
        self._copy_database()
        self.valkey_start()
        self.web_start()

    def close(self) -> None:
        for child in (self.web, self.valkey, self.postgres):
            child.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _copy_database(self) -> None:
        import psycopg

        host = str(self.run_dir)
        with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        bin_dir = Path(self.postgres.argv[0]).parent
        dump = subprocess.Popen(
            [
                str(bin_dir / "pg_dump"),
                "--no-owner",
                "-h",
                str(harness_tmp() / "run"),
                "-U",
                "postgres",
                self._source_database,
            ],
            stdout=subprocess.PIPE,
        )
        restore = subprocess.run(
            [
                str(bin_dir / "psql"),
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.run_dir),
                "-U",
                "postgres",
                "-d",
                DATABASE,
            ],
            stdin=dump.stdout,
            capture_output=True,
            text=True,
        )
        assert dump.stdout is not None
        dump.stdout.close()
        assert dump.wait(timeout=60) == 0, "pg_dump of the session's test database failed"
        assert restore.returncode == 0, restore.stderr[-2000:]

    def postgres_start(self) -> None:
        self.postgres.start()
        embedded.wait_until(
            lambda: embedded.postgres_ready(self.run_dir, "postgres"),
            timeout=60,
            what="fault postgres",
            child=self.postgres,
        )
        connections.close_all()  # this process's connections died with the server it talked to

    def postgres_stop(self, *, kill: bool = False) -> None:
        """`kill`: SIGKILL to the server and every backend (a crash; the next start recovers from WAL).
        Otherwise PostgreSQL's fast shutdown (SIGINT: open transactions rolled back, then exit)."""
        _stop(self.postgres, kill=kill)

    def valkey_start(self) -> None:
        self.valkey.start()
        embedded.wait_until(
            lambda: embedded.redis_ready(self.redis_url), timeout=20, what="fault valkey", child=self.valkey
        )

    def valkey_stop(self, *, kill: bool = False) -> None:
        _stop(self.valkey, kill=kill)

    def web_start(self) -> None:
        """Daphne on the same port as before, so clients reconnect to the URL they know."""
        deadline = time.monotonic() + 30
        while embedded.port_owner(self.web_port) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.web.start()
        login = f"{self.url}/accounts/login/"
        embedded.wait_until(lambda: embedded.http_ready(login), timeout=90, what="daphne", child=self.web)

    def web_stop(self, *, kill: bool = False) -> None:
        """`kill`: SIGKILL (the process dies mid-answer); otherwise SIGTERM, as a deploy stops it."""
        _stop(self.web, kill=kill)

    # ---- observing --------------------------------------------------------------------------------------

    def health(self) -> Health:
        request = urllib.request.Request(
            f"{self.url}/healthz", headers={"Authorization": f"Bearer {HEALTHZ_TOKEN}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read()
        checks = json.loads(body)["checks"]
        return Health(status=status, retry_after=headers.get("Retry-After"), checks=checks)

    def health_until(self, predicate: Any, *, timeout: float = 30.0) -> Health:
        """Polls /healthz (kept 1 s when red, 5 s when green per process) until `predicate(health)`."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if predicate(health) or time.monotonic() > deadline:
                return health
            time.sleep(0.3)

    def log(self, name: str) -> str:
        return (self.tmp / "log" / f"{name}.log").read_text(errors="replace")


def _stop(child: Child, *, kill: bool) -> None:
    if not kill:
        child.stop()
        return
    assert child.proc is not None
    os.killpg(child.proc.pid, signal.SIGKILL)
    child.proc.wait(timeout=15)
    child.stop()  # closes its log; nothing is left to signal


@pytest.fixture(scope="module")
def fault_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fault-model"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def fault_stack(django_db_setup: None, fault_llm: FakeOpenAI) -> Iterator[FaultStack]:
    from django.db import connection

    stack = FaultStack(llm=fault_llm, source_database=connection.settings_dict["NAME"])
    try:
        stack.start()
        # The first answer needs the embedding model and the PII analyzer, which Daphne loads at start.
        ready = stack.health_until(
            lambda h: all(h.part(p) == "ok" for p in ("database", "redis", "llm", "embeddings", "pii")),
            timeout=120,
        )
        assert all(ready.part(p) == "ok" for p in ("database", "redis", "llm", "embeddings")), ready
        yield stack
    finally:
        stack.close()


@pytest.fixture
def fault_db(transactional_db: None, fault_stack: FaultStack) -> Iterator[FaultStack]:
    """This process's ORM on the fault stack's database for the test (and back after it: the flush that
    follows a transactional test then empties the session's test database, as usual)."""
    settings_dict = connections["default"].settings_dict
    saved = {key: settings_dict[key] for key in ("NAME", "HOST")}
    connections.close_all()
    settings_dict.update(NAME=DATABASE, HOST=str(fault_stack.run_dir))
    try:
        yield fault_stack
    finally:
        connections.close_all()
        settings_dict.update(saved)


@pytest.fixture
def fault_llm_reset(fault_llm: FakeOpenAI) -> Iterator[FakeOpenAI]:
    def reset() -> None:
        fault_llm.behaviour = "ok"
        fault_llm.responder = None
        fault_llm.token_delay = 0.0
        with fault_llm._lock:
            fault_llm._script.clear()

    reset()
    yield fault_llm
    reset()
