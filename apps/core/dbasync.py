"""Database calls from async code (consumers, the answer pipeline) on a bounded pool of threads.

Channels' `database_sync_to_async` is thread-sensitive: every call of a process runs on asgiref's one
shared thread, because websocket consumers, unlike Django's HTTP requests, get no thread of their own. Twenty
customers' turns then queue behind each other's database hops, retrieval included (issue 14: twenty turns
at once waited 25 times as long for first content as one). `db_async` runs the same call, with the same
connection clean-up around it, on `DB_ASYNC_THREADS` threads instead; each thread has its own Django
connection, which the pool (`DATABASE_POOL_MAX`) lends rather than opens.

Nothing on these paths needs thread-sensitivity: no transaction spans two awaits (every service owns its
transaction inside one call) and no thread-local carries state from one call to the next.
`DB_ASYNC_THREADS=0` keeps the thread-sensitive behaviour (the test settings' default: pytest-django's
non-transactional tests see only the main thread's connection).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from channels.db import DatabaseSyncToAsync
from django.conf import settings

from apps.core.rehearsal import rehearsing

P = ParamSpec("P")
R = TypeVar("R")

_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor | None:
    """The process's database threads, or None when `DB_ASYNC_THREADS` is 0 (thread-sensitive calls)."""
    size = int(getattr(settings, "DB_ASYNC_THREADS", 0))
    if size <= 0:
        return None
    executor = _executors.get(size)
    if executor is None:
        with _executors_lock:
            executor = _executors.setdefault(
                size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="db-async")
            )
    return executor


def db_async(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn` as a coroutine function that runs it on a database thread, closing the thread's old or broken
    connections before and after (as `database_sync_to_async` does).

    While rehearsing (apps/core/rehearsal.py) it runs on the caller's thread without the clean-up: the
    caller holds an open transaction there, which every query of the turn must join."""
    if rehearsing():
        return sync_to_async(fn, thread_sensitive=True)
    executor = db_executor()
    if executor is None:
        return DatabaseSyncToAsync(fn)
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=executor)
