"""Frames pushed without a `seq`: a client that misses one loses nothing, the stored events carry the
final state. The stream of an answer being written, and the widget socket's own answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from apps.core.event_types.common import Citation, Event

ProgressStage = Literal["looking_up", "thinking", "tool", "composing", "queued"]


class AssistantProgress(Event):
    """What the assistant is doing before (or between) the words of an answer."""

    type: Literal["assistant.progress"] = "assistant.progress"
    message_id: str = Field(description="The answer being written (UUID).")
    stage: ProgressStage = Field(
        description="looking_up (retrieval), thinking, tool (a tool runs), composing, queued (model busy)."
    )
    text: str | None = Field(
        default=None, description='For tool and queued: what, e.g. "Checking your order…".'
    )
    conversation_id: str | None = Field(
        default=None, description="Console only: the watched conversation (UUID)."
    )


class AssistantDelta(Event):
    """The next piece of an answer being written."""

    type: Literal["assistant.delta"] = "assistant.delta"
    message_id: str = Field(description="The answer being written (UUID).")
    offset: int = Field(description="The answer's length before this piece, in UTF-16 code units.")
    text: str = Field(description="The piece.")
    conversation_id: str | None = Field(
        default=None, description="Console only: the watched conversation (UUID)."
    )


class AssistantSnapshot(Event):
    """The text so far of the answer being written, sent after a (re)connect's replay."""

    type: Literal["assistant.snapshot"] = "assistant.snapshot"
    message_id: str = Field(description="The answer being written (UUID).")
    text: str = Field(description="Every delta's text up to now.")


class AssistantCitations(Event):
    """The sources of the quoted evidence, pushed with it, before the answer completes."""

    type: Literal["assistant.citations"] = "assistant.citations"
    message_id: str = Field(description="The answer being written (UUID).")
    citations: list[Citation] = Field(description="The sources.")
    conversation_id: str | None = Field(
        default=None, description="Console only: the watched conversation (UUID)."
    )


class Welcome(Event):
    """The widget socket's answer to `hello`; the stored events after `last_seq` follow."""

    type: Literal["welcome"] = "welcome"
    client_msg_id: str = Field(description="The hello frame's `client_msg_id`.")
    conversation_id: str = Field(description="The session's conversation (UUID).")
    verified: bool = Field(description="True for a verified customer's session.")
    last_seq: int = Field(description="The `seq` of the last event the replay that follows sends.")


class WidgetAck(Event):
    """The widget socket took a frame."""

    type: Literal["ack"] = "ack"
    client_msg_id: str = Field(description="The frame acknowledged.")
    message_id: str | None = Field(default=None, description="For message: the stored message (UUID).")
    seq: int | None = Field(
        default=None, description="The event the frame stored; absent when nothing changed."
    )
