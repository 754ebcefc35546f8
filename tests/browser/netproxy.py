"""A TCP forwarder on loopback whose live connections a test can cut at will.

Put it between a browser and a server to simulate a network that drops connections (a mobile user
walking into a lift, a load balancer recycling sockets) without touching either end:

    with NetProxy(target_port=daphne_port) as proxy:
        page.goto(...)               # the page talks to proxy.url
        proxy.sever()                # every open connection is reset; new ones are accepted as before
        proxy.refuse = True          # new connections are closed at once (the server "is down")

It only forwards bytes, so HTTP, keep-alive and websockets all pass through it unchanged.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

_CHUNK = 65536


@dataclass(eq=False)  # identity semantics: links live in a set
class _Link:
    client: socket.socket
    upstream: socket.socket
    closed: threading.Event = field(default_factory=threading.Event)

    def close(self, *, reset: bool) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                if reset:
                    # SO_LINGER with a zero timeout makes the close send RST: the peer sees the connection
                    # die at once, as after a network failure, rather than a polite FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                # close() alone does nothing while a pump thread is blocked in recv() on the socket (the
                # blocked call holds it open); shutdown wakes that thread. SHUT_RD sends nothing, so the
                # close that follows still resets.
                sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class NetProxy:
    def __init__(self, *, target_port: int, target_host: str = "127.0.0.1", listen_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.refuse = False
        self.accepted = 0  # connections accepted and forwarded since start
        self.severed = 0  # connections cut by sever()
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server((listen_host, 0))
        self._listener.settimeout(0.2)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="netproxy-accept", daemon=True)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def live(self) -> int:
        with self._lock:
            return len(self._links)

    def start(self) -> NetProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.sever()

    def __enter__(self) -> NetProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sever(self, *, reset: bool = True) -> int:
        """Cuts every live connection (both directions); returns how many were cut."""
        with self._lock:
            links = list(self._links)
            self._links.clear()
        for link in links:
            link.close(reset=reset)
        self.severed += len(links)
        return len(links)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.refuse:
                _Link(client, socket.socket()).close(reset=True)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _Link(client, socket.socket()).close(reset=True)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, upstream)
            with self._lock:
                self._links.add(link)
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(link, source, sink), name="netproxy-pump", daemon=True
                ).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not link.closed.is_set():
                data = source.recv(_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # Either side finishing ends the pair: nothing here needs half-closed connections.
            with self._lock:
                self._links.discard(link)
            link.close(reset=False)
