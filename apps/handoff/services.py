"""Writes of the human side: claim, take over, transfer, hand back, resolve, reply, notes, presence,
settings, escalation and the email path (docs/architecture/handoff.md).

Ownership changes go through apps.conversations.ownership (the conversation's row lock serialises them:
of two agents claiming at once, exactly one finds the conversation waiting). The handoff row follows in
the same transaction (listeners.on_transition).
"""

from __future__ import annotations

import logging
import re
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.accounts.models import Membership, Role, Tenant, User
from apps.conversations.channels import delivery_queue
from apps.conversations.events import event_append
from apps.conversations.models import Conversation, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger, conversation_lock, transition_locked
from apps.core import event_types
from apps.core.errors import BadRequest, Conflict, Forbidden, NotFound
from apps.core.realtime import StaffStream, staff_publish
from apps.guardrails.pii import pii_redact
from apps.handoff.availability import DAYS, agent_loads, settings_for
from apps.handoff.locks import presence_lock
from apps.handoff.models import (
    CannedResponse,
    Handoff,
    HandoffRule,
    HandoffSettings,
    Note,
    Presence,
    Team,
    Ticket,
)
from apps.handoff.selectors import staff_name

logger = logging.getLogger(__name__)

# Tasks are sent by name: services never import the app's interface modules (STYLE, import-linter).
TASKS = "apps.handoff.tasks."

Status = Conversation.Status
MAX_REPLY_CHARS = 4000
MAX_NOTE_CHARS = 4000


# ---- ownership ---------------------------------------------------------------------------------------------


def _is_agent(tenant: Tenant, user: User) -> bool:
    return Membership.objects.for_tenant(tenant).filter(user=user, role__in=[Role.AGENT, Role.ADMIN]).exists()


def _is_admin(tenant: Tenant, user: User) -> bool:
    return Membership.objects.for_tenant(tenant).filter(user=user, role=Role.ADMIN).exists()


def _capacity_check(tenant: Tenant, agent: User) -> None:
    """Inside the claim's transaction: the agent's presence row is locked first, so two claims by one
    agent at once are counted one after the other and cannot both pass the limit."""
    if not _is_agent(tenant, agent):
        raise Forbidden("Only the company's agents can hold its conversations.")
    presence_lock(tenant=tenant, agent=agent)
    load = next((load for load in agent_loads(tenant=tenant) if load.user_id == agent.id), None)
    if load is not None and load.holding >= load.capacity:
        raise Conflict(
            f"You already hold {load.holding} conversation{'s' if load.holding != 1 else ''}, your limit. "
            "Resolve or hand one back first."
        )


def handoff_claim(*, tenant: Tenant, handoff_id: uuid.UUID | str, agent: User) -> Handoff:
    """An agent takes a waiting handoff. Of two agents claiming at once, exactly one wins; the other gets
    a Conflict naming who has it."""
    handoff = Handoff.objects.for_tenant(tenant).filter(id=_uuid(handoff_id)).first()
    if handoff is None:
        raise NotFound("There is no such handoff.")
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=handoff.conversation_id, tenant_id=tenant.id)
        _capacity_check(tenant, agent)
        handoff.refresh_from_db()
        if handoff.status != Handoff.Status.WAITING or conversation.status != Status.WAITING:
            holder = staff_name(conversation.agent) if conversation.agent_id else ""
            raise Conflict(
                f"{holder} has this conversation already." if holder else "Nobody is waiting here any more."
            )
        transition_locked(conversation, to=Status.HUMAN, event="handoff.claimed", agent=agent, actor=agent)
    handoff.refresh_from_db()
    return handoff


def conversation_take_over(*, tenant: Tenant, conversation_id: uuid.UUID | str, agent: User) -> Handoff:
    """An agent takes a conversation straight from the assistant (or from the queue); an answer being
    written stops and is marked interrupted."""
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=_uuid(conversation_id), tenant_id=tenant.id)
        if conversation.status not in (Status.ASSISTANT, Status.WAITING):
            if conversation.status == Status.HUMAN and conversation.agent_id == agent.id:
                raise Conflict("You have this conversation already.")
            raise Conflict(_holder_text(conversation))
        _capacity_check(tenant, agent)
        transition_locked(
            conversation,
            to=Status.HUMAN,
            event="handoff.claimed",
            agent=agent,
            actor=agent,
            trigger=HandoffTrigger(reason=HandoffReason.AGENT_TAKEOVER)
            if conversation.status == Status.ASSISTANT
            else None,
        )
    handoff = Handoff.objects.filter(conversation_id=conversation.id).order_by("-created_at").first()
    assert handoff is not None
    return handoff


def conversation_transfer(
    *,
    tenant: Tenant,
    conversation_id: uuid.UUID | str,
    actor: User,
    to_agent_id: int | None = None,
    to_team_id: uuid.UUID | str | None = None,
) -> Handoff:
    """Moves a conversation to another agent (who owns it at once) or to a team (back in the queue,
    marked for that team)."""
    if (to_agent_id is None) == (to_team_id is None):
        raise BadRequest(
            "Choose an agent or a team to transfer to."
            if to_agent_id is None
            else "Transfer to an agent or to a team, not both."
        )
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=_uuid(conversation_id), tenant_id=tenant.id)
        _owner_or_admin(tenant, conversation, actor, allow_waiting=True)
        if to_agent_id is not None:
            target = User.objects.filter(id=to_agent_id, is_active=True).first()
            if target is None or not _is_agent(tenant, target):
                raise BadRequest("That person is not an agent of this company.")
            if target.id == conversation.agent_id:
                raise Conflict(f"{staff_name(target)} has this conversation already.")
            load = next((x for x in agent_loads(tenant=tenant) if x.user_id == target.id), None)
            if load is not None and load.holding >= load.capacity:
                raise Conflict(f"{staff_name(target)} is at their limit of {load.capacity} conversations.")
            transition_locked(
                conversation,
                to=Status.HUMAN,
                event="handoff.transferred",
                agent=target,
                actor=actor,
                data={"to": "agent"},
            )
        else:
            team = Team.objects.for_tenant(tenant).filter(id=_uuid(to_team_id or "")).first()
            if team is None:
                raise BadRequest("There is no such team.")
            transition_locked(
                conversation,
                to=Status.WAITING,
                event="handoff.transferred",
                actor=actor,
                data={"to": "team", "team": team.name},
                context={"team_id": team.id},
            )
    handoff = Handoff.objects.filter(conversation_id=conversation.id).order_by("-created_at").first()
    assert handoff is not None
    return handoff


def conversation_hand_back(*, tenant: Tenant, conversation_id: uuid.UUID | str, actor: User) -> Conversation:
    """The agent gives the conversation back to the assistant, which answers the customer's next message."""
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=_uuid(conversation_id), tenant_id=tenant.id)
        _owner_or_admin(tenant, conversation, actor, allow_waiting=True)
        transition_locked(conversation, to=Status.ASSISTANT, event="handoff.returned", actor=actor)
    return conversation


def conversation_resolve(*, tenant: Tenant, conversation_id: uuid.UUID | str, actor: User) -> Conversation:
    """Closes the episode; the customer is asked to rate it. Writing again starts a new one."""
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=_uuid(conversation_id), tenant_id=tenant.id)
        if conversation.status == Status.RESOLVED:
            raise Conflict("This conversation is resolved already.")
        if conversation.status == Status.HUMAN:
            _owner_or_admin(tenant, conversation, actor)
        transition_locked(
            conversation, to=Status.RESOLVED, event="conversation.resolved", actor=actor, data={"csat": True}
        )
        ticket = Ticket.objects.filter(
            conversation=conversation, status__in=[Ticket.Status.OPEN, Ticket.Status.ANSWERED]
        ).first()
        if ticket is not None:
            ticket.status = Ticket.Status.CLOSED
            ticket.save(update_fields=["status", "updated_at"])
    return conversation


def _owner_or_admin(
    tenant: Tenant, conversation: Conversation, actor: User, *, allow_waiting: bool = False
) -> None:
    if conversation.status == Status.HUMAN:
        if conversation.agent_id == actor.id or _is_admin(tenant, actor):
            return
        raise Forbidden(
            f"{staff_name(conversation.agent)} has this conversation; only they or an admin can do that."
        )
    if conversation.status == Status.WAITING and allow_waiting:
        return
    raise Conflict(_holder_text(conversation))


def _holder_text(conversation: Conversation) -> str:
    if conversation.status == Status.HUMAN:
        return f"{staff_name(conversation.agent)} has this conversation."
    if conversation.status == Status.RESOLVED:
        return "This conversation is resolved."
    if conversation.status == Status.WAITING:
        return "This conversation is waiting in the queue: claim it first."
    return "The assistant has this conversation: take it over first."


# ---- replies and notes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentReply:
    message: Message
    seq: int
    created: bool


def agent_reply(
    *, tenant: Tenant, conversation_id: uuid.UUID | str, agent: User, text: str, client_msg_id: str
) -> AgentReply:
    """The owning agent's message to the customer: stored once per client_msg_id, pushed to the widget
    after commit, and emailed when the customer asked to be answered by email."""
    body = text.strip()
    if not body:
        raise BadRequest("The reply is empty.")
    if len(body) > MAX_REPLY_CHARS:
        raise BadRequest(f"Replies are limited to {MAX_REPLY_CHARS} characters; this one has {len(body)}.")
    if not client_msg_id or len(client_msg_id) > 56:
        raise BadRequest("client_msg_id must be 1 to 56 characters.")
    key = f"agent:{client_msg_id}"
    redacted = pii_redact(body)  # the assistant's memory after a hand back sees only this
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=_uuid(conversation_id), tenant_id=tenant.id)
        existing = Message.objects.filter(conversation=conversation, client_msg_id=key).first()
        if existing is not None:
            if existing.author_id != agent.id:
                raise Conflict("That message id was used by someone else.")
            seq = conversation.events.filter(message=existing).values_list("seq", flat=True).first() or 0
            return AgentReply(message=existing, seq=seq, created=False)
        if conversation.status != Status.HUMAN or conversation.agent_id != agent.id:
            raise Conflict(
                _holder_text(conversation) if conversation.agent_id != agent.id else "Claim it first."
            )
        conversation.last_message_at = timezone.now()
        message = Message.objects.create(
            tenant=tenant,
            conversation=conversation,
            role=Message.Role.AGENT,
            author=agent,
            client_msg_id=key,
            turn=conversation.turn,
            text=body,
            text_redacted=str(redacted),
            via=conversation.channel,
        )
        event = event_append(conversation, "agent.message", message=message)
        # A channel that does not stream (email, messaging) sends it after commit (channels.md, "Outbound").
        delivery = delivery_queue(message=message, conversation=conversation)
        Handoff.objects.filter(
            conversation=conversation, status=Handoff.Status.CLAIMED, first_reply_at__isnull=True
        ).update(first_reply_at=timezone.now())
        ticket = Ticket.objects.filter(conversation=conversation).exclude(status=Ticket.Status.CLOSED).first()
        if ticket is not None and delivery is None:
            message_id = message.id
            transaction.on_commit(lambda: _email_enqueue(message_id))
    return AgentReply(message=message, seq=event.seq, created=True)


def _email_enqueue(message_id: uuid.UUID) -> None:
    try:
        current_app.send_task(TASKS + "ticket_reply_send", args=[str(message_id)])
    except Exception as exc:
        logger.error("email of reply %s not queued: %s", message_id, exc.__class__.__name__)


def note_add(*, tenant: Tenant, conversation_id: uuid.UUID | str, author: User, text: str) -> Note:
    """A private note for colleagues; the customer never sees it."""
    body = text.strip()
    if not body:
        raise BadRequest("The note is empty.")
    if len(body) > MAX_NOTE_CHARS:
        raise BadRequest(f"Notes are limited to {MAX_NOTE_CHARS} characters.")
    conversation = Conversation.objects.for_tenant(tenant).filter(id=_uuid(conversation_id)).first()
    if conversation is None:
        raise NotFound("There is no such conversation.")
    with transaction.atomic():
        note = Note.objects.create(tenant=tenant, conversation=conversation, author=author, text=body)
        from apps.handoff.selectors import note_render

        note_view = event_types.Note.model_validate(note_render(note))
        added = event_types.NoteAdded(conversation_id=str(conversation.id), note=note_view)
        payload = added.payload()
        transaction.on_commit(lambda: staff_publish(tenant.id, payload, stream=StaffStream.AGENT))
    return note


# ---- presence ----------------------------------------------------------------------------------------------


def presence_connect(*, tenant: Tenant, user: User) -> Presence:
    presence, _ = Presence.objects.get_or_create(tenant=tenant, user=user)
    Presence.objects.filter(id=presence.id).update(sockets=F("sockets") + 1, last_seen_at=timezone.now())
    presence.refresh_from_db()
    _presence_publish(tenant, user, presence)
    return presence


def presence_disconnect(*, tenant: Tenant, user: User) -> None:
    Presence.objects.filter(tenant=tenant, user=user).update(sockets=Greatest(F("sockets") - 1, 0))
    presence = Presence.objects.filter(tenant=tenant, user=user).first()
    if presence is not None:
        _presence_publish(tenant, user, presence)


def presence_seen(*, tenant: Tenant, user: User) -> None:
    Presence.objects.filter(tenant=tenant, user=user).update(last_seen_at=timezone.now())


def presence_set(
    *,
    tenant: Tenant,
    user: User,
    status: str | None = None,
    capacity: int | None = None,
    actor: User | None = None,
) -> Presence:
    """An agent sets their own status; only an admin sets capacities (1 to 20), their own included."""
    if status is not None and status not in Presence.Status.values:
        raise BadRequest("Status must be online, away or offline.")
    if capacity is not None:
        if actor is not None and not _is_admin(tenant, actor):
            raise Forbidden("Only an admin can set agents' capacity.")
        if not 1 <= capacity <= 20:
            raise BadRequest("Capacity goes from 1 to 20 conversations.")
    presence, _ = Presence.objects.get_or_create(tenant=tenant, user=user)
    fields = ["updated_at"]
    if status is not None:
        presence.status = status
        fields.append("status")
    if capacity is not None:
        presence.capacity = capacity
        fields.append("capacity")
    presence.save(update_fields=fields)
    _presence_publish(tenant, user, presence)
    return presence


def _presence_publish(tenant: Tenant, user: User, presence: Presence) -> None:
    changed = event_types.PresenceChanged.model_validate({"user_id": user.id, "status": presence.status})
    payload = changed.payload()
    transaction.on_commit(lambda: staff_publish(tenant.id, payload, stream=StaffStream.AGENT))


# ---- company settings --------------------------------------------------------------------------------------

_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
_END_OF_DAY = "24:00"  # allowed as the end of an interval only: open until midnight


def handoff_settings_update(
    *,
    tenant: Tenant,
    timezone_name: str | None = None,
    hours: dict[str, list[list[str]]] | None = None,
    escalate_after_seconds: int | None = None,
    default_capacity: int | None = None,
) -> HandoffSettings:
    row = settings_for(tenant)
    fields = ["updated_at"]
    if timezone_name is not None:
        try:
            zoneinfo.ZoneInfo(timezone_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise BadRequest(f"{timezone_name!r} is not a time zone (try Europe/Berlin).") from None
        row.timezone = timezone_name
        fields.append("timezone")
    if hours is not None:
        row.hours = _hours_valid(hours)
        fields.append("hours")
    if escalate_after_seconds is not None:
        if not 30 <= escalate_after_seconds <= 86400:
            raise BadRequest("Escalate after 30 seconds to 24 hours.")
        row.escalate_after_seconds = escalate_after_seconds
        fields.append("escalate_after_seconds")
    if default_capacity is not None:
        if not 1 <= default_capacity <= 20:
            raise BadRequest("Capacity goes from 1 to 20 conversations.")
        row.default_capacity = default_capacity
        fields.append("default_capacity")
    row.save(update_fields=fields)
    return row


def _hours_valid(hours: dict[str, Any]) -> dict[str, list[list[str]]]:
    if not isinstance(hours, dict) or set(hours) - set(DAYS):
        raise BadRequest(f"Hours are given per day: {', '.join(DAYS)}.")
    clean: dict[str, list[list[str]]] = {}
    for day in DAYS:
        spans = hours.get(day, [])
        if not isinstance(spans, list):
            raise BadRequest(f"{day}: a list of [start, end] pairs.")
        out = []
        for span in spans:
            if not (
                isinstance(span, list)
                and len(span) == 2
                and all(isinstance(t, str) for t in span)
                and _TIME.match(span[0])
                and (_TIME.match(span[1]) or span[1] == _END_OF_DAY)
            ):
                raise BadRequest(f'{day}: each interval is ["HH:MM", "HH:MM"].')
            if span[0] >= span[1]:
                raise BadRequest(f"{day}: {span[0]}–{span[1]} ends before it starts.")  # noqa: RUF001
            out.append([span[0], span[1]])
        clean[day] = sorted(out)
    return clean


def handoff_rule_create(
    *, tenant: Tenant, kind: str, value: str, priority: int = 0, team_id: uuid.UUID | str | None = None
) -> HandoffRule:
    if kind not in HandoffRule.Kind.values:
        raise BadRequest("A rule is a topic or a tier.")
    value = value.strip()
    if not value or len(value) > 500:
        raise BadRequest("Give the rule's words (topic) or tier name, up to 500 characters.")
    if not 0 <= priority <= 2:
        raise BadRequest("Priority goes from 0 (normal) to 2 (urgent).")
    team = None
    if team_id:
        team = Team.objects.for_tenant(tenant).filter(id=_uuid(team_id)).first()
        if team is None:
            raise BadRequest("There is no such team.")
    return HandoffRule.objects.create(tenant=tenant, kind=kind, value=value, priority=priority, team=team)


def handoff_rule_delete(*, tenant: Tenant, rule_id: uuid.UUID | str) -> None:
    deleted, _ = HandoffRule.objects.for_tenant(tenant).filter(id=_uuid(rule_id)).delete()
    if not deleted:
        raise NotFound("There is no such rule.")


def team_create(*, tenant: Tenant, name: str, member_ids: list[int] | None = None) -> Team:
    name = name.strip()
    if not name or len(name) > 100:
        raise BadRequest("A team needs a name of up to 100 characters.")
    try:
        with transaction.atomic():
            team = Team.objects.create(tenant=tenant, name=name)
    except IntegrityError:
        raise Conflict(f"There is a team called {name} already.") from None
    if member_ids:
        members = [u for u in User.objects.filter(id__in=member_ids) if _is_agent(tenant, u)]
        team.members.set(members)
    return team


def canned_response_save(
    *, tenant: Tenant, title: str, shortcut: str, body: str, canned: CannedResponse | None = None
) -> CannedResponse:
    title, shortcut, body = title.strip(), shortcut.strip().lstrip("/").lower(), body.strip()
    if not title or not body:
        raise BadRequest("A canned response needs a title and a text.")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", shortcut):
        raise BadRequest("Shortcuts are letters, digits, - and _ (up to 40).")
    if len(body) > 4000:
        raise BadRequest("Canned responses are limited to 4000 characters.")
    row = canned or CannedResponse(tenant=tenant)
    row.title, row.shortcut, row.body = title[:100], shortcut, body
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        raise Conflict(f"/{shortcut} is taken already.") from None
    return row


def canned_response_delete(*, canned: CannedResponse) -> None:
    canned.delete()


def case_file_request(*, tenant: Tenant, handoff_id: uuid.UUID | str) -> Handoff:
    """Builds the case file again (from the console), e.g. after new messages."""
    handoff = Handoff.objects.for_tenant(tenant).filter(id=_uuid(handoff_id)).first()
    if handoff is None:
        raise NotFound("There is no such handoff.")
    Handoff.objects.filter(id=handoff.id).update(case_file_status=Handoff.CaseFileStatus.PENDING)
    hid = str(handoff.id)
    transaction.on_commit(lambda: current_app.send_task(TASKS + "case_file_build", args=[hid]))
    handoff.refresh_from_db()
    return handoff


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None
