"""Agents' writes on conversations as audited actions (apps/audit/actions.py): claim, take over, transfer,
hand back and resolve (docs/architecture/handoff.md); replies and notes are in apps.handoff.reply_actions.

`check()` answers "may this person do this at all" from the rows as read: an agent (or admin) of the
company and, for a conversation a person holds, its owner or an admin. It can run alone (whether to show
a button). `perform()` locks the conversation (apps.conversations.locks, lock order 1) and asks the
ownership question again of the locked row, because between the read and the lock a colleague may have
claimed or transferred it; the state conflicts (nobody waiting any more, resolved already) are its own.
The audit row is written by `execute()` after every row lock: its chain lock is the last of the desk's
lock order. Rows carry ids, counts and lengths, never what the agent or the customer wrote.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from typing import Any, TypeVar

from apps.accounts.models import Membership, Role, Tenant, User
from apps.audit.actions import Action
from apps.conversations.models import Conversation, HandoffReason
from apps.conversations.ownership import HandoffTrigger, conversation_lock, transition_locked
from apps.core.errors import BadRequest, Conflict, Forbidden, NotFound
from apps.handoff.availability import agent_loads
from apps.handoff.locks import presence_lock
from apps.handoff.models import Handoff, Team, Ticket
from apps.handoff.selectors import staff_name

T = TypeVar("T")
Status = Conversation.Status
# Tasks are sent by name: services never import the app's interface modules (STYLE, import-linter).
TASKS = "apps.handoff.tasks."
NOT_AN_AGENT = "Only the company's agents can hold its conversations."


def is_agent(tenant: Tenant, user: User) -> bool:
    return Membership.objects.for_tenant(tenant).filter(user=user, role__in=[Role.AGENT, Role.ADMIN]).exists()


def is_admin(tenant: Tenant, user: User) -> bool:
    return Membership.objects.for_tenant(tenant).filter(user=user, role=Role.ADMIN).exists()


def uuid_or_404(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None


def holder_text(conversation: Conversation) -> str:
    if conversation.status == Status.HUMAN:
        return f"{staff_name(conversation.agent)} has this conversation."
    if conversation.status == Status.RESOLVED:
        return "This conversation is resolved."
    if conversation.status == Status.WAITING:
        return "This conversation is waiting in the queue: claim it first."
    return "The assistant has this conversation: take it over first."


def _capacity_check(tenant: Tenant, agent: User) -> None:
    """Inside the claim's transaction: the agent's presence row is locked first, so two claims by one
    agent at once are counted one after the other and cannot both pass the limit."""
    presence_lock(tenant=tenant, agent=agent)
    load = next((load for load in agent_loads(tenant=tenant) if load.user_id == agent.id), None)
    if load is not None and load.holding >= load.capacity:
        raise Conflict(
            f"You already hold {load.holding} conversation{'s' if load.holding != 1 else ''}, your limit. "
            "Resolve or hand one back first."
        )


def _latest_handoff(conversation: Conversation) -> Handoff:
    handoff = Handoff.objects.filter(conversation_id=conversation.id).order_by("-created_at").first()
    assert handoff is not None
    return handoff


class ConversationAction(Action[T]):
    """An agent's write on one conversation of the company, named by `conversation_id`."""

    tenant: Tenant
    actor: User
    target_type = "Conversation"
    not_an_agent = "Only the company's agents can do that."

    @cached_property
    def conversation_id(self) -> uuid.UUID:
        return uuid_or_404(self.params["conversation_id"])

    @cached_property
    def conversation(self) -> Conversation:
        """The conversation as read, unlocked: for `check()`."""
        conversation = Conversation.objects.for_tenant(self.tenant).filter(id=self.conversation_id).first()
        if conversation is None:
            raise NotFound("There is no such conversation.")
        return conversation

    def check(self) -> None:
        self.conversation  # noqa: B018  (NotFound before Forbidden: another company's is not theirs to know)
        if not is_agent(self.tenant, self.actor):
            raise Forbidden(self.not_an_agent)

    def _lock(self) -> Conversation:
        return conversation_lock(conversation_id=self.conversation_id, tenant_id=self.tenant.id)

    def _owner_or_admin(self, conversation: Conversation) -> None:
        """Forbidden unless the actor holds the conversation or is an admin, while a person holds it."""
        if conversation.status != Status.HUMAN or conversation.agent_id == self.actor.id:
            return
        if not is_admin(self.tenant, self.actor):
            raise Forbidden(
                f"{staff_name(conversation.agent)} has this conversation; only they or an admin can do that."
            )

    def _held_or_waiting(self, conversation: Conversation) -> None:
        """A conversation a person holds (their own, or any for an admin) or one waiting in the queue."""
        self._owner_or_admin(conversation)
        if conversation.status not in (Status.HUMAN, Status.WAITING):
            raise Conflict(holder_text(conversation))

    def audit_target(self, result: T) -> tuple[str, str]:
        return ("Conversation", str(self.conversation_id))


# ---- ownership ---------------------------------------------------------------------------------------------


class HandoffClaim(Action[Handoff]):
    """An agent takes a waiting handoff. Of two agents claiming at once, exactly one wins (the conversation's
    lock serialises them); the other gets a Conflict naming who has it."""

    tenant: Tenant
    actor: User
    action = "handoff.claim"
    target_type = "Handoff"

    @cached_property
    def handoff(self) -> Handoff:
        handoff = (
            Handoff.objects.for_tenant(self.tenant).filter(id=uuid_or_404(self.params["handoff_id"])).first()
        )
        if handoff is None:
            raise NotFound("There is no such handoff.")
        return handoff

    def check(self) -> None:
        self.handoff  # noqa: B018  (NotFound before Forbidden: another company's handoff is not theirs to know)
        if not is_agent(self.tenant, self.actor):
            raise Forbidden(NOT_AN_AGENT)

    def perform(self) -> Handoff:
        handoff = self.handoff
        conversation = conversation_lock(conversation_id=handoff.conversation_id, tenant_id=self.tenant.id)
        _capacity_check(self.tenant, self.actor)
        handoff.refresh_from_db()
        if handoff.status != Handoff.Status.WAITING or conversation.status != Status.WAITING:
            holder = staff_name(conversation.agent) if conversation.agent_id else ""
            raise Conflict(
                f"{holder} has this conversation already." if holder else "Nobody is waiting here any more."
            )
        transition_locked(
            conversation, to=Status.HUMAN, event="handoff.claimed", agent=self.actor, actor=self.actor
        )
        handoff.refresh_from_db()
        return handoff

    def audit_data(self, result: Handoff) -> dict[str, Any]:
        return {"conversation_id": result.conversation_id, "reason": result.reason}


class ConversationTakeOver(ConversationAction[Handoff]):
    """An agent takes a conversation straight from the assistant (or from the queue); an answer being
    written stops and is marked interrupted."""

    action = "conversation.take_over"
    not_an_agent = NOT_AN_AGENT

    def perform(self) -> Handoff:
        conversation = self._lock()
        self.before = conversation.status
        if conversation.status not in (Status.ASSISTANT, Status.WAITING):
            if conversation.status == Status.HUMAN and conversation.agent_id == self.actor.id:
                raise Conflict("You have this conversation already.")
            raise Conflict(holder_text(conversation))
        _capacity_check(self.tenant, self.actor)
        transition_locked(
            conversation,
            to=Status.HUMAN,
            event="handoff.claimed",
            agent=self.actor,
            actor=self.actor,
            trigger=HandoffTrigger(reason=HandoffReason.AGENT_TAKEOVER)
            if conversation.status == Status.ASSISTANT
            else None,
        )
        return _latest_handoff(conversation)

    def audit_data(self, result: Handoff) -> dict[str, Any]:
        return {"handoff_id": result.id, "from": self.before}


class ConversationTransfer(ConversationAction[Handoff]):
    """Moves a conversation to another agent (who owns it at once) or to a team (back in the queue, marked
    for that team)."""

    action = "conversation.transfer"
    moved_to: dict[str, Any]

    def check(self) -> None:
        to_agent_id, to_team_id = self.params.get("to_agent_id"), self.params.get("to_team_id")
        if (to_agent_id is None) == (to_team_id is None):
            raise BadRequest(
                "Choose an agent or a team to transfer to."
                if to_agent_id is None
                else "Transfer to an agent or to a team, not both."
            )
        super().check()
        self._owner_or_admin(self.conversation)

    def perform(self) -> Handoff:
        conversation = self._lock()
        self._held_or_waiting(conversation)
        to_agent_id: int | None = self.params.get("to_agent_id")
        if to_agent_id is not None:
            target = User.objects.filter(id=to_agent_id, is_active=True).first()
            if target is None or not is_agent(self.tenant, target):
                raise BadRequest("That person is not an agent of this company.")
            if target.id == conversation.agent_id:
                raise Conflict(f"{staff_name(target)} has this conversation already.")
            load = next((x for x in agent_loads(tenant=self.tenant) if x.user_id == target.id), None)
            if load is not None and load.holding >= load.capacity:
                raise Conflict(f"{staff_name(target)} is at their limit of {load.capacity} conversations.")
            transition_locked(
                conversation,
                to=Status.HUMAN,
                event="handoff.transferred",
                agent=target,
                actor=self.actor,
                data={"to": "agent"},
            )
            self.moved_to = {"to": "agent", "agent_id": target.id}
        else:
            team_id = uuid_or_404(self.params["to_team_id"] or "")
            team = Team.objects.for_tenant(self.tenant).filter(id=team_id).first()
            if team is None:
                raise BadRequest("There is no such team.")
            transition_locked(
                conversation,
                to=Status.WAITING,
                event="handoff.transferred",
                actor=self.actor,
                data={"to": "team", "team": team.name},
                context={"team_id": team.id},
            )
            self.moved_to = {"to": "team", "team_id": team.id}
        return _latest_handoff(conversation)

    def audit_data(self, result: Handoff) -> dict[str, Any]:
        return {**self.moved_to, "handoff_id": result.id}


class ConversationHandBack(ConversationAction[Conversation]):
    """The agent gives the conversation back to the assistant, which answers the customer's next message."""

    action = "conversation.hand_back"

    def check(self) -> None:
        super().check()
        self._owner_or_admin(self.conversation)

    def perform(self) -> Conversation:
        conversation = self._lock()
        self._held_or_waiting(conversation)
        transition_locked(conversation, to=Status.ASSISTANT, event="handoff.returned", actor=self.actor)
        return conversation


class ConversationResolve(ConversationAction[Conversation]):
    """Closes the episode; the customer is asked to rate it. Writing again starts a new one."""

    action = "conversation.resolve"

    def check(self) -> None:
        super().check()
        self._owner_or_admin(self.conversation)

    def perform(self) -> Conversation:
        conversation = self._lock()
        if conversation.status == Status.RESOLVED:
            raise Conflict("This conversation is resolved already.")
        self._owner_or_admin(conversation)
        self.before = conversation.status
        transition_locked(
            conversation,
            to=Status.RESOLVED,
            event="conversation.resolved",
            actor=self.actor,
            data={"csat": True},
        )
        ticket = Ticket.objects.filter(
            conversation=conversation, status__in=[Ticket.Status.OPEN, Ticket.Status.ANSWERED]
        ).first()
        self.ticket_closed = ticket is not None
        if ticket is not None:
            ticket.status = Ticket.Status.CLOSED
            ticket.save(update_fields=["status", "updated_at"])
        return conversation

    def audit_data(self, result: Conversation) -> dict[str, Any]:
        return {"from": self.before, "ticket_closed": self.ticket_closed}
