"""Handoff fixtures: a company with two agents and an admin, conversations put in each ownership state
through the services production uses, agents online, and opening hours.

The widget fixtures (a company with published policies, the scriptable model, sockets through the real
ASGI application) come from tests/conversations/conftest.py.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from apps.accounts.models import Role, Tenant, User
from apps.conversations import services as conv
from apps.conversations.models import Conversation, ConversationEvent, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger, Transition, conversation_handoff
from apps.core.realtime import StaffStream
from apps.handoff import services
from apps.handoff.models import Handoff
from tests.conftest import MakeTenant, MakeUser
from tests.conversations.conftest import (  # noqa: F401  (fixtures shared with the conversation tests)
    ORIGIN,
    _fresh_realtime_state,
    anyio_backend,
    fake_llm,
    kb_tenant,
    session_for,
)

ALL_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Desk:
    """A company's support desk: Nina (admin), Alice and Bob (agents)."""

    tenant: Tenant
    admin: User
    alice: User
    bob: User


def desk_for(tenant: Tenant, make_user: MakeUser) -> Desk:
    key = tenant.slug
    return Desk(
        tenant=tenant,
        admin=make_user(
            tenant, roles=[Role.ADMIN], username=f"nina-{key}", first_name="Nina", email=f"nina@{key}.example"
        ),
        alice=make_user(tenant, roles=[Role.AGENT], username=f"alice-{key}", first_name="Alice"),
        bob=make_user(tenant, roles=[Role.AGENT], username=f"bob-{key}", first_name="Bob"),
    )


@pytest.fixture
def desk(make_tenant: MakeTenant, make_user: MakeUser) -> Desk:
    """A company without published policies (service tests that never ask the assistant)."""
    return desk_for(make_tenant(name="Nimbus Telecom", origins=[ORIGIN]), make_user)


@pytest.fixture
def kb_desk(kb_tenant: Tenant, make_user: MakeUser) -> Desk:  # noqa: F811
    """A company with the roaming and refund policies published (the assistant can answer)."""
    return desk_for(kb_tenant, make_user)


# ---- hours and presence ----------------------------------------------------------------------------------


def open_all_day(tenant: Tenant, *, timezone_name: str = "UTC") -> None:
    services.handoff_settings_update(
        tenant=tenant, timezone_name=timezone_name, hours={day: [["00:00", "24:00"]] for day in ALL_WEEK}
    )


def closed_all_week(tenant: Tenant) -> None:
    services.handoff_settings_update(tenant=tenant, hours={day: [] for day in ALL_WEEK})


def agent_online(tenant: Tenant, user: User, *, capacity: int | None = None) -> None:
    """The agent's console is connected and they chose "online"."""
    services.presence_connect(tenant=tenant, user=user)
    services.presence_set(tenant=tenant, user=user, status="online", capacity=capacity)


# ---- conversations ---------------------------------------------------------------------------------------


@dataclass
class Chat:
    """One visitor's widget session and its conversation."""

    tenant: Tenant
    session: conv.WidgetSession

    @property
    def id(self) -> uuid.UUID:
        return self.session.claims.conversation_id

    @property
    def claims(self) -> Any:
        return self.session.claims

    def row(self) -> Conversation:
        return Conversation.objects.get(id=self.id)

    def say(self, text: str, *, client_msg_id: str | None = None) -> conv.Receipt:
        return conv.message_receive(
            tenant=self.tenant,
            claims=self.claims,
            client_msg_id=client_msg_id or uuid.uuid4().hex,
            text=text,
        )

    def answer(self, text: str, **outcome: Any) -> Message:
        """The assistant's stored answer to the latest turn (as assistant.py stores one)."""
        turn = self.row().turn
        message = conv.reply_start(conversation_id=self.id, turn=turn)
        assert message is not None, "the assistant does not own the conversation"
        return conv.reply_finish(
            message=message,
            outcome=conv.ReplyOutcome(
                status=outcome.pop("status", Message.Status.COMPLETE),
                text=text,
                text_redacted=text,
                **outcome,
            ),
        )

    def events(self, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
        return [
            (e.seq, e.type, e.data)
            for e in ConversationEvent.objects.filter(conversation_id=self.id, seq__gt=after).order_by("seq")
        ]

    def handoffs(self) -> list[Handoff]:
        return list(Handoff.objects.filter(conversation_id=self.id).order_by("created_at"))


def chat_start(tenant: Tenant, *texts: str) -> Chat:
    """A new visitor; each text is a customer message the assistant answered ("Answer to: ...")."""
    chat = Chat(tenant=tenant, session=session_for(tenant))
    for text in texts:
        chat.say(text)
        chat.answer(f"Answer to: {text}")
    return chat


def to_waiting(
    chat: Chat, *, reason: str = HandoffReason.CUSTOMER_REQUEST, priority: int = 0, detail: str = ""
) -> Transition:
    change = conversation_handoff(
        conversation_id=chat.id, trigger=HandoffTrigger(reason=reason, priority=priority, detail=detail)
    )
    assert change is not None
    return change


def to_human(chat: Chat, agent: User) -> Handoff:
    return services.conversation_take_over(tenant=chat.tenant, conversation_id=chat.id, agent=agent)


@pytest.fixture
def chat(desk: Desk) -> Chat:
    return chat_start(desk.tenant, "Is roaming free in Spain?")


@pytest.fixture
def staff_pushes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What would be pushed to agents' consoles (run on commit), in order; all on the agent stream."""
    pushed: list[dict[str, Any]] = []

    def capture(tenant_id: object, payload: dict[str, Any], *, stream: StaffStream) -> None:
        assert stream is StaffStream.AGENT, payload
        pushed.append(payload)

    for module in (
        "apps.handoff.services",
        "apps.handoff.escalation",
        "apps.handoff.listeners",
        "apps.conversations.services",
    ):
        monkeypatch.setattr(f"{module}.staff_publish", capture)
    return pushed
