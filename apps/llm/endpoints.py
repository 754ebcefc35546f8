"""Registering the model servers a company's conversations may be answered by (design: docs/architecture/
releases.md, "Model endpoints").

An endpoint is probed before anything is stored, and refused with one sentence naming the reason when it
cannot serve a conversation:

    GET  {base}/models                 unreachable (refused, DNS, timeout) · key rejected (401/403) ·
                                       not an OpenAI model list · the model is not listed
    POST {base}/chat/completions       key rejected · not OpenAI JSON/SSE · does not stream (a JSON reply,
         stream=true, 8 tokens         or no chunk at all, where server-sent events were asked for)

What the probe saw is kept on the row (`check_report`: the models listed, the first token's milliseconds,
the chunks streamed), the key sealed at rest (apps.core.sealing). The probe never follows a redirect, ignores
proxy settings from the environment, reads at most MAX_BODY_BYTES, and never quotes what the server answered:
a sentence names status codes and formats, never a body. A company's endpoint may not point at link-local,
multicast or reserved addresses (a cloud's metadata service); the operator's may point anywhere.

Writes are audited actions (apps/llm/endpoint_actions.py): `model_endpoint.register/update/delete`, never
with the key. The network call happens before the action's transaction opens, so no transaction waits on a
slow server.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

from apps.accounts.models import Tenant, User
from apps.core.errors import BadRequest
from apps.core.sealing import unseal
from apps.llm.endpoint_actions import EndpointDelete, EndpointRegister, EndpointUpdate
from apps.llm.models import ModelEndpoint

STYLES = ("auto", "quote", "compose")
NAME_MAX = 100
BASE_URL_MAX = 500
MODEL_MAX = 200
KEY_MAX = 1000
MAX_BODY_BYTES = 1024 * 1024
MODELS_KEPT = 50  # of the models a server lists, the ones kept in check_report and named in a refusal
DEFAULT_PROBE_TIMEOUT_SECONDS = 15.0
_CONNECT_TIMEOUT_SECONDS = 5.0
# Visible ASCII only: a CR/LF in a header value would split the request.
_KEY_RE = re.compile(r"[\x21-\x7e]*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ProbeReport:
    models: list[str]  # what GET /models listed (the first MODELS_KEPT)
    first_token_ms: float | None  # request sent -> first content chunk of the test chat
    chunks: int  # server-sent events of the test chat, [DONE] excluded

    def as_json(self) -> dict[str, Any]:
        return {"models": self.models, "first_token_ms": self.first_token_ms, "chunks": self.chunks}


@dataclass(frozen=True)
class EndpointFields:
    """A registration's fields, cleaned: what the probe calls and the row stores."""

    name: str
    base_url: str
    model: str
    api_key: str
    style: str


def endpoint_fields_clean(
    *, name: str, base_url: str, model: str, api_key: str, style: str
) -> EndpointFields:
    """The fields as they will be stored, or BadRequest with the one sentence of the first problem."""
    name, model, base_url = name.strip(), model.strip(), base_url.strip().rstrip("/")
    if not name or len(name) > NAME_MAX or _CONTROL_RE.search(name):
        raise BadRequest(f"Give the endpoint a name of 1 to {NAME_MAX} characters.")
    if not model or len(model) > MODEL_MAX or _CONTROL_RE.search(model):
        raise BadRequest(f"Give the model's name as the server lists it, 1 to {MODEL_MAX} characters.")
    if style not in STYLES:
        raise BadRequest("The answer style must be auto, quote or compose.")
    if len(api_key) > KEY_MAX or not _KEY_RE.fullmatch(api_key):
        raise BadRequest(f"An API key is up to {KEY_MAX} visible ASCII characters, without spaces.")
    _base_url_check(base_url)
    return EndpointFields(name=name, base_url=base_url, model=model, api_key=api_key, style=style)


def _base_url_check(base_url: str) -> httpx.URL:
    url: httpx.URL | None
    try:
        url = httpx.URL(base_url) if len(base_url) <= BASE_URL_MAX else None
    except (httpx.InvalidURL, TypeError):
        url = None  # raised outside the handler: httpx's message would quote the URL
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise BadRequest("The base URL must be an http or https address, such as https://models.example/v1.")
    # Credentials in the URL would be sent next to the key; a query or fragment would end up before the paths.
    if url.userinfo or url.query or url.fragment:
        raise BadRequest("The base URL must not carry a user name, a password, a query or a fragment.")
    return url


def _company_host_check(base_url: str, url: httpx.URL) -> None:
    """A company may not make the desk call link-local (a cloud's metadata service), multicast or reserved
    addresses. Loopback and private networks stay allowed: that is where model servers usually run."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise BadRequest(f"Could not reach {base_url}: its host name does not resolve.") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
            raise BadRequest(
                f"{url.host} is a link-local, multicast or reserved address, which a company's endpoint may "
                "not use."
            )


def _timeout() -> float:
    return float(getattr(settings, "MODEL_ENDPOINT_PROBE_TIMEOUT_SECONDS", DEFAULT_PROBE_TIMEOUT_SECONDS))


def _unreachable(base_url: str, exc: httpx.TransportError) -> BadRequest:
    if isinstance(exc, httpx.TimeoutException):
        return BadRequest(f"Could not reach {base_url}: it did not answer within {_timeout():g} seconds.")
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, socket.gaierror):
        return BadRequest(f"Could not reach {base_url}: its host name does not resolve.")
    if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
        return BadRequest(f"Could not reach {base_url}: the connection was refused.")
    return BadRequest(f"Could not reach {base_url}: the connection failed.")


def _status_refusal(base_url: str, response: httpx.Response, what: str) -> BadRequest | None:
    status = response.status_code
    if status in (401, 403):
        return BadRequest(f"{base_url} rejected the API key (HTTP {status}).")
    if 300 <= status < 400:
        return BadRequest(f"{base_url} redirects {what} elsewhere; give the base URL it redirects to.")
    if status >= 500 or status == 429:
        return BadRequest(f"{base_url} answered HTTP {status} to {what}; try again once it is ready.")
    return None


def _read_body(response: httpx.Response) -> bytes:
    data = bytearray()
    for part in response.iter_bytes():
        data += part
        if len(data) > MAX_BODY_BYTES:
            break
    return bytes(data)


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _probe_models(client: httpx.Client, fields: EndpointFields) -> list[str]:
    base = fields.base_url
    with client.stream("GET", f"{base}/models") as response:
        refusal = _status_refusal(base, response, "GET /models")
        if refusal is not None:
            raise refusal
        body = _json_or_none(_read_body(response)) if response.status_code == 200 else None
    if response.status_code != 200:
        raise BadRequest(
            f"{base}/models answered HTTP {response.status_code} instead of a list of models, so this is not "
            "an OpenAI-compatible base URL (it usually ends in /v1)."
        )
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not all(
        isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
    ):
        raise BadRequest(
            f"{base}/models does not answer in the OpenAI format (a JSON list of models), so this is not an "
            "OpenAI-compatible base URL."
        )
    models = [str(m["id"]) for m in data]
    if fields.model not in models:
        listed = ", ".join(models[:10]) + (", …" if len(models) > 10 else "") if models else "nothing"
        raise BadRequest(f'{base} does not serve the model "{fields.model}" (it serves: {listed}).')
    return models[:MODELS_KEPT]


def _is_chunk(event: Any) -> bool:
    return isinstance(event, dict) and isinstance(event.get("choices"), list)


def _probe_stream(client: httpx.Client, fields: EndpointFields) -> tuple[float | None, int]:
    """(first content ms, chunks) of a short streamed chat, or the refusal."""
    base = fields.base_url
    body = {
        "model": fields.model,
        "messages": [{"role": "user", "content": "Reply with the word ready."}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
    }
    other_format = BadRequest(
        f"{base} answered a test chat in another format than OpenAI's chat completions."
    )
    started = time.monotonic()
    deadline = started + 2 * _timeout()
    with client.stream("POST", f"{base}/chat/completions", json=body) as response:
        refusal = _status_refusal(base, response, "a test chat")
        if refusal is not None:
            raise refusal
        if response.status_code != 200:
            raise BadRequest(
                f'{base} refused a test chat with the model "{fields.model}" (HTTP {response.status_code}).'
            )
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "text/event-stream":
            reply = _json_or_none(_read_body(response))
            if isinstance(reply, dict) and isinstance(reply.get("choices"), list):
                raise BadRequest(
                    f"{base} does not stream: it answered a streamed test chat with one JSON reply instead "
                    "of server-sent events."
                )
            raise other_format
        chunks, first, read = 0, None, 0
        for line in response.iter_lines():
            read += len(line) + 1
            if read > MAX_BODY_BYTES or time.monotonic() > deadline:
                break
            if not line.startswith("data:"):
                continue  # comments, event names and blank separators
            payload = line[len("data:") :].strip()
            if payload == "[DONE]":
                break
            event = _json_or_none(payload.encode())
            if not _is_chunk(event):
                raise other_format
            chunks += 1
            if first is None and any(
                (c.get("delta") or {}).get("content") for c in event["choices"] if isinstance(c, dict)
            ):
                first = (time.monotonic() - started) * 1000
    if chunks == 0:
        raise BadRequest(f"{base} does not stream: the test chat ended without a single chunk.")
    return (round(first, 1) if first is not None else None), chunks


def endpoint_probe(fields: EndpointFields, *, company: bool) -> ProbeReport:
    """Asks the server what it serves and for a short streamed reply; BadRequest (one sentence) if it
    cannot answer a conversation. `company`: registered by a company, whose host is checked too."""
    url = _base_url_check(fields.base_url)
    if company:
        _company_host_check(fields.base_url, url)
    headers = {"Accept": "application/json, text/event-stream"}
    if fields.api_key:
        headers["Authorization"] = f"Bearer {fields.api_key}"
    timeout = httpx.Timeout(_timeout(), connect=min(_CONNECT_TIMEOUT_SECONDS, _timeout()))
    try:
        with httpx.Client(
            headers=headers, timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            models = _probe_models(client, fields)
            first_token_ms, chunks = _probe_stream(client, fields)
    except httpx.TransportError as exc:
        raise _unreachable(fields.base_url, exc) from None
    return ProbeReport(models=models, first_token_ms=first_token_ms, chunks=chunks)


def endpoint_register(
    *,
    tenant: Tenant | None,
    name: str,
    base_url: str,
    model: str,
    api_key: str,
    style: str,
    actor: User | None,
) -> ModelEndpoint:
    """Probes the endpoint, then stores it with its key sealed. `tenant` None: the operator's endpoint,
    offered to every company. Refusals are BadRequest with one sentence; nothing is stored then."""
    fields = endpoint_fields_clean(name=name, base_url=base_url, model=model, api_key=api_key, style=style)
    action = EndpointRegister(tenant=tenant, actor=actor, fields=fields)
    action.check()  # before any call: a stranger learns nothing about the server
    action.duplicate_check()
    report = endpoint_probe(fields, company=tenant is not None)
    action.params["report"] = report.as_json()
    return action.execute()


def endpoint_update(
    *,
    endpoint: ModelEndpoint,
    actor: User | None,
    name: str | None = None,
    style: str | None = None,
    api_key: str | None = None,
) -> ModelEndpoint:
    """Renames it, changes its answer style, or gives it a new key (probed again first). A different base
    URL or model is a different endpoint: register that one."""
    fields = endpoint_fields_clean(
        name=endpoint.name if name is None else name,
        base_url=endpoint.base_url,
        model=endpoint.model,
        api_key=endpoint_api_key(endpoint) if api_key is None else api_key,
        style=endpoint.style if style is None else style,
    )
    action = EndpointUpdate(tenant=endpoint.tenant, actor=actor, endpoint=endpoint, fields=fields)
    action.check()
    if api_key is not None:
        action.params["report"] = endpoint_probe(fields, company=endpoint.tenant_id is not None).as_json()
    return action.execute()


def endpoint_delete(*, tenant: Tenant | None, endpoint: ModelEndpoint, actor: User | None) -> None:
    """Removes it, unless a canary or a company's current model still refers to it (BadRequest). `tenant`
    is the company acting (None: the operator); a company removes only its own endpoints."""
    EndpointDelete(tenant=tenant, actor=actor, endpoint=endpoint).execute()


def endpoint_api_key(endpoint: ModelEndpoint) -> str:
    """The key itself, for the calls to the endpoint; never shown, logged or returned by an API."""
    return unseal(endpoint.api_key_sealed)
