"""Frames of the staff sockets: the agent console (`/ws/console/<slug>/`) and the staff pages
(`/ws/staff/<slug>/`), and the pushes of the staff streams (apps.core.realtime.StaffStream)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from apps.core.event_types.common import Event, Note
from apps.core.event_types.conversation import TimelineItem

PresenceStatus = Literal["online", "away", "offline"]
HandoffState = Literal["waiting", "claimed", "resolved", "returned", "cancelled"]
CaseFileStatus = Literal["pending", "ready", "failed"]
VersionStatus = Literal["queued", "parsing", "embedding", "ready", "failed"]
DeliveryStatus = Literal["queued", "sent", "delivered", "failed"]


class HandoffSummary(Event):
    """One queue row as the console shows it (no customer words: those are in the case file)."""

    id: str = Field(description="The handoff (UUID).")
    conversation_id: str = Field(description="Its conversation (UUID).")
    status: HandoffState = Field(description="The handoff's state.")
    conversation_status: Literal["assistant", "waiting", "human", "resolved"] = Field(
        description="Who has the conversation."
    )
    reason: str = Field(description="Why it went to a person, a category.")
    reason_label: str = Field(description="The reason, for people.")
    detail: str = Field(description="More about the reason, in our words (never the customer's).")
    priority: int = Field(description="0 normal, 1 high, 2 urgent, 3 escalated twice.")
    escalation_level: int = Field(description="How many times it was escalated unclaimed.")
    team: str | None = Field(description="The team it is routed to, if any.")
    team_id: str | None = Field(description="That team (UUID), if any.")
    agent_id: int | None = Field(description="The agent who has it, if any.")
    agent: str | None = Field(description="That agent's full name, if any.")
    customer: str = Field(description='The customer\'s name or id, or "Anonymous visitor".')
    verified: bool = Field(description="True for a verified customer.")
    created_at: str = Field(description="When it was queued first (ISO 8601).")
    claimed_at: str | None = Field(description="When an agent claimed it (ISO 8601), if one did.")
    waiting_seconds: int = Field(description="How long it has waited (or waited to be claimed).")
    offline: bool = Field(description="True when nobody could answer live.")
    ticket: int | None = Field(description="Its ticket's number, if one was opened.")
    case_file_status: CaseFileStatus = Field(description="Whether its case file is ready.")
    last_seq: int = Field(description="The conversation's last event `seq`.")


class TicketRef(Event):
    number: int = Field(description="The ticket's number (per company).")
    conversation_id: str = Field(description="Its conversation (UUID).")


class Delivery(Event):
    """How one message went out on a channel that does not stream (email, messaging)."""

    channel: str = Field(description="The channel's name.")
    status: DeliveryStatus = Field(description="queued, sent, delivered or failed.")
    attempts: int = Field(description="Sending attempts so far.")
    last_error: str = Field(description="The last failure, one sentence for staff; empty otherwise.")
    at: str = Field(description="When it was delivered, sent, or last changed (ISO 8601).")


class ConsoleHello(Event):
    """The console socket is open and joined the agent stream."""

    type: Literal["hello"] = "hello"
    tenant: str = Field(description="The company's slug.")
    user_id: int = Field(description="The signed-in agent.")
    roles: list[str] = Field(description="Their roles in the company, sorted.")


class StaffHello(Event):
    """The staff socket is open and joined the streams the member's roles allow."""

    type: Literal["hello"] = "hello"
    tenant: str = Field(description="The company's slug.")
    roles: list[str] = Field(description="The member's roles, sorted.")
    streams: list[Literal["agent", "knowledge"]] = Field(description="The streams joined, sorted.")


class ConsoleAck(Event):
    """An agent's reply was stored."""

    type: Literal["ack"] = "ack"
    seq: int = Field(description="Its `agent.message` event.")
    message_id: str = Field(description="The stored reply (UUID).")
    client_msg_id: str | None = Field(
        default=None, description="The reply frame's `client_msg_id`, when it had one."
    )


class PresenceSet(Event):
    """The agent's own status was saved."""

    type: Literal["presence.set"] = "presence.set"
    status: PresenceStatus = Field(description="The status now.")
    client_msg_id: str | None = Field(
        default=None, description="The frame's `client_msg_id`, when it had one."
    )


class Watching(Event):
    """The console now receives the conversation's events and stream."""

    type: Literal["watching"] = "watching"
    conversation_id: str = Field(description="The watched conversation (UUID).")
    last_seq: int = Field(description="Its last event's `seq` when watching began.")
    client_msg_id: str | None = Field(
        default=None, description="The frame's `client_msg_id`, when it had one."
    )


class Unwatched(Event):
    """The console no longer receives the conversation it watched."""

    type: Literal["unwatched"] = "unwatched"
    client_msg_id: str | None = Field(
        default=None, description="The frame's `client_msg_id`, when it had one."
    )


class Timeline(Event):
    """New events of the watched conversation, rendered for staff."""

    type: Literal["timeline"] = "timeline"
    conversation_id: str = Field(description="The watched conversation (UUID).")
    items: list[TimelineItem] = Field(description="Its events after the last one sent, in order.")


# ---- the agent stream ----


class QueueChanged(Event):
    """A handoff was created or changed state."""

    type: Literal["queue.changed"] = "queue.changed"
    handoff: HandoffSummary = Field(description="The handoff as the queue shows it.")


class ConversationActivity(Event):
    """A conversation with (or waiting for) a person has a new customer message."""

    type: Literal["conversation.activity"] = "conversation.activity"
    conversation_id: str = Field(description="The conversation (UUID).")
    seq: int = Field(description="The new event's `seq`.")
    status: Literal["assistant", "waiting", "human", "resolved"] = Field(description="Who has it.")
    agent_id: int | None = Field(description="The agent who has it, if any.")


class HandoffEscalated(Event):
    """A handoff waited unclaimed too long: its priority went up."""

    type: Literal["handoff.escalated"] = "handoff.escalated"
    handoff: HandoffSummary = Field(description="The handoff, escalated.")


class TicketOpened(Event):
    """A ticket was opened."""

    type: Literal["ticket.opened"] = "ticket.opened"
    ticket: TicketRef = Field(description="The ticket.")


class PresenceChanged(Event):
    """An agent's status or connection changed."""

    type: Literal["presence.changed"] = "presence.changed"
    user_id: int = Field(description="The agent.")
    status: PresenceStatus = Field(description="Their status.")


class NoteAdded(Event):
    """A private note was written on a conversation."""

    type: Literal["note.added"] = "note.added"
    conversation_id: str = Field(description="The conversation (UUID).")
    note: Note = Field(description="The note.")


class CaseFileReady(Event):
    """A handoff's case file was built (or could not be)."""

    type: Literal["case_file.ready"] = "case_file.ready"
    handoff_id: str = Field(description="The handoff (UUID).")
    conversation_id: str = Field(description="Its conversation (UUID).")
    status: CaseFileStatus = Field(description="ready, or failed (the console offers a rebuild).")


class DeliveryUpdated(Event):
    """A message's delivery on its channel moved on (queued, sent, delivered, failed)."""

    type: Literal["delivery.updated"] = "delivery.updated"
    conversation_id: str = Field(description="The conversation (UUID).")
    message_id: str = Field(description="The message delivered (UUID).")
    delivery: Delivery = Field(description="The delivery now.")


# ---- the knowledge stream ----


class KbVersion(Event):
    """A document version's processing moved on."""

    type: Literal["kb.version"] = "kb.version"
    document_id: str = Field(description="The document (UUID).")
    version_id: str = Field(description="The version (UUID).")
    number: int = Field(description="The version's number.")
    status: VersionStatus = Field(description="Its processing state.")
    progress: int = Field(description="0 to 100.")
    error_code: str = Field(description="Why it failed; empty otherwise.")
    error_message: str = Field(description="The failure as a sentence; empty otherwise.")
    chunk_count: int = Field(description="Its passages so far.")


class KnowledgeGap(Event):
    """The assistant could not answer a question (logged, redacted, for editors)."""

    type: Literal["knowledge.gap"] = "knowledge.gap"
    id: str = Field(description="The gap (UUID).")
