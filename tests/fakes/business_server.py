"""A scriptable fake business system over HTTP on loopback (an external boundary), speaking the contract
documented in apps.tools.http, with in-memory customers, orders, bills and plans.

with FakeBusiness(token="t") as fake:
    fake.behaviour = "error_503"       # the default for every contract request; see BEHAVIOURS below
    fake.script(["hang", "ok"])        # one behaviour per contract request first, then `behaviour`
    fake.hang_seconds = 10.0           # "hang" / "hang_after_effect"; both end early when the fake closes
    fake.side_effects                  # [("plan_change", "cust-1001", "key-1"), ...]: applied, once each
    fake.requests                      # every contract request: method, raw path, headers, JSON body
    fake.wait_for_requests(2, timeout=5)

Behaviours: "ok"; "error_500", "error_503", "error_429" (with Retry-After); "hang" (wait `hang_seconds`,
then answer as "ok"); "hang_after_effect" (apply the request, then wait, then answer); "slow_trickle"
(apply, send the headers, then the body one byte per `trickle_interval`); "bad_json" (a 200 that is not
JSON); "redirect" (302 to `redirect_location`, by default another host); "huge" (a 2 MiB body with its
Content-Length); "huge_chunked" (the same, chunked, no length); "drop" (close without an answer);
"custom" (answer `custom_response`: status, body, headers). Only "ok", "hang", "hang_after_effect" and
"slow_trickle" reach the data; the others never change it. Error bodies carry LEAKY_DETAIL, which a
client must never surface.

Plan changes and tickets are applied at most once per (kind, customer, Idempotency-Key): a repeated key
gets the stored answer; the same key with another body gets 422 "idempotency_key_reused".

As a separate process, for tests that kill Celery workers mid-call:

    python -m tests.fakes.business_server --port 0 --state-file PATH --token T

prints its base URL on the first stdout line, rewrites PATH ({"side_effects": [[kind, customer, key],
...]}) atomically after every applied effect, and also serves, outside the contract and without auth:
    POST /_control {"behaviour": ..., "script": [...], "hang_seconds": ..., "trickle_interval": ...,
                    "redirect_location": ...}       ("script" replaces the pending script)
    GET  /_state   -> {"side_effects": [...], "effect_count": n, "request_count": n,
                       "requests": [[method, path], ...], "behaviour": ...}
"""

from __future__ import annotations

import argparse
import datetime
import hmac
import json
import os
import signal
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

BEHAVIOURS = frozenset(
    {
        "ok",
        "error_500",
        "error_503",
        "error_429",
        "hang",
        "hang_after_effect",
        "slow_trickle",
        "bad_json",
        "redirect",
        "huge",
        "huge_chunked",
        "drop",
        "custom",
    }
)
# Real systems put stack traces and internals in error bodies; a client that shows it is leaking.
LEAKY_DETAIL = "Traceback: db=postgres://app:hunter2@db.internal/billing"
HUGE_BYTES = 2 * 1024 * 1024
MAX_REQUEST_BYTES = 64 * 1024
# Fixed, so every date the fake derives (a plan change's effective date) is the same in every run.
TODAY = datetime.date(2025, 3, 14)

Json = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # raw, as sent: quoting is visible
    headers: dict[str, str]  # names lower-cased
    body: Any


def _plans() -> dict[str, Json]:
    def plan(
        code: str, name: str, price: str, data_gb: int | None, minutes: int | None, on_sale: bool = True
    ) -> Json:
        return {
            "code": code,
            "name": name,
            "monthly_price": Decimal(price),
            "currency": "EUR",
            "data_gb": data_gb,
            "minutes": minutes,
            "description": f"{name}: {data_gb or 'unlimited'} GB, {minutes or 'unlimited'} minutes.",
            "on_sale": on_sale,
        }

    return {
        "basic-10": plan("basic-10", "Basic 10", "19.00", 10, 300),
        "plus-50": plan("plus-50", "Plus 50", "29.00", 50, None),
        "unlimited": plan("unlimited", "Unlimited", "45.00", None, None),
        "legacy-5": plan("legacy-5", "Legacy 5", "15.00", 5, 100, on_sale=False),
    }


def _customers() -> dict[str, Json]:
    return {
        "cust-1001": {
            "plan": "basic-10",
            "orders": {
                "NM-100234": {
                    "number": "NM-100234",
                    "status": "shipped",
                    "items": [{"description": "Phone case", "quantity": 2}],
                    "placed_on": "2025-03-03",
                    "carrier": "DHL",
                    "tracking_number": "JD0146000034",
                    "shipped_on": "2025-03-05",
                    "estimated_delivery": "2025-03-08",
                }
            },
            "bill": {
                "number": "B-2025-02-1001",
                "period_start": "2025-02-01",
                "period_end": "2025-02-28",
                "issued_on": "2025-03-01",
                "due_on": "2025-03-15",
                "currency": "EUR",
                "total": Decimal("28.23"),
                "status": "due",
                "lines": [
                    {"description": "Basic 10", "kind": "plan", "amount": Decimal("19.00")},
                    {"description": "Extra data 1 GB", "kind": "usage", "amount": Decimal("4.50")},
                    {"description": "VAT", "kind": "tax", "amount": Decimal("4.73")},
                ],
                "previous_total": Decimal("24.10"),
            },
        },
        "cust-1002": {
            "plan": "legacy-5",  # withdrawn: compared against everything on sale, not itself on sale
            "orders": {
                "NM-200456": {
                    "number": "NM-200456",
                    "status": "delivered",
                    "items": [{"description": "SIM card"}],
                    "placed_on": "2025-02-20",
                    "carrier": "PostNL",
                    "tracking_number": "3SABCD123456789",
                    "shipped_on": "2025-02-21",
                    "delivered_on": "2025-02-24",
                }
            },
            "bill": {
                "number": "B-2025-02-1002",
                "period_start": "2025-02-01",
                "period_end": "2025-02-28",
                "issued_on": "2025-03-01",
                "due_on": "2025-03-15",
                "currency": "EUR",
                "total": Decimal("15.00"),
                "status": "paid",
                "lines": [{"description": "Legacy 5", "kind": "plan", "amount": Decimal("15.00")}],
            },
        },
        "cust-1003": {"plan": "plus-50", "orders": {}, "bill": None},  # new: nothing ordered or billed
    }


def _encode(payload: Any) -> bytes:
    def default(value: object) -> object:
        if isinstance(value, Decimal):
            return float(value)  # a JSON number, as most APIs send money; floats print shortest-exact
        raise TypeError(type(value).__name__)

    return json.dumps(payload, default=default).encode()


def _public_plan(plan: Json) -> Json:
    return {key: value for key, value in plan.items() if key != "on_sale"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: eight clients connecting at once (the idempotency test) could
    # see a connection dropped and retried by the kernel after a second, past the adapter's 1 s timeout.
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients here hang up mid-answer on purpose (timeouts, oversized bodies): not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeBusiness:
    def __init__(
        self,
        *,
        token: str,
        port: int = 0,
        path_prefix: str = "",
        state_file: Path | None = None,
    ) -> None:
        self.token = token  # empty: no Authorization required
        self.path_prefix = path_prefix.rstrip("/")
        self.state_file = state_file
        self.behaviour = "ok"
        self.hang_seconds = 30.0
        self.trickle_interval = 1.0
        self.redirect_location: str | None = None  # None: the same path on another host
        self.custom_response: tuple[int, bytes | Json, dict[str, str]] = (200, {}, {})
        self.requests: list[RecordedRequest] = []
        self.side_effects: list[tuple[str, str, str]] = []
        self.plans = _plans()
        self.customers = _customers()
        self._results: dict[tuple[str, str, str], tuple[str, int, Json]] = {}
        self._tickets: list[Json] = []
        self._references = 0
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._started = False
        self._server = _Server(("127.0.0.1", port), self._handler())
        # A short poll interval: closing the server waits up to one interval.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._write_state()

    # ---- the test's side -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path_prefix}"

    @property
    def host_port(self) -> str:
        """The allow-list entry (TOOLS_ALLOWED_HOSTS) that lets an adapter reach this server."""
        return f"127.0.0.1:{self.port}"

    @property
    def effect_count(self) -> int:
        with self._lock:
            return len(self.side_effects)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def tickets(self) -> list[Json]:
        with self._lock:
            return list(self._tickets)

    def script(self, behaviours: Iterable[str]) -> None:
        behaviours = list(behaviours)
        unknown = set(behaviours) - BEHAVIOURS
        if unknown:
            raise ValueError(f"unknown behaviours: {sorted(unknown)}")
        with self._lock:
            self._script.extend(behaviours)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout)

    def wait_for_effects(self, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.side_effects) >= count, timeout)

    def state(self) -> Json:
        with self._lock:
            return {
                "side_effects": [list(effect) for effect in self.side_effects],
                "effect_count": len(self.side_effects),
                "request_count": len(self.requests),
                "requests": [[r.method, r.path] for r in self.requests],
                "behaviour": self.behaviour,
            }

    def start(self) -> FakeBusiness:
        self._started = True
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes hanging and trickling handlers so they drop their connections
        if self._started:
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeBusiness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the business system's side --------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def _next_behaviour(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.behaviour

    def _write_state(self) -> None:
        """Atomically: a reader (another process) never sees half a file. Called with the lock held."""
        if self.state_file is None:
            return
        payload = json.dumps({"side_effects": [list(effect) for effect in self.side_effects]})
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".business-state-")
        with os.fdopen(fd, "w") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.state_file)

    def _answer(self, method: str, segments: Sequence[str], body: Any, key: str | None) -> tuple[int, Json]:
        """The contract: the status and JSON body a real system would answer, applying any effect."""
        if len(segments) < 3 or segments[0] != "customers":
            return 404, {"code": "not_found", "message": "no such resource"}
        customer_id, resource = segments[1], list(segments[2:])
        with self._lock:
            customer = self.customers.get(customer_id)
        if customer is None:
            return 404, {"code": "not_found", "message": "no such customer"}
        route = (method, *resource)
        if method == "GET" and resource[0] == "orders" and len(resource) == 2:
            order = customer["orders"].get(resource[1])
            return (200, order) if order else (404, {"code": "not_found", "message": "no such order"})
        if route == ("GET", "bills", "latest"):
            bill = customer["bill"]
            return (200, bill) if bill else (404, {"code": "not_found", "message": "no bill yet"})
        if route == ("GET", "plans"):
            return 200, self._comparison(customer)
        if route in (("POST", "plan-changes"), ("POST", "tickets")):
            if not key:
                return 400, {"code": "idempotency_key_required", "message": "send an Idempotency-Key"}
            if not isinstance(body, dict):
                return 400, {"code": "bad_request", "message": "a JSON object is required"}
            kind = "plan_change" if resource[0] == "plan-changes" else "ticket"
            return self._once(kind, customer_id, customer, key, body)
        if method == "GET":
            return 404, {"code": "not_found", "message": "no such resource"}
        return 405, {"code": "method_not_allowed", "message": f"{method} is not supported here"}

    def _comparison(self, customer: Json) -> Json:
        with self._lock:
            current = self.plans[customer["plan"]]
            options = [
                {**_public_plan(plan), "monthly_difference": plan["monthly_price"] - current["monthly_price"]}
                for plan in self.plans.values()
                if plan["on_sale"] and plan["code"] != current["code"]
            ]
        return {"current": _public_plan(current), "options": options}

    def _once(self, kind: str, customer_id: str, customer: Json, key: str, body: Json) -> tuple[int, Json]:
        fingerprint = json.dumps(body, sort_keys=True)
        with self._changed:
            stored = self._results.get((kind, customer_id, key))
            if stored is not None:
                if stored[0] != fingerprint:
                    return 422, {
                        "code": "idempotency_key_reused",
                        "message": "this key was used with another request",
                    }
                return stored[1], stored[2]
            if kind == "plan_change":
                status, payload = self._change_plan(customer, body)
            else:
                status, payload = self._open_ticket(customer_id, body)
            self._results[(kind, customer_id, key)] = (fingerprint, status, payload)
            if status < 300:
                self.side_effects.append((kind, customer_id, key))
                self._write_state()
                self._changed.notify_all()
            return status, payload

    def _change_plan(self, customer: Json, body: Json) -> tuple[int, Json]:
        code = body.get("plan_code")
        plan = self.plans.get(code) if isinstance(code, str) else None
        if plan is None or not plan["on_sale"]:
            return 422, {"code": "invalid_plan", "message": f"{code} is not a plan on sale"}
        if code == customer["plan"]:
            return 409, {"code": "same_plan", "message": f"the customer is already on {code}"}
        self._references += 1
        previous, customer["plan"] = customer["plan"], code
        next_month = (TODAY.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
        return 200, {
            "reference": f"PC-{self._references:06d}",
            "from_plan": previous,
            "to_plan": code,
            "effective_on": next_month.isoformat(),
        }

    def _open_ticket(self, customer_id: str, body: Json) -> tuple[int, Json]:
        subject, description = body.get("subject"), body.get("description")
        if not (isinstance(subject, str) and subject and isinstance(description, str) and description):
            return 422, {"code": "invalid_ticket", "message": "a subject and a description are required"}
        self._references += 1
        ticket = {"number": f"TCK-{self._references:06d}", "status": "open", "subject": subject}
        self._tickets.append({**ticket, "customer": customer_id, "description": description})
        return 201, ticket

    def _control(self, body: Any) -> tuple[int, Json]:
        if not isinstance(body, dict):
            return 400, {"error": "a JSON object is required"}
        behaviours = [body["behaviour"]] if "behaviour" in body else []
        script = body.get("script", [])
        if not isinstance(script, list) or not set(behaviours + script) <= BEHAVIOURS:
            return 400, {"error": f"behaviours are {sorted(BEHAVIOURS)}"}
        numbers = {name: body[name] for name in ("hang_seconds", "trickle_interval") if name in body}
        if not all(isinstance(value, int | float) and value >= 0 for value in numbers.values()):
            return 400, {"error": "hang_seconds and trickle_interval are non-negative numbers"}
        with self._lock:
            if behaviours:
                self.behaviour = behaviours[0]
            if "script" in body:
                self._script = deque(script)
            for name, value in numbers.items():
                setattr(self, name, float(value))
            if "redirect_location" in body:
                self.redirect_location = body["redirect_location"]
        return 200, {"ok": True}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def _handle(self, method: str) -> None:
                try:
                    self._serve(method)
                except ConnectionError:
                    self.close_connection = True  # the client gave up; nothing to answer

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self.close_connection = True
                    self._json(413, {"code": "too_large"})
                    return
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = ...  # recorded as Ellipsis: the request had a body that was not JSON
                path = self.path.split("?", 1)[0]
                if path == "/_control" and method == "POST":
                    self._json(*fake._control(body))
                    return
                if path == "/_state" and method == "GET":
                    self._json(200, fake.state())
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                fake._record(RecordedRequest(method, self.path, headers, body))
                behaviour = fake._next_behaviour()
                if self._misbehave(behaviour):
                    return
                if behaviour == "hang" and not self._wait(fake.hang_seconds):
                    return
                if fake.token and not hmac.compare_digest(
                    headers.get("authorization", "").encode(), f"Bearer {fake.token}".encode()
                ):
                    self._json(401, {"code": "unauthorized", "message": "bad token", "detail": LEAKY_DETAIL})
                    return
                if body is ...:
                    self._json(400, {"code": "bad_request", "message": "the body is not JSON"})
                    return
                prefix = fake.path_prefix
                if prefix and not path.startswith(prefix + "/"):
                    self._json(404, {"code": "not_found", "message": "no such resource"})
                    return
                # Split the raw path first, then unquote each segment: "%2F" stays inside its segment.
                segments = [unquote(part) for part in path[len(prefix) :].split("/")[1:]]
                status, payload = fake._answer(method, segments, body, headers.get("idempotency-key"))
                if behaviour == "hang_after_effect" and not self._wait(fake.hang_seconds):
                    return
                if behaviour == "slow_trickle":
                    self._trickle(status, _encode(payload))
                    return
                self._json(status, payload)

            def _misbehave(self, behaviour: str) -> bool:
                """The faults that answer without reaching the data."""
                if behaviour in ("error_500", "error_503", "error_429"):
                    status = int(behaviour.removeprefix("error_"))
                    retry = {"Retry-After": "1"} if status != 500 else {}
                    self._json(status, {"error": "scripted failure", "detail": LEAKY_DETAIL}, retry)
                elif behaviour == "redirect":
                    location = fake.redirect_location or f"http://redirect-target.invalid{self.path}"
                    self._send(302, b"", "text/plain", {"Location": location})
                elif behaviour == "bad_json":
                    self._send(200, b'{"number": "NM-100234", "status": ' + LEAKY_DETAIL.encode())
                elif behaviour == "huge":
                    self._send(200, self._huge_body())
                elif behaviour == "huge_chunked":
                    self._chunked(self._huge_body())
                elif behaviour == "drop":
                    self.close_connection = True
                elif behaviour == "custom":
                    status, body, headers = fake.custom_response
                    data = body if isinstance(body, bytes) else _encode(body)
                    self._send(status, data, "application/json", headers)
                else:
                    return False
                return True

            def _wait(self, seconds: float) -> bool:
                """False if the fake is closing: the connection is then dropped unanswered."""
                if fake._closing.wait(seconds):
                    self.close_connection = True
                    return False
                return True

            def _huge_body(self) -> bytes:
                head, tail = b'{"padding": "', b'"}'
                return head + b"x" * (HUGE_BYTES - len(head) - len(tail)) + tail

            def _send(
                self,
                status: int,
                data: bytes,
                content_type: str = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                headers = headers or {}
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                # A scripted Content-Length replaces the true one: a lying server is a case to test.
                if "content-length" not in {name.lower() for name in headers}:
                    self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _json(self, status: int, payload: Json, headers: dict[str, str] | None = None) -> None:
                self._send(status, _encode(payload), "application/json", headers)

            def _chunked(self, data: bytes) -> None:
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(data), 64 * 1024):
                    piece = data[start : start + 64 * 1024]
                    self.wfile.write(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

            def _trickle(self, status: int, data: bytes) -> None:
                self.close_connection = True
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                for index in range(len(data)):
                    self.wfile.write(data[index : index + 1])
                    self.wfile.flush()
                    if fake._closing.wait(fake.trickle_interval):
                        return

        return Handler


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake business system on loopback, for tests.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FakeBusiness(token=args.token, port=args.port, state_file=args.state_file) as fake:
        fake.hang_seconds = args.hang_seconds
        print(fake.base_url, flush=True)
        # Short waits: the signal handlers run between them.
        while not stop.wait(0.2):
            pass
    sys.exit(0)


if __name__ == "__main__":
    main()
