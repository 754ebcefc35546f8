"""A real Daphne serving the real ASGI application on the test database, started as `make run` starts it
(`helpdesk.stack.embedded.web_argv`), for tests that must go through a real server."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpdesk.stack import embedded
from tests.harness import harness_database_url

ROOT = Path(__file__).resolve().parents[1]
# As the local and production settings run Daphne: database calls on their own threads, connections pooled
# (the test settings keep both off for the test process itself).
DAPHNE_DATABASE_ENV = {"DB_ASYNC_THREADS": "8", "DATABASE_POOL_MAX": "20"}


@contextmanager
def daphne_serving(*, database: str, **environ: str) -> Iterator[str]:
    """Daphne on a free loopback port with `environ` on top of the test settings; yields its base URL."""
    port = embedded.free_port()
    # Tests that drive Playwright set this in their own process; Daphne's async code must stay checked.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(DJANGO_SETTINGS_MODULE="helpdesk.settings.test", DATABASE_URL=harness_database_url(database))
    env.update(DAPHNE_DATABASE_ENV)
    env.update(environ)
    log = Path(tempfile.mkstemp(prefix="daphne-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            embedded.web_argv(host="127.0.0.1", port=port),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        embedded.wait_until(lambda: embedded.http_ready(f"{url}/accounts/login/"), timeout=60, what="daphne")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.unlink(missing_ok=True)
