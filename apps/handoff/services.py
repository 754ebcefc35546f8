"""Writes of the human side: claim, take over, transfer, hand back, resolve, reply, notes, presence,
settings, escalation and the email path (docs/architecture/handoff.md).

Staff writes are audited actions (apps.handoff.actions for ownership, apps.handoff.reply_actions for replies
and notes, apps.handoff.settings_actions for the company's setup): each has its permission check, its
change and its audit row in one transaction.
The functions here keep their names and arguments, run those actions with the acting `actor` (None: the
system), and hold the writes that are not audited (presence, the case file's rebuild). MAX_*_CHARS and
AgentReply are re-exported from apps.handoff.reply_actions for the APIs and consumers.

Ownership changes go through apps.conversations.ownership (the conversation's row lock serialises them:
of two agents claiming at once, exactly one finds the conversation waiting). The handoff row follows in
the same transaction (listeners.on_transition).
"""

from __future__ import annotations

import uuid

from celery import current_app
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.accounts.models import Tenant, User
from apps.conversations.models import Conversation
from apps.core import event_types
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.core.realtime import StaffStream, staff_publish
from apps.handoff import actions, reply_actions, settings_actions
from apps.handoff.actions import TASKS, is_admin, uuid_or_404
from apps.handoff.models import CannedResponse, Handoff, HandoffRule, HandoffSettings, Note, Presence, Team
from apps.handoff.reply_actions import MAX_NOTE_CHARS as MAX_NOTE_CHARS
from apps.handoff.reply_actions import MAX_REPLY_CHARS as MAX_REPLY_CHARS
from apps.handoff.reply_actions import AgentReply

# ---- ownership ---------------------------------------------------------------------------------------------


def handoff_claim(*, tenant: Tenant, handoff_id: uuid.UUID | str, agent: User) -> Handoff:
    """An agent takes a waiting handoff. Of two agents claiming at once, exactly one wins; the other gets
    a Conflict naming who has it."""
    return actions.HandoffClaim(tenant=tenant, actor=agent, handoff_id=handoff_id).execute()


def conversation_take_over(*, tenant: Tenant, conversation_id: uuid.UUID | str, agent: User) -> Handoff:
    """An agent takes a conversation straight from the assistant (or from the queue); an answer being
    written stops and is marked interrupted."""
    return actions.ConversationTakeOver(tenant=tenant, actor=agent, conversation_id=conversation_id).execute()


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
    return actions.ConversationTransfer(
        tenant=tenant,
        actor=actor,
        conversation_id=conversation_id,
        to_agent_id=to_agent_id,
        to_team_id=to_team_id,
    ).execute()


def conversation_hand_back(*, tenant: Tenant, conversation_id: uuid.UUID | str, actor: User) -> Conversation:
    """The agent gives the conversation back to the assistant, which answers the customer's next message."""
    return actions.ConversationHandBack(tenant=tenant, actor=actor, conversation_id=conversation_id).execute()


def conversation_resolve(*, tenant: Tenant, conversation_id: uuid.UUID | str, actor: User) -> Conversation:
    """Closes the episode; the customer is asked to rate it. Writing again starts a new one."""
    return actions.ConversationResolve(tenant=tenant, actor=actor, conversation_id=conversation_id).execute()


# ---- replies and notes -------------------------------------------------------------------------------------


def agent_reply(
    *, tenant: Tenant, conversation_id: uuid.UUID | str, agent: User, text: str, client_msg_id: str
) -> AgentReply:
    """The owning agent's message to the customer: stored once per client_msg_id, pushed to the widget
    after commit, and emailed when the customer asked to be answered by email."""
    return reply_actions.AgentReplySend(
        tenant=tenant, actor=agent, conversation_id=conversation_id, text=text, client_msg_id=client_msg_id
    ).execute()


def note_add(*, tenant: Tenant, conversation_id: uuid.UUID | str, author: User, text: str) -> Note:
    """A private note for colleagues; the customer never sees it."""
    return reply_actions.NoteAdd(
        tenant=tenant, actor=author, conversation_id=conversation_id, text=text
    ).execute()


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
        if actor is not None and not is_admin(tenant, actor):
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


def handoff_settings_update(
    *,
    tenant: Tenant,
    timezone_name: str | None = None,
    hours: dict[str, list[list[str]]] | None = None,
    escalate_after_seconds: int | None = None,
    default_capacity: int | None = None,
    actor: User | None = None,
) -> HandoffSettings:
    return settings_actions.HandoffSettingsUpdate(
        tenant=tenant,
        actor=actor,
        timezone_name=timezone_name,
        hours=hours,
        escalate_after_seconds=escalate_after_seconds,
        default_capacity=default_capacity,
    ).execute()


def handoff_rule_create(
    *,
    tenant: Tenant,
    kind: str,
    value: str,
    priority: int = 0,
    team_id: uuid.UUID | str | None = None,
    actor: User | None = None,
) -> HandoffRule:
    return settings_actions.HandoffRuleCreate(
        tenant=tenant, actor=actor, kind=kind, value=value, priority=priority, team_id=team_id
    ).execute()


def handoff_rule_delete(*, tenant: Tenant, rule_id: uuid.UUID | str, actor: User | None = None) -> None:
    settings_actions.HandoffRuleDelete(tenant=tenant, actor=actor, rule_id=rule_id).execute()


def team_create(
    *, tenant: Tenant, name: str, member_ids: list[int] | None = None, actor: User | None = None
) -> Team:
    return settings_actions.TeamCreate(tenant=tenant, actor=actor, name=name, member_ids=member_ids).execute()


def canned_response_save(
    *,
    tenant: Tenant,
    title: str,
    shortcut: str,
    body: str,
    canned: CannedResponse | None = None,
    actor: User | None = None,
) -> CannedResponse:
    return settings_actions.CannedResponseSave(
        tenant=tenant, actor=actor, title=title, shortcut=shortcut, body=body, canned=canned
    ).execute()


def canned_response_delete(*, canned: CannedResponse, actor: User | None = None) -> None:
    settings_actions.CannedResponseDelete(tenant=canned.tenant, actor=actor, canned=canned).execute()


def case_file_request(*, tenant: Tenant, handoff_id: uuid.UUID | str) -> Handoff:
    """Builds the case file again (from the console), e.g. after new messages."""
    handoff = Handoff.objects.for_tenant(tenant).filter(id=uuid_or_404(handoff_id)).first()
    if handoff is None:
        raise NotFound("There is no such handoff.")
    Handoff.objects.filter(id=handoff.id).update(case_file_status=Handoff.CaseFileStatus.PENDING)
    hid = str(handoff.id)
    transaction.on_commit(lambda: current_app.send_task(TASKS + "case_file_build", args=[hid]))
    handoff.refresh_from_db()
    return handoff
