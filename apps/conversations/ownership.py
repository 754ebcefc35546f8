"""Who owns a conversation, enforced on the server (docs/architecture/handoff.md, CONTRACTS I6).

    assistant ──handoff──▶ waiting ──claim──▶ human (one agent) ──resolve──▶ resolved
        ▲  ╲                  │  ▲               │   │  ▲                       │
        │   ╲──takeover───────┼──┼──────────────▶│   │  └─transfer (agent)     │ the customer
        │                     │  └──transfer (team)──┘                          │ writes again:
        └──────── cancel ─────┘          hand back ──▶ assistant ◀──────────────┘ a new episode

Every change takes the conversation's row lock, checks the move is allowed from the state it finds, and
appends one numbered event in the same transaction. Leaving the assistant marks a reply being written
`interrupted` in that transaction too, and after commit tells the process writing it to stop (in-process
at once, other processes through Redis within a quarter second): from the commit on, the reply can no
longer be stored as complete, and the widget has been told it was cut.

Higher apps (handoff) learn about changes through listeners registered in their AppConfig.ready(); they
run inside the transaction, so a queue entry exists exactly when the conversation waits for one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.accounts.models import User
from apps.conversations import hooks
from apps.conversations.audit import trigger_actor_kind
from apps.conversations.events import event_append
from apps.conversations.locks import conversation_lock as conversation_lock  # callers reach it from here too
from apps.conversations.locks import streaming_messages_lock
from apps.conversations.models import Conversation, ConversationEvent, HandoffReason, Message
from apps.conversations.selectors import agent_display_name
from apps.conversations.snapshots import snapshot_discard_on_commit
from apps.core.errors import BadRequest, Conflict
from apps.core.redis import state_key, state_redis

logger = logging.getLogger(__name__)

Status = Conversation.Status

# (from, to) moves the state machine allows. Anything else is a Conflict.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        (Status.ASSISTANT, Status.WAITING),  # a handoff trigger
        (Status.ASSISTANT, Status.HUMAN),  # an agent takes over from the console
        (Status.ASSISTANT, Status.RESOLVED),
        (Status.WAITING, Status.HUMAN),  # claimed
        (Status.WAITING, Status.WAITING),  # transferred to another team, escalated
        (Status.WAITING, Status.ASSISTANT),  # the customer goes back to the assistant
        (Status.WAITING, Status.RESOLVED),
        (Status.HUMAN, Status.HUMAN),  # transferred to another agent
        (Status.HUMAN, Status.WAITING),  # transferred to a team
        (Status.HUMAN, Status.ASSISTANT),  # handed back
        (Status.HUMAN, Status.RESOLVED),
        (Status.RESOLVED, Status.ASSISTANT),  # the customer writes again: a new episode
        (Status.RESOLVED, Status.WAITING),  # the customer answers an agent's email
    }
)


@dataclass(frozen=True)
class HandoffTrigger:
    """Why the conversation is going to a person; `priority` 0 normal, 1 high, 2 urgent."""

    reason: str
    detail: str = ""
    priority: int = 0
    team_id: uuid.UUID | None = None  # a company rule's team, where one routes it

    def __post_init__(self) -> None:
        if self.reason not in HandoffReason.values:
            raise ValueError(f"unknown handoff reason {self.reason!r}")


@dataclass
class Transition:
    conversation: Conversation
    before: str
    after: str
    event: ConversationEvent
    trigger: HandoffTrigger | None = None
    actor: User | None = None
    # Extra data for listeners (e.g. the team a transfer goes to); never shown to the customer.
    context: dict[str, Any] = field(default_factory=dict)
    interrupted: list[uuid.UUID] = field(default_factory=list)
    # Who moved it (ConversationEvent.ActorKind): staff with `actor`, else the customer, assistant or system.
    actor_kind: str = ConversationEvent.ActorKind.SYSTEM


def owner_key(tenant_id: object, conversation_id: object) -> str:
    return state_key("owner", tenant_id, conversation_id)


def transition_locked(
    conversation: Conversation,
    *,
    to: str,
    event: str,
    agent: User | None = None,
    actor: User | None = None,
    trigger: HandoffTrigger | None = None,
    data: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    actor_kind: str | None = None,
) -> Transition:
    """Moves a conversation the caller holds locked to `to`, with its event (and the listeners' work) in the
    caller's transaction. Who moved it is `actor_kind` when given; else staff when a user (`actor`, or the
    `agent` who claims) did, else whoever stands behind the trigger's reason, else the system."""
    before = conversation.status
    if (before, to) not in ALLOWED:
        raise Conflict(_conflict_text(before, to))
    if to == Status.HUMAN and agent is None:
        raise BadRequest("A conversation with a person needs the agent who owns it.")
    user = actor or agent
    kind = actor_kind or (
        ConversationEvent.ActorKind.STAFF
        if user is not None
        else trigger_actor_kind(trigger.reason)
        if trigger is not None
        else ConversationEvent.ActorKind.SYSTEM
    )
    interrupted: list[uuid.UUID] = []
    if to != Status.ASSISTANT and before == Status.ASSISTANT:
        interrupted = _interrupt_replies(conversation, actor=user, actor_kind=kind)
    if before == Status.RESOLVED:
        # A new episode: the assistant's memory and the next rating start here.
        conversation.episode += 1
        conversation.episode_turn = conversation.turn + 1
        conversation.save(update_fields=["episode", "episode_turn", "updated_at"])
    conversation.status = to
    conversation.agent = agent if to == Status.HUMAN else None
    conversation.save(update_fields=["status", "agent", "updated_at"])
    payload: dict[str, Any] = {"owner": to}
    if to == Status.HUMAN:
        payload["agent"] = agent_display_name(agent)
    if trigger is not None:
        payload["reason"] = trigger.reason
    payload.update(data or {})
    appended = event_append(conversation, event, data=payload, actor=user, actor_kind=kind)
    change = Transition(
        conversation=conversation,
        before=before,
        after=to,
        event=appended,
        trigger=trigger,
        actor=actor,
        context=context or {},
        interrupted=interrupted,
        actor_kind=kind,
    )
    for listener in hooks.ownership_listeners():
        listener(change)
    conversation_id, tenant_id = conversation.id, conversation.tenant_id
    transaction.on_commit(lambda: _owner_announce(tenant_id, conversation_id, to))
    logger.info(
        "conversation %s: %s -> %s (%s%s)",
        conversation_id,
        before,
        to,
        event,
        f", reason {trigger.reason}" if trigger else "",
    )
    return change


def conversation_transition(
    *,
    conversation_id: uuid.UUID,
    to: str,
    event: str,
    tenant_id: uuid.UUID | None = None,
    expect: tuple[str, ...] | None = None,
    agent: User | None = None,
    actor: User | None = None,
    trigger: HandoffTrigger | None = None,
    data: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    actor_kind: str | None = None,
) -> Transition:
    """One ownership change in its own transaction; `expect` narrows the states it may start from."""
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=conversation_id, tenant_id=tenant_id)
        if expect is not None and conversation.status not in expect:
            raise Conflict(_conflict_text(conversation.status, to))
        return transition_locked(
            conversation,
            to=to,
            event=event,
            agent=agent,
            actor=actor,
            trigger=trigger,
            data=data,
            context=context,
            actor_kind=actor_kind,
        )


def conversation_handoff(
    *, conversation_id: uuid.UUID, trigger: HandoffTrigger, tenant_id: uuid.UUID | None = None
) -> Transition | None:
    """Sends a conversation the assistant owns to the queue. None if it is with a person (or waiting for
    one) already: a second request is not a second handoff; nor does a late trigger reopen a conversation
    an agent resolved meanwhile."""
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=conversation_id, tenant_id=tenant_id)
        if conversation.status != Status.ASSISTANT:
            return None
        return transition_locked(conversation, to=Status.WAITING, event="handoff.requested", trigger=trigger)


def assistant_may_speak(*, conversation_id: uuid.UUID) -> bool:
    return Conversation.objects.filter(id=conversation_id, status=Status.ASSISTANT).exists()


def _interrupt_replies(conversation: Conversation, *, actor: User | None, actor_kind: str) -> list[uuid.UUID]:
    """Marks the replies being written `interrupted`, keeping their text, with the event the widget shows
    (its actor: whoever sent the conversation to a person)."""
    streaming = streaming_messages_lock(conversation=conversation)
    for message in streaming:
        message.text = _text_shown(message)
        message.status = Message.Status.INTERRUPTED
        message.error_code = "interrupted"
        message.heartbeat_at = None
        message.save(update_fields=["text", "status", "error_code", "heartbeat_at", "updated_at"])
        # Not retryable: a person has the conversation now.
        event_append(
            conversation,
            "assistant.interrupted",
            message=message,
            data={"code": "interrupted", "retryable": False, "by": "handoff"},
            actor=actor,
            actor_kind=actor_kind,
        )
        snapshot_discard_on_commit(
            tenant_id=message.tenant_id, conversation_id=message.conversation_id, message_id=message.id
        )
    return [m.id for m in streaming]


def _text_shown(message: Message) -> str:
    """What the customer has seen of a reply being written: the stream's Redis snapshot (every piece
    pushed so far), else the text its last heartbeat saved (at most a second older)."""
    key = state_key("partial", message.tenant_id, message.conversation_id, message.id)  # stream.partial_key
    try:
        raw = state_redis().get(key)
    except Exception as exc:
        logger.warning("partial text of reply %s not read: %s", message.id, exc.__class__.__name__)
        return message.text
    if raw is None:
        return message.text
    shown = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return shown if len(shown) >= len(message.text) else message.text


def _owner_announce(tenant_id: uuid.UUID, conversation_id: uuid.UUID, owner: str) -> None:
    try:
        state_redis().set(owner_key(tenant_id, conversation_id), owner, ex=3600)
    except Exception as exc:
        logger.warning("owner marker not written: %s", exc.__class__.__name__)
    if owner != Status.ASSISTANT:
        for listener in hooks.cancel_listeners():
            try:
                listener(conversation_id)
            except Exception:
                logger.exception("cancelling the reply of conversation %s failed", conversation_id)


def _conflict_text(before: str, to: str) -> str:
    if before == Status.HUMAN and to == Status.HUMAN:
        return "Another agent has this conversation now."
    if before == Status.HUMAN:
        return "An agent has this conversation already."
    if before == Status.RESOLVED:
        return "This conversation is resolved."
    if to == Status.HUMAN and before == Status.ASSISTANT:
        return "Nobody is waiting in this conversation; take it over instead."
    if before == Status.ASSISTANT:
        return "The assistant has this conversation; nobody is waiting in it."
    return f"This conversation can't go from {before} to {to}."
