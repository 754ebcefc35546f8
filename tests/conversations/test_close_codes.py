"""Frames the widget protocol refuses, and the close codes a real client reads for them (issue 14).

Everything goes through a real Daphne started as `make run` starts it (tests/daphne.py) and a real
`websockets` client: the close code a client reads is decided in Daphne and autobahn as much as in our
consumers (helpdesk/daphne_close_codes.py says how). The unit tests at the end pin the protocol's close
path on a Twisted test transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from twisted.internet.testing import StringTransport
from websockets.asyncio.client import ClientConnection
from websockets.typing import Origin

from apps.accounts import services as accounts
from apps.accounts.models import Tenant
from apps.conversations.models import Message
from apps.core.errors import WebsocketClose
from apps.core.realtime import MAX_FRAME_BYTES
from helpdesk import daphne_close_codes
from helpdesk.daphne_close_codes import PROTOCOL_FRAME_BYTES, HelpdeskWebSocketProtocol
from tests.conversations.conftest import ORIGIN, session_for
from tests.daphne import daphne_serving

MiB = 1024 * 1024


@dataclass
class Served:
    url: str
    tenant: Tenant
    pid: int
    log: Path

    def token(self) -> str:
        """A new visitor's session token."""
        return session_for(self.tenant).token

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _daphne_process(port: int) -> tuple[int, Path]:
    """The pid of the Daphne tests/daphne.py started on `port`, and the file its output goes to (read from
    /proc: `daphne_serving` yields only the URL, and its log file is deleted when it stops)."""
    wanted = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv[1 : 1 + len(wanted)] == wanted:
            return int(entry.name), Path(os.readlink(entry / "fd" / "1"))
    raise AssertionError(f"no Daphne process serves port {port}")


@pytest.fixture
def served(transactional_db: None) -> Iterator[Served]:
    from django.db import connection

    tenant = accounts.tenant_create(slug="frames", name="Frames Telecom", origins=[ORIGIN])
    with daphne_serving(database=connection.settings_dict["NAME"]) as url:
        pid, log = _daphne_process(int(url.rsplit(":", 1)[1]))
        yield Served(url=url, tenant=tenant, pid=pid, log=log)


@dataclass
class Outcome:
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None  # of the close frame the client received; None: TCP ended without one


async def _open(served: Served, token: str) -> ClientConnection:
    """A widget socket that said hello with `token`."""
    ws = await websockets.connect(
        served.url.replace("http://", "ws://") + f"/ws/widget/?key={served.tenant.widget_key}",
        origin=Origin(ORIGIN),
        compression=None,  # the payload crosses the wire as it is, at its full size
        max_size=MiB,
        open_timeout=30,
    )
    await ws.send(json.dumps({"type": "hello", "token": token, "client_msg_id": "h"}))
    welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
    assert welcome["type"] == "welcome", welcome
    return ws


async def _send_raw(ws: ClientConnection, payload: bytes | str, *, text: bool) -> Outcome:
    """Sends one frame as it is (text frames may hold any bytes) and reads until the server closes."""
    sender = asyncio.ensure_future(ws.send(payload, text=text))
    outcome = Outcome()
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(60):
            async for message in ws:
                outcome.frames.append(json.loads(message))
    await ws.wait_closed()
    with contextlib.suppress(websockets.ConnectionClosed):
        await sender
    received = ws.protocol.close_rcvd
    outcome.close_code = received.code if received is not None else None
    return outcome


async def _still_serves(ws: ClientConnection, client_msg_id: str) -> None:
    await ws.send(json.dumps({"type": "ping", "client_msg_id": client_msg_id}))
    assert json.loads(await asyncio.wait_for(ws.recv(), timeout=10)) == {
        "type": "pong",
        "client_msg_id": client_msg_id,
    }


def _message(size: int) -> str:
    """A `message` frame of about `size` bytes, as a client that ignores the limits would send."""
    return json.dumps({"type": "message", "text": "x" * size, "client_msg_id": f"big-{size}"})


# The frame (built when sent), and what a client must read for it: the error frames' codes, the close code.
CASES: list[tuple[str, Callable[[], bytes | str], bool, list[str], int]] = [
    ("binary", lambda: b"\x00\x01binary", False, ["bad_request"], WebsocketClose.POLICY),
    # Read and refused by the consumer (MAX_FRAME_BYTES)...
    ("100 KB text", lambda: _message(100_000), True, ["message_too_long"], WebsocketClose.TOO_BIG),
    # ...and by the protocol, as the header arrives (PROTOCOL_FRAME_BYTES, the 1 MiB message limit).
    ("512 KiB text", lambda: _message(512 * 1024), True, ["message_too_long"], WebsocketClose.TOO_BIG),
    ("2 MiB text", lambda: _message(2 * MiB), True, ["message_too_long"], WebsocketClose.TOO_BIG),
    ("16 MiB text", lambda: _message(16 * MiB), True, ["message_too_long"], WebsocketClose.TOO_BIG),
    # RFC 6455 §7.4.1: 1007 for data inconsistent with its type; autobahn checks it before Daphne decodes.
    ("invalid UTF-8", lambda: b'{"type": "ping", "client_msg_id": "\xff\xfe"}', True, [], 1007),
]


@pytest.mark.slow
def test_every_refused_frame_gets_its_close_code_and_another_visitor_keeps_chatting(served: Served) -> None:
    bystander_token, sender_token = served.token(), served.token()

    async def scenario() -> dict[str, tuple[list[str], int | None]]:
        bystander = await _open(served, bystander_token)
        seen: dict[str, tuple[list[str], int | None]] = {}
        for name, payload, text, _, _ in CASES:
            ws = await _open(served, sender_token)
            outcome = await _send_raw(ws, payload(), text=text)
            seen[name] = ([frame["code"] for frame in outcome.frames], outcome.close_code)
            await _still_serves(bystander, f"after {name}")
        await bystander.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen == {name: (codes, code) for name, _, _, codes, code in CASES}
    # Nothing of the refused frames was stored (so nothing went to the LLM either).
    assert not Message.objects.exists()
    log = served.log_text()
    # What a close code used to cost: the consumer crashed inside Daphne, which closed with 1011.
    assert "invalid close code" not in log
    assert "Exception inside application" not in log


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _settled_rss(pid: int, *, still_for: float = 5.0, timeout: float = 180.0) -> int:
    """Daphne's RSS once its background warm-ups (embeddings, Presidio: some 400 MiB over ~20 s, with
    pauses of a second or two) stopped growing it for `still_for` seconds."""
    deadline = time.monotonic() + timeout
    since, base = time.monotonic(), _rss_bytes(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _rss_bytes(pid)
        if abs(now - base) >= MiB:
            since, base = time.monotonic(), now
        elif time.monotonic() - since >= still_for:
            return now
    raise AssertionError("Daphne's memory never settled")


@pytest.mark.slow
def test_oversized_frames_are_refused_without_being_buffered(served: Served) -> None:
    token = served.token()
    frames, size = 4, 16 * MiB

    async def warm() -> None:
        # One socket through the whole path first, so what it allocates once is in the baseline.
        ws = await _open(served, token)
        await _still_serves(ws, "warm")
        await ws.close()

    asyncio.run(warm())
    baseline = _settled_rss(served.pid)
    peak = baseline
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, _rss_bytes(served.pid))
            time.sleep(0.005)

    async def flood() -> list[int | None]:
        codes = []
        for _ in range(frames):
            ws = await _open(served, token)
            codes.append((await _send_raw(ws, "y" * size, text=True)).close_code)
        return codes

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        codes = asyncio.run(flood())
    finally:
        sampling = False
        sampler.join()
    assert codes == [WebsocketClose.TOO_BIG] * frames
    # Buffering one such frame costs its size at least (twice: bytes, then the decoded text).
    assert peak - baseline < size // 2, f"Daphne grew by {(peak - baseline) / MiB:.1f} MiB"


# ---- the protocol's close path, without a server ----


def _open_protocol() -> tuple[HelpdeskWebSocketProtocol, StringTransport]:
    """The protocol Daphne's factory builds, with Daphne's default options, moved to the OPEN state (as
    after the opening handshake) on a test transport."""
    from daphne.ws_protocol import WebSocketFactory

    daphne_close_codes.install()
    factory = WebSocketFactory(server_class=None, server="Daphne")
    factory.setProtocolOptions(maxMessagePayloadSize=MiB, maxFramePayloadSize=MiB)  # Daphne's defaults
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state, protocol.websocket_version = protocol.STATE_OPEN, 13
    protocol.inside_message, protocol.current_frame = False, None
    transport.clear()
    return protocol, transport


def _server_frames(wire: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked frame (a server's) in `wire`."""
    frames = []
    while wire:
        opcode, length, start = wire[0] & 0x0F, wire[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(wire[2:4], "big"), 4
        frames.append((opcode, wire[start : start + length]))
        wire = wire[start + length :]
    return frames


def _close_frames(wire: bytes) -> list[int]:
    return [int.from_bytes(payload[:2], "big") for opcode, payload in _server_frames(wire) if opcode == 8]


@pytest.mark.parametrize("code", [1000, 1008, 1009, 1011, 1013, 4401, 4403, 4429])
def test_daphne_sends_every_close_code_a_consumer_uses(code: int) -> None:
    protocol, transport = _open_protocol()
    assert isinstance(protocol, HelpdeskWebSocketProtocol)
    protocol.serverClose(code=code)
    assert _close_frames(transport.value()) == [code]
    # The closing handshake goes on as autobahn's own close would: we wait for the reply, then drop TCP.
    assert (protocol.state, protocol.closedByMe) == (protocol.STATE_CLOSING, True)
    protocol.closeHandshakeTimeoutCall.cancel()
    protocol.serverClose(code=code)  # closing already: nothing more is sent
    assert _close_frames(transport.value()) == [code]


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1010, 1015, 2000, 5000, True, "1008"])
def test_a_code_no_server_may_send_is_refused(code: Any) -> None:
    protocol, transport = _open_protocol()
    with pytest.raises(ValueError, match="may not send close code"):
        protocol.serverClose(code=code)
    assert transport.value() == b""
    assert protocol.state == protocol.STATE_OPEN


def test_install_is_idempotent_and_the_limits_sit_above_the_consumers() -> None:
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

    daphne_close_codes.install()
    daphne_close_codes.install()
    assert WebSocketFactory.protocol is HelpdeskWebSocketProtocol
    assert HelpdeskWebSocketProtocol.__bases__ == (WebSocketProtocol,)
    # Every frame a consumer could accept reaches it; the protocol stops only what none would.
    assert MAX_FRAME_BYTES < PROTOCOL_FRAME_BYTES < MiB


def test_a_frame_past_the_protocol_limit_is_refused_from_its_header() -> None:
    protocol, transport = _open_protocol()
    assert protocol.maxFramePayloadSize == PROTOCOL_FRAME_BYTES  # Daphne's 1 MiB is overridden
    # A masked text frame announcing 200 KiB: only its header arrives, none of the payload.
    header = bytes([0x81, 0x80 | 127]) + (200 * 1024).to_bytes(8, "big") + b"mask"
    protocol.dataReceived(header)
    frames = _server_frames(transport.value())
    assert [opcode for opcode, _ in frames] == [1, 8]
    assert json.loads(frames[0][1])["code"] == "message_too_long"
    assert _close_frames(transport.value()) == [WebsocketClose.TOO_BIG]
    # The payload that follows is discarded as it comes: nothing of it is kept for a message.
    protocol.dataReceived(b"y" * (100 * 1024))
    assert protocol.message_data == []
    assert len(protocol.data) == 0
    protocol.closeHandshakeTimeoutCall.cancel()
