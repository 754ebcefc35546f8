"""Readiness of every part the product needs, for `/healthz`, the supervisor and operators.

Apps register their checks here from `AppConfig.ready()`; core knows nothing of them (STYLE: registries
let a lower layer reach a higher one). Checks run concurrently, each bounded by a timeout, so one hung
part costs `/healthz` at most that timeout.

Some checks are expensive (the LLM check calls the model server, the embeddings check embeds text), and
`/healthz` answers anyone, so `health_report_cached` keeps each process's report for a few seconds and
makes concurrent callers wait for the one computation in flight instead of starting their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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


class _KeptReport:
    """The last report of this process, and the computation in flight if there is one (single flight)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: HealthReport | None = None
        self._expires = 0.0
        self._in_flight: Future[HealthReport] | None = None

    def get(self, compute: Callable[[], HealthReport]) -> HealthReport:
        with self._lock:
            if self._report is not None and time.monotonic() < self._expires:
                return self._report
            leading = self._in_flight is None
            if self._in_flight is None:
                self._in_flight = Future()
            flight = self._in_flight
        if not leading:
            # health_report is bounded by its timeout, so the caller computing settles this soon.
            return flight.result()
        try:
            report = compute()
        except BaseException as exc:
            with self._lock:
                self._in_flight = None
            flight.set_exception(exc)
            raise
        # Kept from when it was finished, not started: a slow red computation is not followed at once
        # by the next one.
        keep = settings.HEALTHZ_CACHE_SECONDS if report.ok else settings.HEALTHZ_DOWN_CACHE_SECONDS
        with self._lock:
            self._report, self._expires = report, time.monotonic() + keep
            self._in_flight = None
        flight.set_result(report)
        return report

    def clear(self) -> None:
        with self._lock:
            self._report, self._expires = None, 0.0


_kept = _KeptReport()


def health_report_cached() -> HealthReport:
    """The report, computed at most once per HEALTHZ_CACHE_SECONDS (HEALTHZ_DOWN_CACHE_SECONDS when red)
    in this process, and once for any number of concurrent callers."""
    return _kept.get(health_report)


def health_cache_clear() -> None:
    """Forgets the kept report (tests; a computation in flight still finishes and is kept)."""
    _kept.clear()


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
