"""Conversation fixtures: a company with published policies, a scriptable LLM, and widget sockets driven
through the real ASGI application."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from apps.accounts.models import Tenant
from apps.conversations import services
from apps.knowledge import ingestion
from apps.knowledge import services as kb
from apps.llm.breaker import reset_breakers
from tests.fakes.openai_server import FakeOpenAI

ORIGIN = "https://shop.example"

ROAMING_POLICY = b"""# Roaming

## Roaming in the European Union

Customers on every Nimbus plan can use their minutes, texts and data in all European Union countries at no
extra charge. Roaming must be switched on in the Nimbus app before travelling. Fair use allows 30 GB of
EU data per month; above that each extra gigabyte costs 2 euros.

## Roaming outside the European Union

Outside the EU, the World Traveller pass costs 8 euros per day and includes 1 GB of data and 60 minutes.
"""

REFUND_POLICY = b"""# Refunds

## Refund window

Devices bought from Nimbus can be returned within 14 days of delivery for a full refund, if they are
undamaged and in their original packaging. Refunds reach the original payment method within 5 business days.
"""

# Model sentences for the `compose` style. The SUPPORTED ones pass apps.guardrails.support against the
# policies above (for the roaming or the refund question they paraphrase), so a scripted model's answer is
# really streamed, shown and stored; each of the others is refused for what its name says.
SUPPORTED_EU = "Roaming in the European Union is at no extra charge."
SUPPORTED_SWITCH_ON = "You must switch roaming on in the Nimbus app before travelling."
SUPPORTED_FAIR_USE = "Fair use allows 30 GB of EU data per month."
SUPPORTED_REFUND = "Devices can be returned within 14 days of delivery for a full refund."
WRONG_NUMBER = "Fair use allows 50 GB of EU data per month."
FALSE_NEGATION = "Customers cannot use their data in European Union countries."
INVENTED_NAME = "You can ask Sarah from the Roaming Desk to switch it on."
WRONG_PRICE = "Each extra gigabyte costs 5 euros."

COMPOSE_PROMPT_START = "You are the customer support assistant of"


@pytest.fixture
def fake_llm(settings: Any) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["fake-model"]) as fake:
        settings.LLM_BASE_URL = fake.base_url
        settings.LLM_MODEL = "fake-model"
        settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
        settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 2.0
        settings.LLM_STREAM_IDLE_TIMEOUT_SECONDS = 1.0
        fake.hang_seconds = 5.0
        reset_breakers()
        yield fake
        reset_breakers()


def publish(tenant: Tenant, data: bytes, filename: str) -> None:
    version = kb.document_upload(tenant=tenant, actor=None, upload=kb.Upload(filename=filename, data=data))
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    assert ready.status == "ready", ready.error_message
    kb.version_publish(version=ready, actor=None)


def answers_configure(tenant: Tenant, *, style: str) -> Tenant:
    """Sets the company's answer style (quote, compose or auto) the way its settings page does."""
    from apps.accounts.services import tenant_answers_configure

    return tenant_answers_configure(tenant=tenant, answer_style=style)


async def aanswers_configure(tenant: Tenant, *, style: str) -> Tenant:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(answers_configure)(tenant, style=style)


def is_compose_request(body: dict[str, Any]) -> bool:
    """A chat request asking the model to compose an answer (not a follow-up rewrite, a tool decision or
    a case file)."""
    messages = body.get("messages") or []
    return bool(messages) and str(messages[0].get("content", "")).startswith(COMPOSE_PROMPT_START)


# Each supported sentence, with the words of the policy sentence that supports it.
_SUPPORT_ANCHORS = [
    ("within 14 days of delivery for a full refund", SUPPORTED_REFUND),
    ("in all European Union countries at no extra charge", SUPPORTED_EU),
    ("Fair use allows 30 GB of EU data per month", SUPPORTED_FAIR_USE),
    ("Roaming must be switched on in the Nimbus app", SUPPORTED_SWITCH_ON),
]


def faithful_for(body: dict[str, Any]) -> str:
    """A sentence the policy sentences in this compose request support, whichever the evidence
    selection chose: for a model scripted to be faithful whatever the question."""
    prompt = str(body["messages"][-1]["content"])
    for anchor, sentence in _SUPPORT_ANCHORS:
        if anchor in prompt:
            return sentence
    raise AssertionError(f"no scripted sentence is supported by this evidence: {prompt!r}")


def compose_requests(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [body for body in fake.chat_requests if is_compose_request(body)]


def model_composes(
    fake: FakeOpenAI, text: str | Callable[[dict[str, Any]], str], *, otherwise: str = ""
) -> None:
    """Scripts the fake model: compose requests get `text` (or `text(body)` if callable), every other
    chat request `otherwise` (an empty answer: a follow-up rewrite is then refused and not used)."""

    def respond(body: dict[str, Any]) -> str:
        if is_compose_request(body):
            return text(body) if callable(text) else text
        return otherwise

    fake.responder = respond


def quote_of(evidence: list[dict[str, Any]], *, lead: str | None = None) -> str:
    """The quoted answer a customer must see for the evidence recorded in a reply's trace
    (AssistantTrace.retrieval["evidence"]), written out here rather than by the code under test: the
    lead-in, then each unit's sentences verbatim in curly quotes with its number. Every sentence must be
    the published policy's own words."""
    assert evidence, "no evidence: the turn was not answered from the policies"
    published = " ".join(b" ".join([ROAMING_POLICY, REFUND_POLICY]).decode().split())
    for row in evidence:
        for sentence in row["sentences"]:
            assert sentence in published, sentence
    if lead is None:
        several = len({row["document_id"] for row in evidence}) > 1
        lead = "Here is what our policies say:" if several else "Here is what our policy says:"
    units = [f"\u201c{' '.join(row['sentences'])}\u201d [{row['n']}]" for row in evidence]
    return "\n\n".join([lead, *units])


@pytest.fixture
def kb_tenant(make_tenant: Any) -> Tenant:
    tenant = make_tenant(name="Nimbus Telecom", origins=[ORIGIN])
    publish(tenant, ROAMING_POLICY, "roaming.md")
    publish(tenant, REFUND_POLICY, "refunds.md")
    return tenant


def session_for(tenant: Tenant, token: str | None = None) -> services.WidgetSession:
    return services.widget_session_open(tenant=tenant, token=token, claim=None)


async def asession_for(tenant: Tenant, token: str | None = None) -> services.WidgetSession:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(session_for)(tenant, token)


@dataclass
class Widget:
    """One browser tab's socket: frames in, frames out, and the transcript a client would show."""

    ws: WebsocketCommunicator
    received: list[dict[str, Any]]

    async def send(self, frame: dict[str, Any]) -> None:
        frame.setdefault("client_msg_id", str(uuid.uuid4()))
        await self.ws.send_to(text_data=json.dumps(frame))

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        frame = json.loads(await self.ws.receive_from(timeout=timeout))
        self.received.append(frame)
        return frame

    async def until(self, predicate: Any, timeout: float = 15) -> dict[str, Any]:
        """Frames until one matches `predicate` (returned); all of them are kept in `received`."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame; got {[f.get('type') for f in self.received]}")
            frame = await self.recv(timeout=remaining)
            if predicate(frame):
                return frame

    async def closed(self, timeout: float = 10) -> int:
        """The close code the server sends next; frames before it are kept in `received`."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            output = await self.ws.receive_output(timeout=max(0.1, deadline - loop.time()))
            if output["type"] == "websocket.close":
                return int(output["code"])
            self.received.append(json.loads(output["text"]))

    async def close(self) -> None:
        await self.ws.disconnect()


async def widget_connect(
    tenant: Tenant, *, origin: str = ORIGIN, token: str | None = None, last_seq: int = 0, hello: bool = True
) -> tuple[Widget, dict[str, Any] | None]:
    from helpdesk.asgi import application

    ws = WebsocketCommunicator(
        application, f"/ws/widget/?key={tenant.widget_key}", headers=[(b"origin", origin.encode())]
    )
    connected, _ = await ws.connect(timeout=10)
    assert connected
    widget = Widget(ws=ws, received=[])
    welcome = None
    if hello:
        assert token is not None
        await widget.send({"type": "hello", "token": token, "last_seq": last_seq})
        welcome = await widget.until(lambda f: f["type"] == "welcome")
    return widget, welcome


def transcript(frames: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """What a client shows from the stored events it received: (role, status, text) per message."""
    shown: dict[str, tuple[str, str, str]] = {}
    for frame in frames:
        message = frame.get("message")
        if "seq" in frame and message:
            shown[message["id"]] = (message["role"], message.get("status", "complete"), message["text"])
        elif frame.get("type") == "assistant.superseded":
            shown.pop(frame["message_id"], None)
    return list(shown.values())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_realtime_state() -> None:
    """Rate-limit windows, turn markers and partial replies live in Redis across tests: start clean."""
    from apps.core.redis import state_redis

    client = state_redis()
    keys = list(client.scan_iter(match="hd:*", count=1000))
    if keys:
        client.delete(*keys)
