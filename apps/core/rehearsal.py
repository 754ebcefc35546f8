"""Rehearsal: a customer turn run for a check (a golden answer) that must leave no trace.

The golden runner (apps/releases/runner.py) runs the real answer pipeline inside a transaction it rolls
back, so every row the turn writes (conversation, messages, trace, audit, knowledge gap) is undone. What a
rollback cannot undo is kept from happening while `rehearsing()`:

- database calls from the pipeline's async code run on the caller's own thread and connection
  (`apps.core.dbasync.db_async`), inside that transaction, instead of on the pool's threads, whose
  connections would commit on their own;
- the answer cache is neither read (a cached answer would hide what the pipeline says now) nor written;
- Prometheus metrics are not recorded and no handoff is started;
- nothing reaches Celery: every enqueue of these paths waits for a commit that never comes.

A contextvar, so it follows the turn into `async_to_sync`, `sync_to_async` and the tasks they start, and
never leaks into another thread's or request's turn.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_rehearsing: contextvars.ContextVar[bool] = contextvars.ContextVar("helpdesk_rehearsing", default=False)


@contextmanager
def rehearsal() -> Iterator[None]:
    """Everything run inside (in this context) is a rehearsal."""
    token = _rehearsing.set(True)
    try:
        yield
    finally:
        _rehearsing.reset(token)


def rehearsing() -> bool:
    return _rehearsing.get()
