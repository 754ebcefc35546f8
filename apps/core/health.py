"""Readiness of every part the product needs, for `/healthz`, the supervisor and operators.

Apps register their checks here from `AppConfig.ready()`; core knows nothing of them (STYLE: registries
let a lower layer reach a higher one). Checks run concurrently, each bounded by a timeout, so one hung
part costs `/healthz` at most that timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


class CheckFailed(Exception):
    """Raised by a check with a one-line reason an operator can act on."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], str]  # returns a short detail (a version, a model name) or raises
    required: bool = True


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    required: bool
    latency_ms: float
    detail: str


@dataclass(frozen=True)
class HealthReport:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results if r.required)


_registry: dict[str, Check] = {}


def register(name: str, run: Callable[[], str], *, required: bool = True) -> None:
    _registry[name] = Check(name=name, run=run, required=required)


def registered() -> list[Check]:
    return list(_registry.values())


def _timed(check: Check) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check.run()
        ok = True
    except Exception as exc:  # each part's failure is reported, never raised to the caller
        ok = False
        detail = str(exc) or exc.__class__.__name__
        logger.warning("health check %s failed: %s", check.name, detail)
    finally:
        if check.name in {"database", "pgvector"}:
            connection.close()  # checks run in pool threads: don't leak their connections
    return CheckResult(
        name=check.name,
        ok=ok,
        required=check.required,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        detail=detail,
    )


_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="healthz")


def health_report(*, timeout: float | None = None) -> HealthReport:
    limit = timeout if timeout is not None else settings.HEALTH_CHECK_TIMEOUT_SECONDS
    checks = registered()
    futures = [(check, _pool.submit(_timed, check)) for check in checks]
    deadline = time.perf_counter() + limit
    results = []
    for check, future in futures:
        try:
            results.append(future.result(timeout=max(0.0, deadline - time.perf_counter())))
        except FutureTimeout:
            results.append(
                CheckResult(
                    name=check.name,
                    ok=False,
                    required=check.required,
                    latency_ms=round(limit * 1000, 2),
                    detail=f"no answer within {limit:g}s",
                )
            )
    return HealthReport(results=results)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        row = cursor.fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def _check_pgvector() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise CheckFailed("the vector extension is not installed in this database (run migrations)")
    return f"pgvector {row[0]}"


def _check_redis() -> str:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        info = client.info("server")
    finally:
        client.close()
    return f"redis-compatible {info.get('redis_version', '?')}"


def _check_celery() -> str:
    from helpdesk.celery import app

    replies = app.control.ping(timeout=1.5, limit=1)
    if not replies:
        raise CheckFailed("no Celery worker answered a ping: start one with `celery -A helpdesk worker`")
    return ", ".join(sorted(name for reply in replies for name in reply))


def register_builtin_checks() -> None:
    register("database", _check_database)
    register("pgvector", _check_pgvector)
    register("redis", _check_redis)
    register("celery", _check_celery)
