"""The staff websocket, driven through the real ASGI application (origin check, session auth, routing), and
which staff pushes it relays to whom: each role only its streams, and nothing once access is gone.

The consumer reaches the database from another thread, so these tests commit their data
(`transaction=True`). The channel layer is the harness's real Valkey; pushes are made by the services that
make them in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from apps.accounts.models import Membership, Role, Tenant, User
from apps.accounts.selectors import STAFF_STREAM_ROLES, staff_streams
from apps.conversations import services as conversation_services
from apps.core import realtime
from apps.core.event_types import PresenceChanged
from apps.core.realtime import MAX_FRAME_BYTES, StaffStream, staff_publish
from apps.guardrails.pii import pii_redact
from apps.handoff import services as handoff_services
from apps.knowledge.models import Document, DocumentVersion
from apps.knowledge.services import knowledge_gap_record, publish_version_event, version_event
from helpdesk.asgi import application
from tests.conftest import TenantStaff
from tests.handoff.api_fixtures import Chat, chat, queue

pytestmark = pytest.mark.django_db(transaction=True)

SAME_SITE = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
TIMEOUT = 5
# How long a consumer gets to exit after the disconnect before the communicator cancels it. Short on
# purpose: with the channel layer's current Redis settings an exiting consumer can hang in its pending
# channel-layer read for up to 5 s and then fail (see test_idle_socket_outlives_the_channel_layer_poll).
DISCONNECT_TIMEOUT = 1


def _headers(user: User | None, origin: bytes | None = b"http://127.0.0.1:8000") -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        client = Client()
        client.force_login(user)
        session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_id}".encode()))
    return headers


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


async def _refused_by_consumer(path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """The consumer accepts and at once closes with a code, so a browser can read 4401/4403; it sends
    nothing before the close."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected is True
    closing = await communicator.receive_output(timeout=TIMEOUT)
    # A real server delivers the disconnect after a close; without it the consumer would wait forever.
    await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)
    assert closing["type"] == "websocket.close"
    assert set(closing) == {"type", "code"}
    return closing["code"]


async def _refused_before_accept(path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Refused during the handshake (before any application code): the client never gets a socket."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=TIMEOUT)
    await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)
    assert connected is False
    return code


async def _open(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected is True
    hello = await communicator.receive_json_from(timeout=TIMEOUT)
    return communicator, hello


async def _ping(communicator: WebsocketCommunicator, client_msg_id: str) -> None:
    await communicator.send_json_to({"type": "ping", "client_msg_id": client_msg_id})
    assert await communicator.receive_json_from(timeout=TIMEOUT) == {
        "type": "pong",
        "client_msg_id": client_msg_id,
    }


# --- who may connect -----------------------------------------------------------------------------------


def test_anonymous_is_closed_with_4401(tenant_a) -> None:
    async def scenario() -> None:
        assert await _refused_by_consumer("/ws/staff/tenant-a/", _headers(None)) == 4401

    _run(scenario)


def test_invalid_session_cookie_is_anonymous(tenant_a) -> None:
    async def scenario() -> None:
        headers = [*SAME_SITE, (b"cookie", f"{settings.SESSION_COOKIE_NAME}=not-a-session".encode())]
        assert await _refused_by_consumer("/ws/staff/tenant-a/", headers) == 4401

    _run(scenario)


@pytest.mark.parametrize("role", ["admin", "agent", "editor"])
def test_member_of_a_is_closed_with_4403_on_tenant_b(role, tenant_a, tenant_b) -> None:
    headers = _headers(getattr(tenant_a, role))

    async def scenario() -> None:
        assert await _refused_by_consumer("/ws/staff/tenant-b/", headers) == 4403

    _run(scenario)


def test_unknown_tenant_is_closed_like_a_foreign_one(tenant_a) -> None:
    headers = _headers(tenant_a.agent)

    async def scenario() -> None:
        assert await _refused_by_consumer("/ws/staff/no-such-tenant/", headers) == 4403

    _run(scenario)


@pytest.mark.parametrize(
    "origin",
    [b"http://evil.example", b"https://127.0.0.1.evil.example", b"null", None],
    ids=["cross-site", "lookalike", "null", "missing"],
)
def test_cross_site_origin_is_refused_even_with_a_valid_session(origin, tenant_a) -> None:
    headers = _headers(tenant_a.admin, origin=origin)

    async def scenario() -> None:
        # The origin validator refuses before the consumer runs: a plain close, no application code.
        assert await _refused_before_accept("/ws/staff/tenant-a/", headers) == 1000

    _run(scenario)


@pytest.mark.parametrize(
    ("role", "streams"),
    [("admin", ["agent", "knowledge"]), ("agent", ["agent"]), ("editor", ["knowledge"])],
)
def test_member_connects_and_gets_hello_naming_the_streams_it_joined(role, streams, tenant_a) -> None:
    headers = _headers(getattr(tenant_a, role))

    async def scenario() -> None:
        communicator, hello = await _open("/ws/staff/tenant-a/", headers)
        assert hello == {"type": "hello", "tenant": "tenant-a", "roles": [role], "streams": streams}
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


# --- frames --------------------------------------------------------------------------------------------


def test_ping_gets_pong_with_the_same_id(tenant_a) -> None:
    headers = _headers(tenant_a.agent)

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await _ping(communicator, "m-1")
        await _ping(communicator, "m-2")
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
        assert await communicator.receive_nothing(timeout=0.2) is True
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


@pytest.mark.parametrize("text", ["{not json", "", "ping", '{"type": "ping"'])
def test_invalid_json_gets_bad_request_and_the_socket_stays_open(text, tenant_a) -> None:
    headers = _headers(tenant_a.agent)

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        # The test communicator refuses to send an empty text frame, so that one goes in raw.
        await communicator.send_input({"type": "websocket.receive", "text": text})
        assert await communicator.receive_json_from(timeout=TIMEOUT) == {
            "type": "error",
            "code": "bad_request",
            "message": "Frames must be JSON objects.",
            "retryable": False,
        }
        await _ping(communicator, "after-bad-json")
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


@pytest.mark.parametrize(
    ("frame", "message", "client_msg_id"),
    [
        ({"type": "subscribe", "client_msg_id": "m-7"}, "Invalid frame: type: Input should be 'ping'", "m-7"),
        ({"client_msg_id": "m-8"}, "Invalid frame: type: Field required", "m-8"),
        (
            {"type": "ping", "client_msg_id": "m-9", "extra": 1},
            "Invalid frame: extra: Extra inputs are not permitted",
            "m-9",
        ),
        (
            ["ping"],
            "Invalid frame: frame: Input should be a valid dictionary or instance of PingFrame",
            None,
        ),
    ],
)
def test_unknown_or_invalid_frame_gets_bad_request(frame, message, client_msg_id, tenant_a) -> None:
    headers = _headers(tenant_a.agent)

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await communicator.send_json_to(frame)
        expected = {"type": "error", "code": "bad_request", "message": message, "retryable": False}
        if client_msg_id is not None:
            expected["client_msg_id"] = client_msg_id
        assert await communicator.receive_json_from(timeout=TIMEOUT) == expected
        await _ping(communicator, "after-unknown")
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


def test_frame_of_exactly_64_kib_is_not_too_long(tenant_a) -> None:
    headers = _headers(tenant_a.agent)
    text = json.dumps({"type": "ping", "client_msg_id": "big", "pad": ""})
    text = text[:-2] + "x" * (MAX_FRAME_BYTES - len(text)) + '"}'
    assert len(text.encode()) == MAX_FRAME_BYTES

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await communicator.send_to(text_data=text)
        assert await communicator.receive_json_from(timeout=TIMEOUT) == {
            "type": "error",
            "code": "bad_request",
            "message": "Invalid frame: pad: Extra inputs are not permitted",
            "retryable": False,
            "client_msg_id": "big",
        }
        await _ping(communicator, "still-open")
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


@pytest.mark.parametrize("extra_bytes", [1, 1024 * 1024])
def test_frame_over_64_kib_gets_message_too_long_then_close_1009(extra_bytes, tenant_a) -> None:
    headers = _headers(tenant_a.agent)
    text = json.dumps({"type": "ping", "client_msg_id": "huge", "pad": ""})
    text = text[:-2] + "x" * (MAX_FRAME_BYTES + extra_bytes - len(text)) + '"}'
    assert len(text.encode()) == MAX_FRAME_BYTES + extra_bytes

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await communicator.send_to(text_data=text)
        assert await communicator.receive_json_from(timeout=TIMEOUT) == {
            "type": "error",
            "code": "message_too_long",
            "message": "Frames are limited to 64 KiB.",
            "retryable": False,
        }
        assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 1009}
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


def test_multibyte_text_is_measured_in_bytes(tenant_a) -> None:
    headers = _headers(tenant_a.agent)
    # 22,000 three-byte characters: under 64 Ki characters, over 64 KiB.
    text = json.dumps({"type": "ping", "pad": "€" * 22_000}, ensure_ascii=False)
    assert len(text) < MAX_FRAME_BYTES < len(text.encode())

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await communicator.send_to(text_data=text)
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        assert frame["code"] == "message_too_long"
        assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 1009}
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


def test_binary_frame_is_closed_with_1008(tenant_a) -> None:
    headers = _headers(tenant_a.agent)

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await communicator.send_to(bytes_data=b'{"type": "ping"}')
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["code"] == "bad_request"
        assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 1008}
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


def test_a_closed_socket_does_not_affect_another_members_socket(tenant_a) -> None:
    agent_headers = _headers(tenant_a.agent)
    admin_headers = _headers(tenant_a.admin)

    async def scenario() -> None:
        agent, _ = await _open("/ws/staff/tenant-a/", agent_headers)
        admin, _ = await _open("/ws/staff/tenant-a/", admin_headers)
        await agent.send_to(bytes_data=b"\x00\x01")
        assert (await agent.receive_json_from(timeout=TIMEOUT))["code"] == "bad_request"
        assert await agent.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 1008}
        await _ping(admin, "unaffected")
        await agent.disconnect(timeout=DISCONNECT_TIMEOUT)
        await admin.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


def test_staff_events_reach_only_their_own_tenant(tenant_a, tenant_b) -> None:
    a_headers = _headers(tenant_a.agent)
    b_headers = _headers(tenant_b.agent)

    async def scenario() -> None:
        a_socket, _ = await _open("/ws/staff/tenant-a/", a_headers)
        b_socket, _ = await _open("/ws/staff/tenant-b/", b_headers)

        # A real agent-stream event: every frame a test receives is checked against its model.
        pushed = PresenceChanged(user_id=tenant_b.agent.id, status="away").payload()
        await database_sync_to_async(staff_publish)(tenant_b.tenant.id, pushed, stream=StaffStream.AGENT)

        assert await b_socket.receive_json_from(timeout=TIMEOUT) == pushed
        assert await a_socket.receive_nothing(timeout=0.5) is True
        await a_socket.disconnect(timeout=DISCONNECT_TIMEOUT)
        await b_socket.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


def test_idle_socket_outlives_the_channel_layer_poll(tenant_a) -> None:
    headers = _headers(tenant_a.agent)

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await asyncio.sleep(7)
        await _ping(communicator, "after-idle")
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


# --- which pushes reach whom ---------------------------------------------------------------------------


def test_every_stream_names_who_may_receive_it() -> None:
    assert set(STAFF_STREAM_ROLES) == set(StaffStream)
    assert staff_streams(roles=[Role.EDITOR]) == {StaffStream.KNOWLEDGE}
    assert staff_streams(roles=[Role.AGENT]) == {StaffStream.AGENT}
    assert staff_streams(roles=[Role.AGENT, Role.PII_VIEWER]) == {StaffStream.AGENT}
    assert staff_streams(roles=[Role.ADMIN]) == {StaffStream.AGENT, StaffStream.KNOWLEDGE}
    assert staff_streams(roles=[Role.PII_VIEWER]) == frozenset()
    assert staff_streams(roles=[]) == frozenset()


CUSTOMER_WORDS = "My invoice for March looks wrong."
NOTE_TEXT = "VIP customer, call back before noon."


def _version(tenant: Tenant) -> DocumentVersion:
    document = Document.objects.create(tenant=tenant, title="Refund policy")
    return DocumentVersion.objects.create(
        tenant=tenant,
        document=document,
        number=1,
        status="embedding",
        progress=60,
        filename="refunds.md",
        size_bytes=10,
        sha256="0" * 64,
        content=b"# Refunds\n",
    )


def _agent_pushes(staff: TenantStaff, *, author: Any = None) -> Chat:
    """queue.changed, note.added, conversation.activity and presence.changed, in that order, through the
    services that push them in production. The note's `author` (the admin by default) must still be an
    agent or admin of the company."""
    conversation = chat(staff.tenant, CUSTOMER_WORDS)
    queue(conversation)
    handoff_services.note_add(
        tenant=staff.tenant, conversation_id=conversation.id, author=author or staff.admin, text=NOTE_TEXT
    )
    conversation_services.message_receive(
        tenant=staff.tenant, claims=conversation.session.claims, client_msg_id="c-again", text="Hello?"
    )
    handoff_services.presence_set(tenant=staff.tenant, user=staff.agent, status="away")
    return conversation


def _knowledge_pushes(staff: TenantStaff) -> list[dict[str, Any]]:
    """kb.version and knowledge.gap, in that order; returns their payloads."""
    version = _version(staff.tenant)
    publish_version_event(version)
    gap = knowledge_gap_record(
        tenant=staff.tenant,
        question=pii_redact("Do you refund gift cards?"),
        top_similarity=0.2,
        threshold=0.5,
        nearest=[],
    )
    return [version_event(version), {"type": "knowledge.gap", "id": str(gap.id)}]


async def _frames(communicator: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    return [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(count)]


AGENT_TYPES = ["queue.changed", "note.added", "conversation.activity", "presence.changed"]
KNOWLEDGE_TYPES = ["kb.version", "knowledge.gap"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("editor", KNOWLEDGE_TYPES),
        ("agent", AGENT_TYPES),
        ("admin", AGENT_TYPES + KNOWLEDGE_TYPES),
    ],
)
def test_each_role_receives_only_the_streams_it_may(role, expected, tenant_a) -> None:
    headers = _headers(getattr(tenant_a, role))

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)

        await database_sync_to_async(_agent_pushes)(tenant_a)
        knowledge = await database_sync_to_async(_knowledge_pushes)(tenant_a)

        # One channel receives in the order things were published: nothing came before, between or after.
        frames = await _frames(communicator, len(expected))
        assert [frame["type"] for frame in frames] == expected
        assert await communicator.receive_nothing(timeout=0.5) is True
        if role != "agent":
            assert frames[-2:] == knowledge
        if role == "editor":
            seen = json.dumps(frames)
            assert NOTE_TEXT not in seen
            assert "conversation_id" not in seen
            assert "handoff" not in seen
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


# --- access lost while connected -----------------------------------------------------------------------


@pytest.fixture
def recheck_every_push(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cached access: the push right after a change already sees it."""
    monkeypatch.setattr(realtime, "STAFF_RECHECK_SECONDS", 0.0)


def _lose_access(staff: TenantStaff, user: User, change: str) -> None:
    if change == "membership deleted":
        Membership.objects.filter(tenant=staff.tenant, user=user).delete()
    elif change == "tenant deactivated":
        Tenant.objects.filter(id=staff.tenant.id).update(is_active=False)
    elif change == "user deactivated":
        User.objects.filter(id=user.id).update(is_active=False)
    elif change == "demoted to editor":
        Membership.objects.filter(tenant=staff.tenant, user=user).update(role=Role.EDITOR)
    else:
        raise AssertionError(change)


Pushable = tuple[Chat, DocumentVersion]


def _pushable(staff: TenantStaff) -> Pushable:
    """Made while the member still has access: a deactivated tenant gets no new conversations."""
    return chat(staff.tenant, CUSTOMER_WORDS), _version(staff.tenant)


def _push_for(staff: TenantStaff, role: str, pushable: Pushable) -> None:
    """A push of a stream the role's socket joined: a version's progress for editors, a note otherwise."""
    conversation, version = pushable
    if role == "editor":
        publish_version_event(version)
    else:
        # Written by a colleague who still belongs: a note is an agent's of the company (its audited check).
        author = staff.agent if role == "admin" else staff.admin
        handoff_services.note_add(
            tenant=staff.tenant, conversation_id=conversation.id, author=author, text=NOTE_TEXT
        )


async def _closed_4403_without_a_push(communicator: WebsocketCommunicator) -> None:
    assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}
    assert await communicator.receive_nothing(timeout=0.5) is True


@pytest.mark.parametrize("change", ["membership deleted", "tenant deactivated", "user deactivated"])
@pytest.mark.parametrize("role", ["agent", "editor", "admin"])
def test_a_member_who_lost_the_tenant_gets_no_further_push_and_is_closed_with_4403(
    role, change, tenant_a, recheck_every_push
) -> None:
    user = getattr(tenant_a, role)
    headers = _headers(user)

    async def scenario() -> None:
        pushable = await database_sync_to_async(_pushable)(tenant_a)
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await database_sync_to_async(_lose_access)(tenant_a, user, change)

        await database_sync_to_async(_push_for)(tenant_a, role, pushable)

        await _closed_4403_without_a_push(communicator)
        # The socket left its groups: a later push finds nobody to deliver to.
        await database_sync_to_async(_push_for)(tenant_a, role, pushable)
        assert await communicator.receive_nothing(timeout=0.5) is True
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_a_member_demoted_to_editor_stops_getting_agent_pushes(role, tenant_a, recheck_every_push) -> None:
    user = getattr(tenant_a, role)
    headers = _headers(user)

    async def scenario() -> None:
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        await database_sync_to_async(_lose_access)(tenant_a, user, "demoted to editor")

        colleague = tenant_a.agent if role == "admin" else tenant_a.admin
        await database_sync_to_async(_agent_pushes)(tenant_a, author=colleague)

        # Closed rather than quietly narrowed: the page was opened for a role the member no longer holds.
        await _closed_4403_without_a_push(communicator)
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)


def test_access_is_trusted_for_the_recheck_window_and_not_after_it(tenant_a, monkeypatch) -> None:
    window = 3.0
    monkeypatch.setattr(realtime, "STAFF_RECHECK_SECONDS", window)
    headers = _headers(tenant_a.agent)

    async def scenario() -> None:
        pushable = await database_sync_to_async(_pushable)(tenant_a)
        communicator, _ = await _open("/ws/staff/tenant-a/", headers)
        checked_by = time.monotonic()  # the consumer checked access before it said hello
        await database_sync_to_async(_lose_access)(tenant_a, tenant_a.agent, "membership deleted")

        await database_sync_to_async(_push_for)(tenant_a, "agent", pushable)

        # Within the window the socket's last check still counts: one push may still pass.
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "note.added"
        assert time.monotonic() - checked_by < window, "too slow to observe the window; the test is void"
        await asyncio.sleep(window - (time.monotonic() - checked_by) + 0.2)

        await database_sync_to_async(_push_for)(tenant_a, "agent", pushable)

        await _closed_4403_without_a_push(communicator)
        await communicator.disconnect(timeout=DISCONNECT_TIMEOUT)

    _run(scenario)
