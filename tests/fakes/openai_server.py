"""A scriptable OpenAI-compatible HTTP server on loopback, for the LLM fault cases (an external boundary).

with FakeOpenAI(models=["m"]) as fake:
    fake.behaviour = "error_500"        # or "ok", "hang", "refuse"
    settings.LLM_BASE_URL = fake.base_url
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, *, models: list[str] | None = None, dimensions: int = 384) -> None:
        self.models = models or ["fake-model"]
        self.dimensions = dimensions
        self.behaviour = "ok"
        self.hang_seconds = 30.0
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _misbehave(self) -> bool:
                if fake.behaviour == "error_500":
                    self._json(500, {"error": {"message": "scripted failure", "type": "server_error"}})
                    return True
                if fake.behaviour == "hang":
                    time.sleep(fake.hang_seconds)
                    return True
                if fake.behaviour == "refuse":
                    self.connection.close()
                    return True
                return False

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, None))
                if self._misbehave():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._json(
                        200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]}
                    )
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("POST", self.path, body))
                if self._misbehave():
                    return
                if self.path == "/v1/embeddings":
                    inputs = body.get("input")
                    items = inputs if isinstance(inputs, list) else [inputs]
                    data = [
                        {"object": "embedding", "index": i, "embedding": [0.1] * fake.dimensions}
                        for i, _ in enumerate(items)
                    ]
                    self._json(200, {"object": "list", "data": data, "model": body.get("model")})
                else:
                    self._json(404, {"error": {"message": "not scripted"}})

        return Handler
