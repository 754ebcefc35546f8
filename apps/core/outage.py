"""What a websocket does while the database is down (a restart, a failover): it says so and asks the client
to come back, instead of failing the handshake or closing with 1011 (docs/architecture/realtime.md,
"Restarts").

Only errors that mean "the database cannot be reached or used right now" count; anything else stays a bug
and is raised as before.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError

from apps.core.errors import TemporarilyUnavailable, WebsocketClose, error_frame

logger = logging.getLogger(__name__)

# Django wraps the driver's errors in its own classes; code that talks to psycopg directly sees these.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def database_down() -> TemporarilyUnavailable:
    """The error frame's error: retryable, and the client reconnects on the 1013 that follows it."""
    return TemporarilyUnavailable("The desk is briefly unavailable. Reconnecting in a few seconds.")


def database_outage_guarded(app: Any) -> Any:
    """`app` inside a DatabaseOutageGuard, typed like channels' `as_asgi()` so that `path()` takes it."""
    return DatabaseOutageGuard(app)


class DatabaseOutageGuard:
    """ASGI middleware for a websocket route: a database error that escapes the application (the session
    and user lookups of AuthMiddlewareStack run before any consumer code; a frame's service call fails
    mid-socket) is answered with the `temporarily_unavailable` error frame and close 1013 rather than a
    failed handshake or 1011. Consumers answer the cases they expect themselves (at connect and hello)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state = {"accepted": False, "closed": False}

        async def tracked(message: dict[str, Any]) -> None:
            if message.get("type") == "websocket.accept":
                state["accepted"] = True
            elif message.get("type") == "websocket.close":
                state["closed"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except DATABASE_DOWN as exc:
            if scope.get("type") != "websocket" or state["closed"]:
                raise
            logger.warning(
                "websocket %s closed with 1013: database unavailable (%s)",
                scope.get("path"),
                exc.__class__.__name__,
            )
            if not state["accepted"]:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(error_frame(database_down()))})
            await send({"type": "websocket.close", "code": WebsocketClose.TRY_AGAIN_LATER})
