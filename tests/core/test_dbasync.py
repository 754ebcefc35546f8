"""`db_async` (apps/core/dbasync.py): database calls from async code run at the same time on their own
threads, each with its own PostgreSQL connection, closed again when the call returns; with
`DB_ASYNC_THREADS=0` they queue on one thread, as Channels' `database_sync_to_async` does (issue 14)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper

from apps.core.dbasync import db_async, db_executor
from helpdesk.settings.base import database_options

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = 4
SLEEP = 0.4  # seconds each call holds its connection inside PostgreSQL


def hold_connection() -> dict[str, Any]:
    """One database hop that takes SLEEP seconds inside PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(%s)", [SLEEP])
        backend_pid = cursor.fetchone()[0]
    return {"thread": threading.get_ident(), "backend": backend_pid, "wrapper": connections["default"]}


def run_together() -> tuple[float, list[dict[str, Any]]]:
    async def together() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(db_async(hold_connection)() for _ in range(CALLS))))

    started = time.perf_counter()
    calls = async_to_sync(together)()
    return time.perf_counter() - started, calls


def test_calls_overlap_on_distinct_threads_and_connections_and_close_them(settings):
    settings.DB_ASYNC_THREADS = CALLS
    elapsed, calls = run_together()

    # Run one after the other they would take CALLS * SLEEP = 1.6 s.
    assert elapsed < 2 * SLEEP, elapsed
    threads = {c["thread"] for c in calls}
    assert len(threads) == CALLS
    assert threading.get_ident() not in threads
    assert len({c["backend"] for c in calls}) == CALLS
    # Each thread's connection was closed (or handed back to the pool) when its call returned.
    assert [c["wrapper"].connection for c in calls] == [None] * CALLS
    executor = db_executor()
    assert executor is not None
    assert executor._max_workers == CALLS


def test_zero_threads_keeps_one_thread_sensitive_queue(settings):
    settings.DB_ASYNC_THREADS = 0
    assert db_executor() is None
    elapsed, calls = run_together()

    assert elapsed >= CALLS * SLEEP, elapsed
    # Outermost sync code (this test): thread-sensitive calls run on its own thread, one at a time.
    assert {c["thread"] for c in calls} == {threading.get_ident()}


def test_an_error_in_a_call_reaches_the_caller_and_the_thread_is_reused(settings):
    settings.DB_ASYNC_THREADS = 1

    def fails() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1/0")

    async def both() -> dict[str, Any]:
        with pytest.raises(Exception, match="division by zero"):
            await db_async(fails)()
        return await db_async(hold_connection)()

    after = async_to_sync(both)()
    assert after["wrapper"].connection is None
    assert after["thread"] != threading.get_ident()


def test_the_pool_settings_lend_healthy_connections_and_take_them_back():
    """The pool the settings build (DATABASE_POOL_MAX) opens, lends a connection to a call, takes it back
    when Django closes it, and checks each one before lending it (CONN_HEALTH_CHECKS): a connection that a
    PostgreSQL restart broke is replaced, not handed out."""
    settings_dict = {
        **connection.settings_dict,
        "OPTIONS": database_options(connection.settings_dict["OPTIONS"], pool_max=3),
    }
    probe = PostgresWrapper(settings_dict, alias="dbasync_pool_probe")
    connections["dbasync_pool_probe"] = probe  # Django's connection signals look the alias up
    try:
        assert probe.pool is not None
        assert probe.pool.max_size == 3
        assert probe.pool._check is not None
        with probe.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            first_pid = cursor.fetchone()[0]
        probe.close()
        assert probe.connection is None
        assert probe.pool.get_stats()["pool_available"] >= 1

        # The backend behind the idle pooled connection goes away, as in a PostgreSQL restart.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first_pid])
        with probe.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            second_pid = cursor.fetchone()[0]
        probe.close()
        assert second_pid != first_pid
    finally:
        probe.close_pool()
        del connections["dbasync_pool_probe"]
