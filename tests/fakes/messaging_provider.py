"""A fake SMS/WhatsApp-style messaging provider over HTTP on loopback (an external boundary), speaking the
contract of apps/messaging (docs/architecture/channels.md, "Worked example: the messaging channel").

with FakeMessagingProvider(token="t", secret="s") as fake:
    settings/channel base URL = fake.base_url          # http://127.0.0.1:<port>/v1
    fake.fail_next(2)                                   # the next 2 outbound sends answer 503
    fake.outbound                                       # every accepted send: {"to","from","text",
                                                        #   "client_ref","message_id","headers"}
    fake.wait_for_outbound(1, timeout=10)
    raw, headers = fake.signed(fake.inbound_body(sender="+447700900123", text="hi"))  # for a test client
    fake.send_inbound(desk_url, slug, sender="+447700900123", text="hi")   # to a live desk
    fake.send_status(desk_url, slug, message_id=..., status="delivered")

The provider's side of the contract: `POST {base}/messages` with `Authorization: Bearer <token>` and a JSON
body `{"to", "from", "text", "client_ref"}` answers 201 `{"message_id": "<provider id>"}`; a wrong token
401; a malformed body 400. The signing of webhooks is written out here on its own (not imported from the
product), so a test fails if the product's verification drifts from the contract.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_REQUEST_BYTES = 64 * 1024
TIMESTAMP_HEADER = "X-Messaging-Timestamp"
SIGNATURE_HEADER = "X-Messaging-Signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The provider's signature: hex HMAC-SHA256 of `timestamp + "." + raw body` under the shared secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookAnswer:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"WebhookAnswer({self.status}, {self.body!r})"


class FakeMessagingProvider:
    def __init__(self, *, token: str, secret: str, number: str = "+15550001111") -> None:
        self.token = token
        self.secret = secret
        self.number = number
        self.outbound: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, str]] = []  # (status, reason) of sends the fake refused
        self._failures_left = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def host_entry(self) -> str:
        """The allow-list entry that admits this fake."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeMessagingProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, count: int) -> None:
        """The next `count` sends answer 503 (a provider outage) and are not recorded."""
        with self._lock:
            self._failures_left = count

    def wait_for_outbound(self, count: int, *, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.outbound) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} outbound messages, got {len(self.outbound)}")
                self._changed.wait(remaining)
            return list(self.outbound)

    # ---- webhooks the provider sends to the desk -----------------------------------------------------

    def inbound_body(self, *, sender: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        return {
            "message_id": message_id or f"in-{uuid.uuid4().hex[:16]}",
            "from": sender,
            "to": self.number,
            "text": text,
            "timestamp": int(time.time()),
        }

    def signed(
        self,
        body: dict[str, Any],
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The raw body and headers of a webhook as the provider sends it; `secret`, `timestamp` and
        `signature` override the honest ones (a forger, a replay)."""
        raw = json.dumps(body).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature if signature is not None else sign(secret or self.secret, stamp, raw),
        }
        return raw, headers

    def send_inbound(
        self, desk_url: str, slug: str, *, sender: str, text: str, message_id: str | None = None
    ) -> WebhookAnswer:
        """POSTs a signed inbound message to a live desk."""
        body = self.inbound_body(sender=sender, text=text, message_id=message_id)
        return self._post(f"{desk_url}/api/v1/channels/messaging/{slug}/inbound", *self.signed(body))

    def send_status(self, desk_url: str, slug: str, *, message_id: str, status: str) -> WebhookAnswer:
        body = {"message_id": message_id, "status": status, "timestamp": int(time.time())}
        return self._post(f"{desk_url}/api/v1/channels/messaging/{slug}/status", *self.signed(body))

    def _post(self, url: str, raw: bytes, headers: dict[str, str]) -> WebhookAnswer:
        request = urllib.request.Request(
            url, data=raw, headers={"Content-Type": "application/json", **headers}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return WebhookAnswer(response.status, json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            return WebhookAnswer(exc.code, json.loads(payload) if payload else {})

    # ---- the provider's HTTP API ---------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, MAX_REQUEST_BYTES))
                if self.path != "/v1/messages":
                    self._refuse(404, "no such endpoint")
                    return
                if not hmac.compare_digest(
                    (self.headers.get("Authorization") or "").encode(), f"Bearer {fake.token}".encode()
                ):
                    self._refuse(401, "bad token")
                    return
                with fake._lock:
                    if fake._failures_left > 0:
                        fake._failures_left -= 1
                        failing = True
                    else:
                        failing = False
                if failing:
                    self._refuse(503, "outage")
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                fields = ("to", "from", "text", "client_ref")
                if not isinstance(body, dict) or not all(isinstance(body.get(f), str) for f in fields):
                    self._refuse(400, "malformed")
                    return
                with fake._changed:
                    message_id = f"prov-{next(fake._ids)}"
                    record = {f: body[f] for f in fields}
                    record["message_id"] = message_id
                    record["headers"] = {k.lower(): v for k, v in self.headers.items()}
                    fake.outbound.append(record)
                    fake._changed.notify_all()
                self._answer(201, {"message_id": message_id})

            def _refuse(self, status: int, reason: str) -> None:
                with fake._lock:
                    fake.rejected.append((status, reason))
                self._answer(status, {"error": reason})

        return Handler
