"""A pytest plugin (`-p tests.event_frames` in pyproject's addopts): every text frame a test receives from
one of our sockets is validated against the event models of that socket (apps.core.event_types), so every
websocket test is also a check of the event schema. Covers Channels' WebsocketCommunicator (the ASGI app
in process) and the `websockets` client (a real Daphne)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from apps.core.event_types import Surface, frame_validate

SURFACE_PREFIXES: tuple[tuple[str, Surface], ...] = (
    ("/ws/widget/", "widget"),
    ("/ws/console/", "console"),
    ("/ws/staff/", "staff"),
)

# How many frames were checked in this session (a test asserts the hook really runs).
CHECKED = {"frames": 0}


def surface_of(path: str) -> Surface | None:
    for prefix, surface in SURFACE_PREFIXES:
        if path.startswith(prefix):
            return surface
    return None


def frame_check(path: str, text: str) -> None:
    """Raises AssertionError if `text`, received on `path`, is not a frame that socket may send."""
    surface = surface_of(path)
    if surface is None:
        return
    try:
        frame = json.loads(text)
    except ValueError:
        raise AssertionError(f"{path} sent a frame that is not JSON: {text[:200]!r}") from None
    try:
        frame_validate(surface, frame)
    except ValidationError as exc:
        raise AssertionError(
            f"{path} sent a {frame.get('type')!r} frame that does not match its model in "
            f"apps/core/event_types ({surface}): {exc}\nframe: {text[:500]}"
        ) from None
    CHECKED["frames"] += 1


def _patch_communicator() -> None:
    from channels.testing import WebsocketCommunicator

    original = WebsocketCommunicator.receive_output
    if getattr(original, "_checks_frames", False):
        return

    async def receive_output(self: Any, timeout: float = 1) -> Any:
        output = await original(self, timeout)
        if isinstance(output, dict) and output.get("type") == "websocket.send" and output.get("text"):
            frame_check(self.scope.get("path", ""), output["text"])
        return output

    receive_output._checks_frames = True  # type: ignore[attr-defined]
    WebsocketCommunicator.receive_output = receive_output


def _patch_websockets() -> None:
    try:
        from websockets.asyncio.client import ClientConnection
    except ImportError:  # pragma: no cover - the dev dependencies include websockets
        return
    original = ClientConnection.recv
    if getattr(original, "_checks_frames", False):
        return

    async def recv(self: Any, *args: Any, **kwargs: Any) -> Any:
        message = await original(self, *args, **kwargs)
        if isinstance(message, str) and self.request is not None:
            frame_check(self.request.path, message)
        return message

    recv._checks_frames = True  # type: ignore[attr-defined]
    ClientConnection.recv = recv  # type: ignore[method-assign]


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    _patch_communicator()
    _patch_websockets()
