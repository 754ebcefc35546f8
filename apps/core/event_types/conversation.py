"""The stored events of a conversation's numbered log (apps.conversations.events), as a client sees them.

Each carries `seq` (strictly increasing per conversation, from 1) and `at`; a client applies each once, in
order, and fetches any gap by `seq`. The widget receives them live and from `GET /api/widget/v1/events`;
the console receives them in `timeline` frames with the staff rendering of messages.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from apps.core.event_types.common import AgentMessage, AssistantMessage, CustomerMessage, Event, Note, Owner


class Stored(Event):
    seq: int = Field(description="The event's number in the conversation's log (1, 2, …).")
    at: str = Field(description="When it was stored (ISO 8601).")


class MessageCreated(Stored):
    """The customer's message was stored."""

    type: Literal["message.created"] = "message.created"
    message: CustomerMessage = Field(description="The message.")


class AssistantStarted(Stored):
    """The assistant started an answer to the conversation's turn `turn`."""

    type: Literal["assistant.started"] = "assistant.started"
    message_id: str = Field(description="The answer being written (UUID); its deltas carry it.")
    turn: int = Field(description="The customer turn it answers.")


class AssistantCompleted(Stored):
    """An answer is complete: its stored text replaces the streamed one."""

    type: Literal["assistant.completed"] = "assistant.completed"
    message: AssistantMessage = Field(description="The answer as stored.")


class AssistantInterrupted(Stored):
    """An answer stopped before it was complete; what was written is kept."""

    type: Literal["assistant.interrupted"] = "assistant.interrupted"
    message: AssistantMessage = Field(description="The answer with the text shown so far.")
    code: str = Field(description="Why: interrupted.")
    retryable: bool = Field(description="False when a person took over; else the customer may try again.")
    by: Literal["handoff"] | None = Field(default=None, description='"handoff" when a person took over.')


class AssistantFailed(Stored):
    """An answer could not be written (the model was unreachable, overloaded…)."""

    type: Literal["assistant.failed"] = "assistant.failed"
    message: AssistantMessage = Field(description="The answer, with empty text.")
    code: str = Field(description="llm_unavailable, temporarily_unavailable or rate_limited.")
    retryable: bool = Field(description="Whether trying again may work.")


class AssistantSuperseded(Stored):
    """A newer customer message replaced this answer while it was being written."""

    type: Literal["assistant.superseded"] = "assistant.superseded"
    message_id: str = Field(description="The answer dropped (UUID).")


class OwnerChange(Stored):
    owner: Owner = Field(description="Who has the conversation from now on.")


class HandoffRequested(OwnerChange):
    """The conversation went to the queue for a person."""

    type: Literal["handoff.requested"] = "handoff.requested"
    reason: str | None = Field(default=None, description="Why, a category (docs/architecture/handoff.md).")


class HandoffClaimed(OwnerChange):
    """An agent claimed the conversation (from the queue, or straight from the assistant)."""

    type: Literal["handoff.claimed"] = "handoff.claimed"
    agent: str = Field(description="The agent's first name.")
    reason: str | None = Field(
        default=None, description="agent_takeover when taken straight from the assistant."
    )


class HandoffTransferred(OwnerChange):
    """The conversation moved to another agent, or back to the queue for a team."""

    type: Literal["handoff.transferred"] = "handoff.transferred"
    to: Literal["agent", "team"] = Field(description="Transferred to an agent or to a team.")
    agent: str | None = Field(
        default=None, description="The new agent's first name, for a transfer to an agent."
    )
    team: str | None = Field(default=None, description="The team's name, for a transfer to a team.")


class HandoffReturned(OwnerChange):
    """An agent gave the conversation back to the assistant."""

    type: Literal["handoff.returned"] = "handoff.returned"


class HandoffCancelled(OwnerChange):
    """The customer stopped waiting for a person: back with the assistant."""

    type: Literal["handoff.cancelled"] = "handoff.cancelled"


class ConversationResolved(OwnerChange):
    """The episode is closed."""

    type: Literal["conversation.resolved"] = "conversation.resolved"
    csat: bool | None = Field(
        default=None, description="True: ask the customer for a rating (an agent's resolution always does)."
    )


class ConversationReopened(OwnerChange):
    """The customer wrote again after a resolution: a new episode with the assistant."""

    type: Literal["conversation.reopened"] = "conversation.reopened"


class HandoffStatus(Stored):
    """What happens next for a customer waiting for a person: a place in the queue, or nobody live."""

    type: Literal["handoff.status"] = "handoff.status"
    handoff_id: str = Field(description="The handoff (UUID).")
    state: Literal["queued", "offline"] = Field(description="queued: agents are live; offline: nobody is.")
    position: int | None = Field(default=None, description="queued: the place in line (1 = next).")
    expected_wait_seconds: int | None = Field(default=None, description="queued: about how long, when known.")
    why: Literal["closed", "no_agents"] | None = Field(
        default=None, description="offline: outside hours, or nobody."
    )
    hours: str | None = Field(default=None, description="offline: the opening hours, as a sentence.")
    next_open: str | None = Field(
        default=None, description="offline: when agents are back (ISO 8601), when known."
    )
    ask_email: bool | None = Field(
        default=None, description="offline: true when the widget should ask for an email."
    )
    ticket: int | None = Field(
        default=None, description="offline: the ticket opened, when an email was known."
    )
    email: str | None = Field(default=None, description="offline: the masked email the ticket answers.")


class HandoffEmailSaved(Stored):
    """The customer left an email to be answered at."""

    type: Literal["handoff.email_saved"] = "handoff.email_saved"
    email: str = Field(description="The address, masked (m***@example.com).")


class HandoffTicket(Stored):
    """A ticket was opened (or reopened) for the conversation."""

    type: Literal["handoff.ticket"] = "handoff.ticket"
    ticket: int = Field(description="The ticket's number.")
    email: str = Field(description="The masked address replies go to.")


class AgentMessageCreated(Stored):
    """An agent replied."""

    type: Literal["agent.message"] = "agent.message"
    message: AgentMessage = Field(description="The reply.")


class CsatRecorded(Stored):
    """The customer rated the episode."""

    type: Literal["csat.recorded"] = "csat.recorded"
    score: int = Field(description="1 to 5.")


class SessionEnded(Stored):
    """The visitor session that held the conversation ended; its token opens it no more."""

    type: Literal["session.ended"] = "session.ended"
    why: Literal["signed_in", "ended"] = Field(description="signed_in: the guest signed in; ended: logout().")


class ConversationNotice(Stored):
    """Something the customer is told about the conversation itself, not an answer: e.g. it moved back to
    the company's usual model when a model being tried was stopped (apps/releases/canary.py)."""

    type: Literal["conversation.notice"] = "conversation.notice"
    code: Literal["model_changed"] = Field(description="What happened: model_changed.")
    text: str = Field(description="The sentence the customer is shown.")


class ToolRun(Stored):
    """One change of a tool run's state; the latest event of a `run_id` is its state."""

    type: Literal["tool.run"] = "tool.run"
    run_id: str = Field(description="The run (UUID).")
    tool: str = Field(description="The tool's name.")
    label: str = Field(description="What the tool is called for people.")
    status: str = Field(description="refused, awaiting_approval, rejected, queued, running, done or failed.")
    approval: str = Field(description="Who must approve it: none, customer or agent.")
    proposal: str = Field(description="For a change, what it will do; empty otherwise.")
    summary: str = Field(description="The sentence the customer is told.")
    error_code: str = Field(description="Why it failed; empty otherwise.")
    decided_by_customer: bool = Field(description="True when the customer approved or rejected it.")


class ToolResult(Stored):
    """A tool's result that came after the answer stopped waiting; its `assistant.completed` follows."""

    type: Literal["tool.result"] = "tool.result"
    run_id: str = Field(description="The run (UUID).")
    message: AssistantMessage = Field(description="The message carrying the result.")


ConversationEvent = Annotated[
    MessageCreated
    | AssistantStarted
    | AssistantCompleted
    | AssistantInterrupted
    | AssistantFailed
    | AssistantSuperseded
    | HandoffRequested
    | HandoffClaimed
    | HandoffTransferred
    | HandoffReturned
    | HandoffCancelled
    | ConversationResolved
    | ConversationReopened
    | HandoffStatus
    | HandoffEmailSaved
    | HandoffTicket
    | AgentMessageCreated
    | CsatRecorded
    | SessionEnded
    | ConversationNotice
    | ToolRun
    | ToolResult,
    Field(discriminator="type"),
]

# What a console's `timeline` frame lists: the conversation's events, and its notes in time order.
TimelineItem = Annotated[
    MessageCreated
    | AssistantStarted
    | AssistantCompleted
    | AssistantInterrupted
    | AssistantFailed
    | AssistantSuperseded
    | HandoffRequested
    | HandoffClaimed
    | HandoffTransferred
    | HandoffReturned
    | HandoffCancelled
    | ConversationResolved
    | ConversationReopened
    | HandoffStatus
    | HandoffEmailSaved
    | HandoffTicket
    | AgentMessageCreated
    | CsatRecorded
    | SessionEnded
    | ConversationNotice
    | ToolRun
    | ToolResult
    | Note,
    Field(discriminator="type"),
]
