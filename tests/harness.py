"""Pytest plugin (loaded with `-p tests.harness`, before pytest-django reads the settings).

Starts a real PostgreSQL+pgvector and a real Valkey for the whole session, from the same code `make run`
uses, and points the settings at them. The system PostgreSQL has no pgvector and is never used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports `helpdesk`: its Celery module defaults the settings to `local`, and an
# environment variable outranks pytest-django's ini option.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.test")

from helpdesk.stack import embedded
from helpdesk.stack.procs import Child

_children: list[Child] = []
_tmp: Path | None = None


def _start_services() -> None:
    global _tmp
    # Short path: unix socket paths are limited to ~100 bytes.
    _tmp = Path(tempfile.mkdtemp(prefix="hdt-", dir="/tmp"))
    env = dict(os.environ)
    pg = embedded.postgres_child(
        data_dir=_tmp / "pgdata", socket_dir=_tmp / "run", log_path=_tmp / "log" / "postgres.log", env=env
    )
    pg.start()
    _children.append(pg)
    embedded.wait_until(
        lambda: embedded.postgres_ready(_tmp / "run", "helpdesk"), timeout=60, what="test postgres", child=pg
    )
    redis_port = embedded.free_port()
    vk = embedded.valkey_child(
        port=redis_port, data_dir=_tmp / "valkey", log_path=_tmp / "log" / "valkey.log", env=env
    )
    vk.start()
    _children.append(vk)
    redis_url = f"redis://127.0.0.1:{redis_port}"
    embedded.wait_until(lambda: embedded.redis_ready(redis_url), timeout=20, what="test valkey", child=vk)

    os.environ["HELPDESK_VAR_DIR"] = str(_tmp / "var")
    os.environ["DATABASE_URL"] = f"postgresql://postgres@/helpdesk?host={_tmp / 'run'}"
    os.environ["REDIS_URL"] = redis_url
    # Nothing listens on the discard port: tests that need a model server start one and override this.
    os.environ["LLM_BASE_URL"] = "http://127.0.0.1:9/v1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    _start_services()


def pytest_unconfigure(config: pytest.Config) -> None:
    for child in reversed(_children):
        child.stop()
    _children.clear()
    if _tmp is not None:
        shutil.rmtree(_tmp, ignore_errors=True)


def harness_database_url(database: str) -> str:
    """The URL of `database` on the session's PostgreSQL (e.g. pytest-django's test database)."""
    assert _tmp is not None
    return f"postgresql://postgres@/{database}?host={_tmp / 'run'}"


def harness_tmp() -> Path:
    assert _tmp is not None
    return _tmp
