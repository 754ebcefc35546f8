"""Idle widget sockets held open by the hundred, and what the web process holds for them (bench/load.py).

An idle visitor is what the widget makes of a page that was opened and left: a session
(`POST /api/widget/v1/session` with the page's Origin), the websocket to `/ws/widget/`, `hello` ->
`welcome`, then nothing but the widget's own `ping` every 20 s (static/widget/widget.js PING_MS).

Every visitor here is on loopback, and the desk budgets sessions, sockets and frames per address
(WIDGET_RATE_SESSIONS_IP, WIDGET_SOCKETS_PER_IP, DRF's anonymous throttle): a crowd that all came from
127.0.0.1 would measure those limits, not the sockets. So idle visitors come from their own loopback
addresses (127.0.0.2 and up; Linux routes all of 127/8 to `lo`), `VISITORS_PER_ADDRESS` to one, far under
every per-address budget of the production defaults: the same crowd can be sent to `make run`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

VISITORS_PER_ADDRESS = 10
PING_SECONDS = 20.0  # static/widget/widget.js PING_MS
OPENING_AT_ONCE = 16  # pages loading at the same moment: sessions and handshakes in flight together
OPEN_TIMEOUT_SECONDS = 30.0
SESSION_PATH = "/api/widget/v1/session"


def visitor_address(index: int) -> str:
    """The loopback address idle visitor `index` comes from (127.0.0.1 is left to the askers)."""
    group = index // VISITORS_PER_ADDRESS
    return f"127.0.{group // 250}.{2 + group % 250}"


def session_from(web_url: str, widget_key: str, address: str) -> str:
    """A new visitor's widget session, asked from `address`, as the widget asks it. A refusal (a 429
    included) is a failure of this visitor: the crowd is spread to stay under every budget."""
    parts = urlsplit(web_url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        timeout=OPEN_TIMEOUT_SECONDS,
        source_address=(address, 0),
    )
    try:
        connection.request(
            "POST",
            SESSION_PATH,
            body=json.dumps({"widget_key": widget_key, "token": None, "identity": None}),
            headers={"Content-Type": "application/json", "Accept": "application/json", "Origin": web_url},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"POST {SESSION_PATH} answered {response.status}: {body[:200]!r}")
    return str(json.loads(body)["token"])


@dataclass
class CrowdFigures:
    wanted: int
    opened: int = 0
    open_s: float = 0.0
    session_ms: list[float] = field(default_factory=list)
    connect_hello_ms: list[float] = field(default_factory=list)  # connect -> `welcome`
    open_failures: list[str] = field(default_factory=list)
    frames: collections.Counter[str] = field(default_factory=collections.Counter)  # after `welcome`
    error_frames: list[str] = field(default_factory=list)
    unexpected_closes: list[str] = field(default_factory=list)  # closed by the server while idle
    pings_sent: int = 0
    extensions: str = ""  # what the server negotiated (permessage-deflate or nothing)


class IdleCrowd:
    """`count` idle widget visitors on an event loop of their own, in a thread, so the askers measured
    in the main thread share nothing with them but the server."""

    def __init__(self, *, web_url: str, widget_key: str, count: int) -> None:
        self.web_url, self.widget_key = web_url, widget_key
        self.figures = CrowdFigures(wanted=count)
        self.closing = False
        self._sockets: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="idle-crowd", daemon=True)
        self._thread.start()

    def open(self) -> CrowdFigures:
        """Opens every socket (at most OPENING_AT_ONCE at a time); returns once each said hello or failed."""
        budget = OPEN_TIMEOUT_SECONDS * (2 + self.figures.wanted / OPENING_AT_ONCE)
        asyncio.run_coroutine_threadsafe(self._open_all(), self._loop).result(timeout=budget)
        return self.figures

    def close(self) -> CrowdFigures:
        """Closes every socket with a normal close, as a page that is left does, and stops the loop."""
        try:
            asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=120)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
        return self.figures

    async def _open_all(self) -> None:
        started = time.perf_counter()
        gate = asyncio.Semaphore(OPENING_AT_ONCE)
        await asyncio.gather(*(self._open_one(index, gate) for index in range(self.figures.wanted)))
        self.figures.open_s = round(time.perf_counter() - started, 2)

    async def _open_one(self, index: int, gate: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Origin

        address = visitor_address(index)
        async with gate:
            try:
                started = time.perf_counter()
                token = await asyncio.to_thread(session_from, self.web_url, self.widget_key, address)
                self.figures.session_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                url = self.web_url.replace("http://", "ws://") + f"/ws/widget/?key={self.widget_key}"
                ws = await connect(
                    url,
                    origin=Origin(self.web_url),
                    local_addr=(address, 0),
                    proxy=None,
                    ping_interval=None,  # a browser sends no protocol pings; the widget's own follow
                    open_timeout=OPEN_TIMEOUT_SECONDS,
                )
                hello = {"type": "hello", "token": token, "last_seq": 0, "client_msg_id": str(uuid.uuid4())}
                await ws.send(json.dumps(hello))
                async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
                    while (frame := json.loads(await ws.recv())).get("type") != "welcome":
                        if frame.get("type") == "error":
                            await ws.close()
                            raise RuntimeError(f"hello answered {frame.get('code')}: {frame.get('message')}")
            except Exception as exc:  # a visitor who could not get in is counted, the crowd goes on
                self.figures.open_failures.append(f"{address}: {exc.__class__.__name__}: {exc}"[:200])
                return
        self.figures.connect_hello_ms.append((time.perf_counter() - started) * 1000)
        self.figures.opened += 1
        if not self.figures.extensions and ws.response is not None:
            self.figures.extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "none")
        self._sockets.append(ws)
        self._tasks.append(asyncio.create_task(self._idle(ws, address)))

    async def _idle(self, ws: Any, address: str) -> None:
        """Reads whatever the desk pushes (so its buffers drain) and pings as the widget does; pages
        opened at different moments ping at different moments, hence the random first ping."""
        from websockets.exceptions import ConnectionClosed

        next_ping = time.monotonic() + random.uniform(0, PING_SECONDS)
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=max(0.0, next_ping - time.monotonic()))
            except TimeoutError:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps({"type": "ping", "client_msg_id": str(uuid.uuid4())}))
                    self.figures.pings_sent += 1
                next_ping += PING_SECONDS
                continue
            except ConnectionClosed as exc:
                if not self.closing:
                    code = exc.rcvd.code if exc.rcvd is not None else "no close frame"
                    self.figures.unexpected_closes.append(f"{address}: {code}")
                return
            frame = json.loads(raw)
            kind = str(frame.get("type"))
            self.figures.frames[kind] += 1
            if kind == "error":
                self.figures.error_frames.append(str(frame.get("code")))

    async def _close_all(self) -> None:
        self.closing = True
        await asyncio.gather(*(ws.close() for ws in self._sockets), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)


# ---- what the server holds ---------------------------------------------------------------------------


def server_pid_listening(port: int) -> int:
    """The process listening on `port` on this machine (the Daphne of a running `make run`)."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise SystemExit(f"no process of this machine listens on port {port} (or it is not visible to this user)")


@dataclass(frozen=True)
class Sample:
    rss_mib: float  # the server process and its children
    fds: int
    redis_clients: int  # CLIENT LIST on the server's Valkey, this bench process's own connections left out
    redis_clients_server: int  # of those, the ones the server process (or a child) holds
    redis_server_by_name: dict[str, int]  # those, by client name and database ("helpdesk:ws db0")


def _redis_ports(proc: Any, redis_port: int) -> set[int]:
    """The local ports of `proc`'s TCP connections to Valkey: CLIENT LIST names a client by them."""
    return {c.laddr.port for c in proc.net_connections(kind="tcp") if c.raddr and c.raddr.port == redis_port}


def sample(*, pid: int, redis_url: str) -> Sample:
    import psutil
    import redis

    server = psutil.Process(pid)
    rss, fds, ports = 0, 0, set()
    redis_port = urlsplit(redis_url).port or 6379
    for proc in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            rss += proc.memory_info().rss
            fds += proc.num_fds()
            ports |= _redis_ports(proc, redis_port)
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        listed = client.client_list()
        own = _redis_ports(psutil.Process(), redis_port)
    finally:
        client.close()
    others = [c for c in listed if _port(c) not in own]
    held = [c for c in others if _port(c) in ports]
    by_name = collections.Counter(f"{c.get('name') or '(unnamed)'} db{c.get('db', '?')}" for c in held)
    return Sample(
        rss_mib=round(rss / 2**20, 2),
        fds=fds,
        redis_clients=len(others),
        redis_clients_server=len(held),
        redis_server_by_name=dict(sorted(by_name.items())),
    )


def _port(client: dict[str, Any]) -> int:
    """A CLIENT LIST entry's own port (its `addr` is `host:port`)."""
    return int(str(client.get("addr", ":0")).rsplit(":", 1)[1])
