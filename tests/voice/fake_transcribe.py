"""A scriptable OpenAI-compatible `/v1/audio/transcriptions` server on loopback (an external boundary).

with FakeTranscriber() as fake:
    fake.text = "Hello."          # what it hears
    fake.status = 500             # or answer with this HTTP status instead
    settings.TRANSCRIBE_BASE_URL = fake.base_url

Each request is recorded as its form fields and the uploaded file's name, content type and bytes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    authorization: str
    fields: dict[str, str]
    file_name: str
    file_type: str
    file_bytes: bytes


class FakeTranscriber:
    def __init__(self) -> None:
        self.text = "I would like to return my phone."
        self.status = 200
        self.requests: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeTranscriber:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
                message = BytesParser(policy=HTTP).parsebytes(head + body)
                fields: dict[str, str] = {}
                file_name = file_type = ""
                file_bytes = b""
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    payload = part.get_payload(decode=True)
                    data = payload if isinstance(payload, bytes) else b""
                    if part.get_filename():
                        file_name, file_type, file_bytes = (
                            str(part.get_filename()),
                            part.get_content_type(),
                            data,
                        )
                    elif name:
                        fields[str(name)] = data.decode()
                fake.requests.append(
                    Received(
                        path=self.path,
                        authorization=self.headers.get("Authorization", ""),
                        fields=fields,
                        file_name=file_name or "",
                        file_type=file_type,
                        file_bytes=file_bytes,
                    )
                )
                if self.path != "/v1/audio/transcriptions":
                    self._answer(404, {"error": {"message": "not found"}})
                elif fake.status != 200:
                    self._answer(fake.status, {"error": {"message": "scripted failure"}})
                else:
                    self._answer(200, {"text": fake.text})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
