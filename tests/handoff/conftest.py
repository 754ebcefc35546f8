"""Handoff fixtures: a company with two agents and an admin, conversations put in each ownership state
through the services production uses, agents online, and opening hours.

The widget fixtures (a company with published policies, the scriptable model, sockets through the real
ASGI application) come from tests/conversations/conftest.py; the helpers at the end set a company's answer
style, script the model's composed sentences and write out the quoted answer a turn must give.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from apps.accounts import services as accounts
from apps.accounts.models import Role, Tenant, User
from apps.conversations import services as conv
from apps.conversations.models import AssistantTrace, Conversation, ConversationEvent, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger, Transition, conversation_handoff
from apps.core.realtime import StaffStream
from apps.handoff import services
from apps.handoff.models import Handoff
from tests.conftest import MakeTenant, MakeUser
from tests.conversations.conftest import (  # noqa: F401  (fixtures shared with the conversation tests)
    ORIGIN,
    REFUND_POLICY,
    ROAMING_POLICY,
    _fresh_realtime_state,
    anyio_backend,
    fake_llm,
    kb_tenant,
    session_for,
)
from tests.fakes.openai_server import FakeOpenAI

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
        "apps.handoff.reply_actions",
        "apps.handoff.escalation",
        "apps.handoff.listeners",
        "apps.conversations.services",
    ):
        monkeypatch.setattr(f"{module}.staff_publish", capture)
    return pushed


# ---- the assistant's answers (apps/conversations/answering) ----------------------------------------------

COMPOSE_PROMPT_START = "You are the customer support assistant of"
# Sentences a scripted model writes in the `compose` style. Each passes apps.guardrails.support against
# the roaming policy for the roaming questions asked in these tests, so it is really shown after the quote.
COMPOSED = (
    "Roaming in the European Union is at no extra charge.",
    "Customers on every Nimbus plan can use their minutes, texts and data in all European Union countries.",
    "Fair use allows 30 GB of EU data per month.",
)


def answers_in(tenant: Tenant, style: str) -> Tenant:
    """The company's answer style (quote, compose or auto), set the way its settings page sets it."""
    return accounts.tenant_answers_configure(tenant=tenant, answer_style=style)


def is_compose_request(body: dict[str, Any]) -> bool:
    """A chat request for a composed answer (not a follow-up rewrite, a tool decision or a case file)."""
    messages = body.get("messages") or []
    return bool(messages) and str(messages[0].get("content", "")).startswith(COMPOSE_PROMPT_START)


def model_composes(fake: FakeOpenAI, text: str) -> None:
    """Compose requests get `text`; any other chat request an empty answer (a rewrite is then not used)."""
    fake.responder = lambda body: text if is_compose_request(body) else ""


def evidence_of(message_id: Any) -> list[dict[str, Any]]:
    """The evidence units an answer was built on, as its trace recorded them."""
    return list(AssistantTrace.objects.get(message_id=message_id).retrieval["evidence"])


def quote_of(evidence: list[dict[str, Any]]) -> str:
    """The quoted answer for `evidence`, written out here rather than by the code under test: the lead-in,
    then each unit's sentences in curly quotes with its number, every sentence the policy's own words."""
    assert evidence, "no evidence: the turn was not answered from the policies"
    published = " ".join(b" ".join([ROAMING_POLICY, REFUND_POLICY]).decode().split())
    for row in evidence:
        for sentence in row["sentences"]:
            assert sentence in published, sentence
    several = len({row["document_id"] for row in evidence}) > 1
    lead = "Here is what our policies say:" if several else "Here is what our policy says:"
    quotes = [f"\u201c{' '.join(row['sentences'])}\u201d [{row['n']}]" for row in evidence]
    return "\n\n".join([lead, *quotes])
