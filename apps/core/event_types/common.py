"""The base of every event model, and the parts events share: messages, citations, notes, errors.

Serialisation policy (one rule for every event): a field is either *required*, always present (its type
says whether it may be `null`: `team: str | None` is sent as `null` when there is none), or *optional*,
declared with a default of `None` and then left out of the frame when it does not apply, never sent as
`null`. So a client tests `"by" in event` or `event.by`, and reads `null` only where the schema allows it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

# The states of the conversation's owner (apps.conversations.models.Conversation.Status).
Owner = Literal["assistant", "waiting", "human", "resolved"]
# The states of a message (apps.conversations.models.Message.Status).
MessageStatus = Literal["streaming", "complete", "interrupted", "failed", "superseded"]


def _type_first_and_required(schema: dict[str, Any]) -> None:
    """`type` has its one value as a default (so builders need not repeat it), yet every frame has it."""
    properties = schema.get("properties", {})
    if "type" in properties:
        kind = {k: v for k, v in properties["type"].items() if k != "default"}
        schema["properties"] = {"type": kind, **{k: v for k, v in properties.items() if k != "type"}}
        schema["required"] = ["type", *[name for name in schema.get("required", []) if name != "type"]]


class Event(BaseModel):
    """Base of every model here: unknown fields are refused, so a frame carries exactly what is declared."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_type_first_and_required)

    @model_serializer(mode="wrap")
    def _drop_unset_optionals(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name, field in type(self).model_fields.items():
                if not field.is_required() and data.get(name, 0) is None:
                    del data[name]
        return data

    def payload(self) -> dict[str, Any]:
        """The frame as sent: JSON-ready, optional fields that do not apply left out."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data


class Citation(Event):
    """One source of an answer's quoted evidence."""

    n: int = Field(description="Its number in the answer's text: [1], [2]…")
    chunk_id: str = Field(description="The passage (UUID); the widget opens it by this id.")
    document_id: str = Field(description="The document the passage belongs to (UUID).")
    title: str = Field(description="The document's title.")
    version: int = Field(description="The published version of the document the passage was read from.")
    section: str = Field(description='Its section path, joined with " > "; empty when the document has none.')
    page: int | None = Field(description="Its page in a PDF; null for other formats.")
    inferred: bool = Field(
        description="True when the number was added by matching, not written by the model."
    )
    quoted: bool | None = Field(
        default=None,
        description="True when the answer quotes the passage's own sentences (evidence-first answers).",
    )


class CustomerMessage(Event):
    """A customer's message. The customer sees their own words; staff without PII permission the redacted
    form (then `redacted` is true)."""

    id: str = Field(description="The message (UUID).")
    role: Literal["customer"] = Field(description="Who wrote it.")
    text: str = Field(description="What they wrote (redacted for staff without PII permission).")
    created_at: str = Field(description="When it was stored (ISO 8601).")
    client_msg_id: str = Field(description="The sending client's idempotency key; empty when none was sent.")
    via: str | None = Field(
        default=None,
        description="The channel it came by (`email`, `messaging`…) when not the widget, else absent.",
    )
    redacted: bool | None = Field(
        default=None, description="Staff only: true when `text` is the redacted form."
    )


class AssistantMessage(Event):
    """An answer of the assistant, as stored."""

    id: str = Field(description="The message (UUID).")
    role: Literal["assistant"] = Field(description="Who wrote it.")
    text: str = Field(description="The answer (what was shown so far when it was interrupted).")
    created_at: str = Field(description="When it was started (ISO 8601).")
    status: MessageStatus = Field(description="The answer's state.")
    citations: list[Citation] = Field(description="The sources of its quoted evidence.")
    abstained: bool = Field(description="True when the knowledge did not cover the question.")
    offer_handoff: bool = Field(description='True when the widget offers "talk to a person" under it.')


class AgentMessage(Event):
    """An agent's reply."""

    id: str = Field(description="The message (UUID).")
    role: Literal["agent"] = Field(description="Who wrote it.")
    text: str = Field(description="What the agent wrote.")
    created_at: str = Field(description="When it was stored (ISO 8601).")
    status: MessageStatus = Field(description="Always complete.")
    author: str = Field(description="The agent's first name: all the customer sees of them.")
    author_full: str | None = Field(default=None, description="Staff only: the agent's full name.")


MessageView = Annotated[CustomerMessage | AssistantMessage | AgentMessage, Field(discriminator="role")]


class Note(Event):
    """An agent's private note (staff only; the customer never sees it)."""

    type: Literal["note"] = Field(default="note", description="A note, not a conversation event: no `seq`.")
    id: str = Field(description="The note (UUID).")
    at: str = Field(description="When it was written (ISO 8601).")
    author: str = Field(description="Its author's full name.")
    text: str = Field(description="The note.")


class ErrorFrame(Event):
    """The error contract of CONTRACTS.md §1, on a socket."""

    type: Literal["error"] = Field(default="error", description="An error.")
    code: str = Field(description="The stable error code (bad_request, rate_limited, conflict…).")
    message: str = Field(description="One sentence for a person.")
    retryable: bool = Field(description="Whether the same frame may succeed later.")
    retry_after: int | None = Field(default=None, description="Seconds to wait first, when rate limited.")
    client_msg_id: str | None = Field(default=None, description="The frame this answers, when it had one.")


class Pong(Event):
    """The answer to a `ping`."""

    type: Literal["pong"] = Field(default="pong", description="The answer to a ping.")
    client_msg_id: str | None = Field(
        default=None, description="The ping's `client_msg_id`, when it had one."
    )
