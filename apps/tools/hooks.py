"""How tool runs reach the layers above: listeners called after every committed change of a run.

Conversations registers one (in its AppConfig.ready) that records the run in the conversation timeline and
posts results that arrive after the answer stopped waiting. The Redis list per run wakes the answer that
waits for a result; a list (not pub/sub) so a wake-up pushed before the waiter listens is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from django.db import transaction

from apps.core.redis import astate_redis, state_key, state_redis
from apps.tools.models import ToolRun

logger = logging.getLogger(__name__)

RunListener = Callable[[ToolRun], None]
_listeners: list[RunListener] = []
WAKE_TTL_SECONDS = 300


def run_listener_add(listener: RunListener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def _wake_key(run_id: uuid.UUID | str) -> str:
    return state_key("toolrun", run_id, "final")


def run_changed(run: ToolRun) -> None:
    """Tells listeners about the run once the surrounding transaction commits."""
    run_id = run.id
    transaction.on_commit(lambda: _notify(run_id), robust=True)


def _notify(run_id: uuid.UUID) -> None:
    run = ToolRun.objects.filter(id=run_id).first()
    if run is None:
        return
    if run.is_final:
        try:
            client = state_redis()
            client.lpush(_wake_key(run.id), run.status)
            client.expire(_wake_key(run.id), WAKE_TTL_SECONDS)
        except Exception as exc:  # the waiter falls back to reading the database
            logger.warning("tool run %s wake-up not sent: %s", run.id, exc.__class__.__name__)
    for listener in list(_listeners):
        try:
            listener(run)
        except Exception:
            logger.exception("tool run listener %s failed for run %s", listener, run.id)


async def run_final_wait(run_id: uuid.UUID, *, timeout: float) -> bool:
    """Waits until the run is final or `timeout` passes; True if a wake-up came. The caller reads the
    run from the database either way: the wake-up only says when."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    key = _wake_key(run_id)
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            # Short blocking pops: the client's socket timeout is 2 s.
            got = await astate_redis().blpop([key], timeout=max(0.1, min(1.0, remaining)))
        except Exception:
            await asyncio.sleep(min(0.5, max(0.0, remaining)))
            return False
        if got is not None:
            return True
