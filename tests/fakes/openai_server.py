"""A scriptable OpenAI-compatible HTTP server on loopback, for the LLM fault cases (an external boundary).

with FakeOpenAI(models=["m"]) as fake:
    fake.behaviour = "error_500"        # or "ok", "hang", "refuse", "error_429", "error_400" and, for
                                        # chat completions, "cut", "stall", "malformed",
                                        # "content_filter", "refusal", "no_stream", "not_openai"
    fake.script(["error_500", "ok"])    # one behaviour per chat request first, then `behaviour`
    fake.reply_text = "Hello there."    # or fake.responder = lambda body: "..."
    fake.tool_caller = lambda body: [("order_lookup", '{"order_number": "NM-1"}')]
                                        # requests offering `tools` get these tool calls (None: text)
    fake.api_key = "sk-right"           # requests without "Authorization: Bearer sk-right" get a 401
    settings.LLM_BASE_URL = fake.base_url

Streams are sent the way llama.cpp's and vLLM's servers send them: HTTP/1.1 chunked SSE, a role chunk,
one chunk per word (with its leading space), a finish chunk, a usage chunk when the request asks for one,
then `data: [DONE]`. "cut" sends `cut_after` words and drops the connection mid-body; "stall" sends them
and then goes silent until `hang_seconds` pass or the server closes; "malformed" sends them, then an
event that is not JSON, then drops the connection. "no_stream" answers a chat with one plain JSON
completion even when the request asks for a stream (a server without streaming support). "not_openai" is
not an OpenAI server at all: `GET /v1/models` and chat completions answer 200 with an HTML page.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "Thanks for reaching out. Your order has shipped and should arrive within three days."


def split_tokens(text: str) -> list[str]:
    """The pieces a reply is streamed in: each word with the whitespace before it."""
    return re.findall(r"\s*\S+", text)


class FakeOpenAI:
    def __init__(self, *, models: list[str] | None = None, dimensions: int = 384) -> None:
        self.models = models or ["fake-model"]
        self.dimensions = dimensions
        self.behaviour = "ok"
        self.hang_seconds = 30.0
        self.reply_text = DEFAULT_REPLY
        self.responder: Callable[[dict[str, Any]], str] | None = None
        # For requests that offer tools: the (name, arguments JSON) calls to answer with; None or [] means
        # a plain text answer. Tool calls are answered unstreamed, as llama.cpp's function-calling
        # handler does.
        self.tool_caller: Callable[[dict[str, Any]], list[tuple[str, str]] | None] | None = None
        self.token_delay = 0.0
        self.cut_after = 3
        self.report_usage = True  # False: ignore stream_options.include_usage, like some servers do
        self.api_key: str | None = None  # set: every request must carry it as a bearer token, else 401
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.client_disconnects = 0  # streams the client closed before the server finished them
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._ids = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll interval: closing the server waits up to one interval.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [body or {} for method, path, body in self.requests if path == "/v1/chat/completions"]

    def script(self, behaviours: Iterable[str]) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def wait_for_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.client_disconnects >= count, timeout)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # wakes hung and stalled handlers so they end their connections
        self._server.shutdown()
        self._server.server_close()

    def _next_behaviour(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.behaviour

    def _client_gone(self) -> None:
        with self._changed:
            self.client_disconnects += 1
            self._changed.notify_all()

    def _completion_id(self) -> str:
        with self._lock:
            self._ids += 1
            return f"chatcmpl-fake-{self._ids}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked streams, as real servers send them

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _misbehave(self, behaviour: str, body: dict[str, Any] | None = None) -> bool:
                if behaviour == "error_500":
                    self._json(500, {"error": {"message": "scripted failure", "type": "server_error"}})
                    return True
                if behaviour == "error_503":  # llama-server's answer while it loads the model
                    self._json(503, {"error": {"message": "Loading model", "type": "unavailable_error"}})
                    return True
                if behaviour == "error_429":
                    self._json(
                        429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "0"}
                    )
                    return True
                if behaviour == "error_400":
                    # Real servers echo parts of the request in validation errors; clients must not log it.
                    echoed = json.dumps(body)[:500]
                    self._json(400, {"error": {"message": f"invalid request: {echoed}", "type": "invalid"}})
                    return True
                if behaviour == "hang":
                    self.close_connection = True
                    fake._closing.wait(fake.hang_seconds)
                    return True
                if behaviour == "refuse":
                    self.close_connection = True
                    self.connection.close()
                    return True
                return False

            def _key_rejected(self) -> bool:
                if fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return False
                error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
                self._json(401, {"error": error})
                return True

            def _html(self) -> None:
                data = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, None))
                if self._misbehave(fake.behaviour) or self._key_rejected():
                    return
                if fake.behaviour == "not_openai":
                    self._html()
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
                if self._key_rejected():
                    return
                if self.path == "/v1/chat/completions":
                    behaviour = fake._next_behaviour()
                    if behaviour == "not_openai":
                        self._html()
                        return
                    if not self._misbehave(behaviour, body):
                        self._chat(behaviour, body)
                    return
                if self._misbehave(fake.behaviour, body):
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

            def _chat(self, behaviour: str, body: dict[str, Any]) -> None:
                text = fake.responder(body) if fake.responder else fake.reply_text
                tokens = split_tokens(text)
                finish = "content_filter" if behaviour == "content_filter" else "stop"
                max_tokens = body.get("max_tokens")
                if isinstance(max_tokens, int) and len(tokens) > max_tokens:
                    tokens, finish = tokens[:max_tokens], "length"
                prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(tokens),
                    "total_tokens": prompt_tokens + len(tokens),
                }
                model = body.get("model") or fake.models[0]
                calls = fake.tool_caller(body) if fake.tool_caller and body.get("tools") else None
                if calls:
                    tool_calls = [
                        {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": args}}
                        for n, (name, args) in enumerate(calls)
                    ]
                    self._json(
                        200,
                        {
                            "id": fake._completion_id(),
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {
                                        "role": "assistant",
                                        "content": None,
                                        "tool_calls": tool_calls,
                                    },
                                    "finish_reason": "tool_calls",
                                }
                            ],
                            "usage": {**usage, "completion_tokens": 10, "total_tokens": prompt_tokens + 10},
                        },
                    )
                    return
                if not body.get("stream") or behaviour == "no_stream":
                    message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens)}
                    if behaviour == "refusal":
                        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
                    self._json(
                        200,
                        {
                            "id": fake._completion_id(),
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": model,
                            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                            "usage": usage,
                        },
                    )
                    return
                self._stream(behaviour, body, model, tokens, finish, usage)

            def _stream(
                self,
                behaviour: str,
                body: dict[str, Any],
                model: str,
                tokens: list[str],
                finish: str,
                usage: dict[str, int],
            ) -> None:
                self.close_connection = True
                base = {
                    "id": fake._completion_id(),
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                }

                def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
                    return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    self._event(chunk({"role": "assistant", "content": ""}))
                    if behaviour == "refusal":
                        self._event(chunk({"refusal": "I can't help with that."}))
                        self._event(chunk({}, "stop"))
                        self._done()
                        return
                    for sent, token in enumerate(tokens):
                        if behaviour in ("cut", "stall", "malformed") and sent == fake.cut_after:
                            if behaviour == "malformed":
                                self._write_chunk(b"data: {not json\n\n")
                            if behaviour == "stall":
                                fake._closing.wait(fake.hang_seconds)
                            return  # dropping the connection without the last chunk ends the body short
                        if fake.token_delay:
                            time.sleep(fake.token_delay)
                        self._event(chunk({"content": token}))
                    self._event(chunk({}, finish))
                    if fake.report_usage and (body.get("stream_options") or {}).get("include_usage"):
                        self._event({**base, "choices": [], "usage": usage})
                    self._done()
                except (BrokenPipeError, ConnectionResetError):
                    fake._client_gone()

            def _write_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _event(self, payload: dict[str, Any]) -> None:
                self._write_chunk(f"data: {json.dumps(payload)}\n\n".encode())

            def _done(self) -> None:
                self._write_chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

        return Handler
