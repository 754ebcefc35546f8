"""The one wrapped HTTP client for tool adapters (STYLE rule 10), and the adapter that speaks a company's
business-system API through it.

The HTTP contract a company implements (JSON both ways, `Authorization: Bearer <secret>`; `{base}` is the
configured base URL, each `{...}` one URL-quoted path segment):

    GET  {base}/customers/{customer}/orders/{order_number}  -> OrderInfo
    GET  {base}/customers/{customer}/bills/latest           -> BillInfo
    GET  {base}/customers/{customer}/plans                  -> PlansComparison
    POST {base}/customers/{customer}/plan-changes           -> PlanChangeResult
         {"plan_code": ...}
    POST {base}/customers/{customer}/tickets                -> TicketResult
         {"subject": ..., "description": ...}

Both POSTs carry an `Idempotency-Key` header: the system applies each at most once per key and answers a
repeated key with the first result. Answers (the shapes are the pydantic models in apps.tools.schemas):

    2xx        the JSON object above; not JSON or the wrong shape  -> AdapterError("bad_response")
    404        not the customer's, or no such thing (not revealed)  -> AdapterError("not_found")
    409, 422   {"code": "invalid_plan" | "same_plan" | ...,         -> AdapterError(code, message)
                "message": ...}; a code not [a-z_]{1,40}            -> AdapterError("rejected")
    other 4xx                                                       -> AdapterError("rejected")
    3xx        never followed, wherever it points                   -> AdapterError("bad_response")
    429                                                             -> TransientAdapterError("rate_limited")
    5xx, a refused or dropped connection                            -> TransientAdapterError("unavailable")
    no whole answer within `timeout_seconds`                        -> TransientAdapterError("timeout")

Only transient errors are worth a retry, with the same idempotency key. The client never follows a
redirect, checks every URL it sends to against the host allow-list (host and port: a listed host without
a port allows only the scheme's default port), ignores proxy and netrc settings from the environment
(what is called is exactly what the allow-list says), refuses compressed answers (their size is what we
bound) and bodies over 1 MiB, and never puts the secret or a response body in an exception or a log line:
the one exception is the `message` of a 409/422, which the contract defines as text meant for the
customer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from apps.tools.errors import AdapterError, TransientAdapterError
from apps.tools.hosts import AllowedHost, allow_list_admits, allowed_hosts_parse, entry_for
from apps.tools.schemas import BillInfo, OrderInfo, PlanChangeResult, PlansComparison, TicketResult

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = "helpdesk-tools/1"
# Plain http is tolerated only where nothing crosses a network: a company's API on the same machine.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_ERROR_CODE = re.compile(r"[a-z_]{1,40}")
# Visible ASCII only: a CR/LF would split headers, and httpx's own complaint about one would quote the value.
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,1000}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_MESSAGE_MAX_CHARS = 300
# Failures that point at a broken integration (misconfiguration, a misbehaving API) rather than an answer.
_INCIDENT_CODES = frozenset({"bad_response", "rejected", "host_not_allowed"})

ModelT = TypeVar("ModelT", bound=BaseModel)


def _not_allowed(message: str) -> NoReturn:
    raise AdapterError("host_not_allowed", message)


def _check_url(url: httpx.URL, allowed_hosts: frozenset[AllowedHost]) -> None:
    """Every URL the client sends to: its host and port must be on the list (host alone = default port)."""
    host = url.host.lower()
    if not host:
        _not_allowed("the base URL is not on the adapter's host allow-list")
    # IDNA hosts may be listed in either form; httpx gives the unicode one in `host`. Its `port` is None
    # for the scheme's default port.
    ascii_host = url.raw_host.decode("ascii", "replace").lower()
    if not allow_list_admits(allowed_hosts, scheme=url.scheme, hosts=(host, ascii_host), port=url.port):
        needed = entry_for(scheme=url.scheme, host=host, port=url.port)
        _not_allowed(f"{needed} is not on the adapter's host allow-list")
    if url.scheme == "https" or (url.scheme == "http" and host in LOOPBACK_HOSTS):
        return
    _not_allowed("only https is allowed (plain http only to a loopback host)")


def _check_base_url(base_url: str, allowed_hosts: frozenset[AllowedHost]) -> httpx.URL:
    try:
        url: httpx.URL | None = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        url = None  # raised outside the handler: httpx's message would quote the URL, credentials and all
    if url is None:
        _not_allowed("the base URL is not a valid URL")
    _check_url(url, allowed_hosts)
    # Credentials in the URL would be sent as Basic auth next to ours; a query or fragment would end up
    # in front of the joined paths. Neither belongs in a base URL.
    if url.userinfo or url.query or url.fragment:
        _not_allowed("the base URL must not carry credentials, a query or a fragment")
    return url


def _message_from(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return " ".join(_CONTROL_CHARS.sub(" ", value).split())[:_MESSAGE_MAX_CHARS]


def _no_constants(name: str) -> NoReturn:
    raise ValueError(name)


def _load_json(body: bytes) -> object | None:
    """The decoded body, or None if it is not JSON (None is never a valid answer either)."""
    try:
        # Money stays exact (Decimal, not float); NaN/Infinity are not JSON and have no business in a bill.
        data: object = json.loads(body, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        # RecursionError: a deeply nested array is valid JSON that the decoder cannot hold.
        return None
    return data


def _decode(body: bytes) -> object:
    data = _load_json(body)
    if data is None:
        raise AdapterError("bad_response", "the business system's answer is not JSON")
    return data


class _Watchdog:
    """Shuts the response's socket down at the deadline, so a server trickling bytes (each read well
    inside the read timeout) cannot stretch the call: the blocked read returns at once."""

    def __init__(self, response: httpx.Response, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._done = False
        stream = response.extensions.get("network_stream")
        self._sock: socket.socket | None = stream.get_extra_info("socket") if stream is not None else None
        self._timer: threading.Timer | None = None
        if self._sock is not None:
            self._timer = threading.Timer(seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        # Under the lock, and only while the body is still being read: never a socket that went back to
        # the pool for another request.
        with self._lock:
            if self._done or self._sock is None:
                return
            self.fired = True
            with contextlib.suppress(OSError):  # already closed by the peer: nothing left to stop
                self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


class AdapterHttpClient:
    """A sync HTTP client bound to one company's API: one base URL, one secret, one host allow-list
    (entries `host`, `host:port`, `[v6]:port`: apps/tools/hosts.py).

    Celery tasks are sync, so this is too. It keeps a connection pool: make one per adapter and close it
    (or use it as a context manager).

    Time budget: connecting, sending and waiting for the answer's headers are each bounded by
    `timeout_seconds` (httpx's per-phase timeouts); the body is cut off `timeout_seconds` after the call
    started, however it trickles. A server that accepts and stalls therefore costs `timeout_seconds` plus
    the time to connect, which to a reachable host is milliseconds.
    """

    def __init__(
        self, *, base_url: str, auth_secret: str, timeout_seconds: float, allowed_hosts: Collection[str]
    ) -> None:
        if isinstance(allowed_hosts, str):
            # A bare string is a collection of its characters: "api.example.com" would allow "a", "p"...
            raise TypeError("allowed_hosts must be a collection of allow-list entries, not a string")
        if not (math.isfinite(timeout_seconds) and timeout_seconds > 0):
            raise ValueError("timeout_seconds must be a positive number")
        if auth_secret and not _HEADER_VALUE.fullmatch(auth_secret):
            raise ValueError("auth_secret is not a valid HTTP header value")
        self._allowed_hosts = allowed_hosts_parse(allowed_hosts)
        self._base = _check_base_url(base_url, self._allowed_hosts)
        self._base_path = self._base.path.rstrip("/")
        self.timeout_seconds = timeout_seconds
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
        }
        if auth_secret:
            headers["Authorization"] = f"Bearer {auth_secret}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(
                connect=timeout_seconds, read=timeout_seconds, write=timeout_seconds, pool=timeout_seconds
            ),
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdapterHttpClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def get(self, segments: Sequence[str]) -> object:
        return self.request("GET", segments)

    def post(self, segments: Sequence[str], body: Mapping[str, Any], *, idempotency_key: str) -> object:
        return self.request("POST", segments, json_body=body, idempotency_key=idempotency_key)

    def request(
        self,
        method: str,
        segments: Sequence[str],
        *,
        json_body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> object:
        """Calls `{base}/{segment}/{segment}...` and returns the decoded JSON of a 2xx answer.

        Every segment is quoted whole, so data ("../../admin", "a?b") stays inside its own segment.
        """
        url = self._url(segments)
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            if not _HEADER_VALUE.fullmatch(idempotency_key) or len(idempotency_key) > 255:
                raise ValueError("idempotency_key is not a valid header value")
            headers["Idempotency-Key"] = idempotency_key
        started = time.monotonic()
        try:
            body = self._exchange(method, url, headers, json_body, started + self.timeout_seconds)
            data = _decode(body)
        except AdapterError as exc:
            # Host, method, code and duration only: the path names a customer, the body may hold anything.
            # A plain "no" (unknown order, same plan) is the business system working, not an incident.
            logger.log(
                logging.WARNING if exc.transient or exc.code in _INCIDENT_CODES else logging.INFO,
                "tool adapter call failed: %s %s -> %s (%.2fs)",
                method,
                self._base.host,
                exc.code,
                time.monotonic() - started,
            )
            raise
        return data

    def _url(self, segments: Sequence[str]) -> httpx.URL:
        if isinstance(segments, str):
            raise TypeError("segments must be a sequence of path segments, not a string")
        for segment in segments:
            # Quoting leaves "." and ".." as they are, and URL normalisation would then climb out of the
            # path; an empty segment would collapse into the next. None of them can name a resource.
            if segment in ("", ".", ".."):
                raise AdapterError("not_found", "no such record")
        path = "/".join([self._base_path, *(quote(segment, safe="") for segment in segments)])
        url = self._base.copy_with(path=path)
        _check_url(url, self._allowed_hosts)
        return url

    def _exchange(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        json_body: Mapping[str, Any] | None,
        deadline: float,
    ) -> bytes:
        """Sends the request and returns the body of a 2xx answer; raises for anything else."""
        request = self._http.build_request(method, url, headers=headers, json=json_body)
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from None
        try:
            status = response.status_code
            if 200 <= status < 300:
                return self._read_body(response, deadline)
            if status in (409, 422):
                raise _refusal(status, self._read_body(response, deadline))
            raise _status_error(status)
        finally:
            response.close()

    def _read_body(self, response: httpx.Response, deadline: float) -> bytes:
        length = response.headers.get("Content-Length")
        if length is not None and (not length.strip().isdigit() or int(length) > MAX_BODY_BYTES):
            raise AdapterError("bad_response", "the business system's answer is too large")
        if response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
            # We asked for identity: decompressing would let a small body grow past the bound in memory.
            raise AdapterError("bad_response", "the business system's answer is compressed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientAdapterError("timeout", "the business system did not answer in time")
        watchdog = _Watchdog(response, remaining)
        chunks: list[bytes] = []
        size = 0
        try:
            # Raw bytes are the body: the encoding is identity (chunked framing is already removed).
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise AdapterError("bad_response", "the business system's answer is too large")
                if time.monotonic() >= deadline:
                    raise TransientAdapterError("timeout", "the business system did not answer in time")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            if watchdog.fired or time.monotonic() >= deadline:
                raise TransientAdapterError("timeout", "the business system did not answer in time") from None
            raise _transport_error(exc) from None
        finally:
            watchdog.cancel()
        return b"".join(chunks)


def _transport_error(exc: httpx.HTTPError) -> AdapterError:
    # The exception type names the phase (ConnectTimeout, ReadError...); its text and request are dropped.
    if isinstance(exc, httpx.TimeoutException):
        return TransientAdapterError(
            "timeout", f"the business system did not answer in time ({type(exc).__name__})"
        )
    if isinstance(exc, httpx.TransportError):
        return TransientAdapterError(
            "unavailable", f"the business system is not reachable ({type(exc).__name__})"
        )
    return AdapterError("bad_response", f"the business system's answer is unreadable ({type(exc).__name__})")


def _status_error(status: int) -> AdapterError:
    if status == 404:
        return AdapterError("not_found", "no such record")
    if status == 429:
        return TransientAdapterError("rate_limited", "the business system asks us to slow down (HTTP 429)")
    if 500 <= status < 600:
        return TransientAdapterError("unavailable", f"the business system failed (HTTP {status})")
    if 400 <= status < 500:
        return AdapterError("rejected", f"the business system refused the request (HTTP {status})")
    # 3xx lands here: a redirect is never followed, wherever it points.
    return AdapterError("bad_response", f"unexpected answer from the business system (HTTP {status})")


def _refusal(status: int, body: bytes) -> AdapterError:
    """A 409/422: the business system's own reason, if it gave one in the contract's shape."""
    data = _load_json(body)
    if isinstance(data, dict):
        code = data.get("code")
        if isinstance(code, str) and _ERROR_CODE.fullmatch(code):
            return AdapterError(code, _message_from(data.get("message")))
    return AdapterError("rejected", f"the business system refused the request (HTTP {status})")


def _parse(model: type[ModelT], data: object) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError:
        # The validation error quotes the offending values: it stays out of the message and the chain.
        raise AdapterError(
            "bad_response", f"the business system's answer is not a valid {model.__name__}"
        ) from None


class HttpAdapter:
    """BusinessAdapter over the HTTP contract in this module's docstring."""

    def __init__(self, *, breaker_key: str, client: AdapterHttpClient) -> None:
        self.breaker_key = breaker_key
        self._client = client

    def order_lookup(self, *, customer: str, order_number: str) -> OrderInfo:
        return _parse(OrderInfo, self._client.get(("customers", customer, "orders", order_number)))

    def bill_latest(self, *, customer: str) -> BillInfo:
        return _parse(BillInfo, self._client.get(("customers", customer, "bills", "latest")))

    def plans_compare(self, *, customer: str) -> PlansComparison:
        return _parse(PlansComparison, self._client.get(("customers", customer, "plans")))

    def plan_change(self, *, customer: str, plan_code: str, idempotency_key: str) -> PlanChangeResult:
        data = self._client.post(
            ("customers", customer, "plan-changes"), {"plan_code": plan_code}, idempotency_key=idempotency_key
        )
        return _parse(PlanChangeResult, data)

    def ticket_create(
        self, *, customer: str, subject: str, description: str, idempotency_key: str
    ) -> TicketResult:
        data = self._client.post(
            ("customers", customer, "tickets"),
            {"subject": subject, "description": description},
            idempotency_key=idempotency_key,
        )
        return _parse(TicketResult, data)
