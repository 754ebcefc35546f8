"""Helpers of the handoff API, console socket and isolation tests: conversations made the way customers
make them (a widget session and a stored message), put in the queue through the ownership state machine,
snapshots of everything a refused action must leave untouched, and console and widget sockets driven
through the real ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import tenant_origins
from apps.conversations import services as conversation_services
from apps.conversations.models import Conversation, ConversationEvent, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger, conversation_handoff
from apps.core.redis import state_redis
from apps.handoff import services
from apps.handoff.availability import agent_loads
from apps.handoff.models import Handoff, Note, Presence, Ticket
from tests.conversations.conftest import Widget, asession_for, widget_connect

_ids = itertools.count(1)

SAME_SITE_ORIGIN = b"http://127.0.0.1:8000"


@dataclass(frozen=True)
class Chat:
    """A customer's conversation and the widget session that owns it."""

    conversation: Conversation
    session: conversation_services.WidgetSession

    @property
    def id(self) -> Any:
        return self.conversation.id


def chat(tenant: Tenant, text: str = "My invoice for March looks wrong.") -> Chat:
    """A conversation with one customer message, stored through the widget's own service."""
    session = conversation_services.widget_session_open(tenant=tenant, token=None, claim=None)
    conversation_services.message_receive(
        tenant=tenant, claims=session.claims, client_msg_id=f"c-{next(_ids)}", text=text
    )
    return Chat(conversation=Conversation.objects.get(id=session.claims.conversation_id), session=session)


def queue(
    conversation: Conversation | Chat,
    *,
    reason: str = HandoffReason.CUSTOMER_REQUEST,
    priority: int = 0,
    detail: str = "",
) -> Handoff:
    """Sends the conversation to the queue the way a handoff trigger does; returns its open handoff."""
    conv = conversation.conversation if isinstance(conversation, Chat) else conversation
    conversation_handoff(
        conversation_id=conv.id,
        tenant_id=conv.tenant_id,
        trigger=HandoffTrigger(reason=reason, priority=priority, detail=detail),
    )
    return Handoff.objects.get(conversation_id=conv.id, status__in=Handoff.OPEN)


def queued(tenant: Tenant, text: str = "My invoice for March looks wrong.", **kwargs: Any) -> Handoff:
    return queue(chat(tenant, text), **kwargs)


def claimed(tenant: Tenant, agent: User, text: str = "My invoice for March looks wrong.") -> Handoff:
    handoff = queued(tenant, text)
    return services.handoff_claim(tenant=tenant, handoff_id=handoff.id, agent=agent)


def ticket_for(desk: Desk, email: str = "mary@example.com") -> Ticket:
    """A queued conversation whose customer left an email, and its ticket (#1001 in a new company)."""
    conversation = chat(desk.tenant)
    queue(conversation)
    conversation_services.contact_email_leave(
        tenant=desk.tenant, claims=conversation.session.claims, email=email
    )
    return Ticket.objects.get(conversation_id=conversation.id)


def conversation_state(conversation_id: Any) -> dict[str, Any]:
    """Everything about a conversation a refused action must not change, read fresh from the database."""
    conv = Conversation.objects.get(id=conversation_id)
    return {
        "conversation": (conv.status, conv.agent_id, conv.last_seq, conv.episode, conv.updated_at),
        "handoffs": list(
            Handoff.objects.filter(conversation_id=conversation_id)
            .order_by("created_at")
            .values_list(
                "id", "status", "agent_id", "team_id", "priority", "claimed_at", "closed_at", "updated_at"
            )
        ),
        "messages": list(
            Message.objects.filter(conversation_id=conversation_id)
            .order_by("created_at")
            .values_list("id", "role", "author_id", "text", "status")
        ),
        "events": list(
            ConversationEvent.objects.filter(conversation_id=conversation_id)
            .order_by("seq")
            .values_list("seq", "type")
        ),
        "notes": list(Note.objects.filter(conversation_id=conversation_id).values_list("id", "text")),
    }


def presence_row(tenant: Tenant, user: User) -> tuple[str, int, int | None] | None:
    row = Presence.objects.filter(tenant=tenant, user=user).first()
    return (row.status, row.sockets, row.capacity) if row else None


def session_headers(user: User | None, origin: bytes | None = SAME_SITE_ORIGIN) -> list[tuple[bytes, bytes]]:
    """Headers of a console socket opened from our own page by `user` (None: signed out)."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        client = Client()
        client.force_login(user)
        session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_id}".encode()))
    return headers


def base(tenant: Tenant) -> str:
    return f"/api/v1/tenants/{tenant.slug}"


@dataclass(frozen=True)
class Desk:
    """Tenant A's support desk: its admin, two agents with first names (what customers see of them), its
    editor, and a member who is both agent and pii_viewer."""

    tenant: Tenant
    admin: User
    agent: User  # agent_a, without a first name
    alice: User
    bob: User
    editor: User
    viewer: User

    @property
    def slug(self) -> str:
        return self.tenant.slug


def desk_of(tenant_a: Any, make_user: Any) -> Desk:
    """Tenant A's desk (test modules wrap it in a `desk_a` fixture)."""
    tenant = tenant_a.tenant
    return Desk(
        tenant=tenant,
        admin=tenant_a.admin,
        agent=tenant_a.agent,
        alice=make_user(tenant, roles=[Role.AGENT], username="alice_a", first_name="Alice"),
        bob=make_user(tenant, roles=[Role.AGENT], username="bob_a", first_name="Bob"),
        editor=tenant_a.editor,
        viewer=make_user(tenant, roles=[Role.AGENT, Role.PII_VIEWER], username="vera_a", first_name="Vera"),
    )


# ---- sockets -----------------------------------------------------------------------------------------

TIMEOUT = 10
QUIET = 0.5
# How long a closed socket gets to exit before the communicator cancels it. An accepted console exits at
# once; a refused one can stay in its pending channel-layer read until cancelled (as in the staff socket
# tests), and the event loop's shutdown at the end of the test finishes it.
CLOSE_TIMEOUT = 10
REFUSED_CLOSE_TIMEOUT = 1
# Every socket a test opened, closed by `open_sockets_close` if the test did not get to close it.
OPEN_SOCKETS: list[WebsocketCommunicator] = []
WIDGET_ORIGIN = "https://a.example"


async def open_sockets_close() -> None:
    """Closes, in the test's own event loop, every socket a failed test left open: a consumer left behind
    in a finished loop would keep receiving from the process-wide channel layer."""
    while OPEN_SOCKETS:
        ws = OPEN_SOCKETS.pop()
        with contextlib.suppress(BaseException):
            await ws.disconnect(timeout=REFUSED_CLOSE_TIMEOUT)


def realtime_state_clear() -> None:
    """Rate-limit windows and turn markers live in Redis across tests: start clean."""
    client = state_redis()
    keys = list(client.scan_iter(match="hd:*", count=1000))
    if keys:
        client.delete(*keys)


# ---- console and widget sockets ----------------------------------------------------------------------


class Console:
    """One agent's console socket: frames in, frames out, everything received kept in order."""

    def __init__(self, ws: WebsocketCommunicator, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.received: list[dict[str, Any]] = []

    async def send(self, frame: Any) -> None:
        await self.ws.send_to(text_data=json.dumps(frame))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        frame = json.loads(await self.ws.receive_from(timeout=timeout))
        self.received.append(frame)
        return frame

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame; got {self.received}")
            frame = await self.recv(timeout=remaining)
            if predicate(frame):
                return frame

    async def quiet(self, timeout: float = QUIET) -> bool:
        return await self.ws.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.ws.disconnect(timeout=CLOSE_TIMEOUT)


def of_type(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items())


async def communicator(user: User | None, slug: str, origin: bytes | None = b"http://127.0.0.1:8000") -> Any:
    from helpdesk.asgi import application

    headers = await sync_to_async(session_headers)(user, origin)
    ws = WebsocketCommunicator(application, f"/ws/console/{slug}/", headers=headers)
    OPEN_SOCKETS.append(ws)
    return ws


async def open_console(user: User, slug: str) -> Console:
    """A connected console, past its hello and the presence push its own connection caused."""
    ws = await communicator(user, slug)
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert connected is True
    console = Console(ws, json.loads(await ws.receive_from(timeout=TIMEOUT)))
    assert console.hello["type"] == "hello"
    await console.until(of_type("presence.changed", user_id=user.id))
    return console


async def refused(user: User | None, slug: str) -> int:
    """The console accepts, then closes at once with a code a browser can read, sending nothing else."""
    ws = await communicator(user, slug)
    connected, _ = await ws.connect(timeout=TIMEOUT)
    assert connected is True
    closing = await ws.receive_output(timeout=TIMEOUT)
    await ws.disconnect(timeout=REFUSED_CLOSE_TIMEOUT)
    assert set(closing) == {"type", "code"}
    assert closing["type"] == "websocket.close"
    return closing["code"]


async def customer(tenant: Tenant) -> tuple[Widget, uuid.UUID]:
    """A customer's widget socket (after its welcome) on one of the company's sites, and the id of its
    conversation-to-be."""
    session = await asession_for(tenant)
    origin = sorted(await database_sync_to_async(tenant_origins)(tenant=tenant))[0]
    widget, _ = await widget_connect(tenant, origin=origin, token=session.token)
    OPEN_SOCKETS.append(widget.ws)
    return widget, session.claims.conversation_id


async def ask_for_a_person(widget: Widget) -> int:
    """The customer's handoff button; returns once the widget has been told what happens next."""
    await widget.send({"type": "handoff.request", "client_msg_id": "h-1"})
    ack = await widget.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == "h-1")
    await widget.until(lambda f: f["type"] == "handoff.status")
    return ack["seq"]


@database_sync_to_async
def claim(tenant: Tenant, conversation_id: uuid.UUID, agent: User) -> Handoff:
    handoff = Handoff.objects.get(conversation_id=conversation_id, status__in=Handoff.OPEN)
    return services.handoff_claim(tenant=tenant, handoff_id=handoff.id, agent=agent)


@database_sync_to_async
def last_seq(conversation_id: uuid.UUID) -> int:
    return Conversation.objects.get(id=conversation_id).last_seq


@database_sync_to_async
def load_of(tenant: Tenant, user: User) -> tuple[str, int]:
    load = next(x for x in agent_loads(tenant=tenant) if x.user_id == user.id)
    return load.status, load.holding


async def eventually(check: Callable[[], Any], expected: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await database_sync_to_async(check)()
        if value == expected or asyncio.get_running_loop().time() > deadline:
            assert value == expected
            return
        await asyncio.sleep(0.05)
