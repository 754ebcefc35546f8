"""Every event a client sees, one pydantic model per `type` (after Zulip's `zerver/lib/event_types.py`).

Code that sends an event builds it with its model (`Welcome(...).payload()`), so a field that is missing,
misspelt or of the wrong type fails where it is written; stored conversation events are validated when
they are rendered (`stored_event_payload`). `manage.py events_schema` exports the models as JSON Schema
(docs/architecture/events.schema.json), which the documentation and the browser code are tested against
(docs/architecture/realtime.md, "Event reference").

Each socket is a *surface* with its own set of frames, discriminated on `type`: a `type` names one model
per surface (the console's `hello` and `ack` differ from the staff socket's and the widget's).
The serialisation policy is in `common.py`: optional fields are left out, never sent as null.
"""

from __future__ import annotations

import copy
import logging
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, TypeAdapter, ValidationError

from apps.core.event_types.common import (
    AgentMessage,
    AssistantMessage,
    Citation,
    CustomerMessage,
    ErrorFrame,
    Event,
    Note,
    Pong,
)
from apps.core.event_types.conversation import (
    AgentMessageCreated,
    AssistantCompleted,
    AssistantFailed,
    AssistantInterrupted,
    AssistantStarted,
    AssistantSuperseded,
    ConversationEvent,
    ConversationNotice,
    ConversationReopened,
    ConversationResolved,
    CsatRecorded,
    HandoffCancelled,
    HandoffClaimed,
    HandoffEmailSaved,
    HandoffRequested,
    HandoffReturned,
    HandoffStatus,
    HandoffTicket,
    HandoffTransferred,
    MessageCreated,
    SessionEnded,
    TimelineItem,
    ToolResult,
    ToolRun,
)
from apps.core.event_types.pushed import (
    AssistantCitations,
    AssistantDelta,
    AssistantProgress,
    AssistantSnapshot,
    ProgressStage,
    Welcome,
    WidgetAck,
)
from apps.core.event_types.staff import (
    CaseFileReady,
    ConsoleAck,
    ConsoleHello,
    ConversationActivity,
    Delivery,
    DeliveryUpdated,
    HandoffEscalated,
    HandoffSummary,
    KbVersion,
    KnowledgeGap,
    NoteAdded,
    PresenceChanged,
    PresenceSet,
    QueueChanged,
    StaffHello,
    TicketOpened,
    TicketRef,
    Timeline,
    Unwatched,
    Watching,
)

__all__ = [
    "REGISTRY",
    "SURFACES",
    "AgentMessage",
    "AgentMessageCreated",
    "AssistantCitations",
    "AssistantCompleted",
    "AssistantDelta",
    "AssistantFailed",
    "AssistantInterrupted",
    "AssistantMessage",
    "AssistantProgress",
    "AssistantSnapshot",
    "AssistantStarted",
    "AssistantSuperseded",
    "CaseFileReady",
    "Citation",
    "ConsoleAck",
    "ConsoleHello",
    "ConversationActivity",
    "ConversationEvent",
    "ConversationNotice",
    "ConversationReopened",
    "ConversationResolved",
    "CsatRecorded",
    "CustomerMessage",
    "Delivery",
    "DeliveryUpdated",
    "ErrorFrame",
    "Event",
    "HandoffCancelled",
    "HandoffClaimed",
    "HandoffEmailSaved",
    "HandoffEscalated",
    "HandoffRequested",
    "HandoffReturned",
    "HandoffStatus",
    "HandoffSummary",
    "HandoffTicket",
    "HandoffTransferred",
    "KbVersion",
    "KnowledgeGap",
    "MessageCreated",
    "Note",
    "NoteAdded",
    "Pong",
    "PresenceChanged",
    "PresenceSet",
    "ProgressStage",
    "QueueChanged",
    "SessionEnded",
    "StaffHello",
    "Surface",
    "TicketOpened",
    "TicketRef",
    "Timeline",
    "TimelineItem",
    "ToolResult",
    "ToolRun",
    "Unwatched",
    "Watching",
    "Welcome",
    "WidgetAck",
    "event_build",
    "events_schema",
    "frame_validate",
    "stored_event_payload",
    "timeline_item_payload",
]

logger = logging.getLogger(__name__)

Surface = Literal["widget", "console", "staff"]

STORED_EVENTS: tuple[type[Event], ...] = tuple(get_args(get_args(ConversationEvent)[0]))
# The pushes of each staff stream (apps.core.realtime.StaffStream).
AGENT_STREAM: tuple[type[Event], ...] = (
    QueueChanged,
    ConversationActivity,
    HandoffEscalated,
    TicketOpened,
    PresenceChanged,
    NoteAdded,
    CaseFileReady,
    DeliveryUpdated,
)
KNOWLEDGE_STREAM: tuple[type[Event], ...] = (KbVersion, KnowledgeGap)

# What each socket sends: the widget (`/ws/widget/`), the agent console (`/ws/console/<slug>/`, agent stream
# only) and the staff pages (`/ws/staff/<slug>/`, every stream the member's roles allow).
SURFACES: dict[Surface, tuple[type[Event], ...]] = {
    "widget": (
        *STORED_EVENTS,
        Welcome,
        WidgetAck,
        AssistantProgress,
        AssistantDelta,
        AssistantSnapshot,
        AssistantCitations,
        ErrorFrame,
        Pong,
    ),
    "console": (
        ConsoleHello,
        ConsoleAck,
        PresenceSet,
        Watching,
        Unwatched,
        Timeline,
        AssistantProgress,
        AssistantDelta,
        AssistantCitations,
        *AGENT_STREAM,
        ErrorFrame,
        Pong,
    ),
    "staff": (StaffHello, *AGENT_STREAM, *KNOWLEDGE_STREAM, ErrorFrame, Pong),
}


def event_type(model: type[Event]) -> str:
    """The `type` a model declares (its one Literal value)."""
    (value,) = get_args(model.model_fields["type"].annotation)
    return str(value)


# surface -> type -> model
REGISTRY: dict[Surface, dict[str, type[Event]]] = {
    surface: {event_type(model): model for model in models} for surface, models in SURFACES.items()
}


@cache
def _adapter(surface: Surface) -> TypeAdapter[Any]:
    models = SURFACES[surface]
    union = models[0]
    for model in models[1:]:
        union = union | model  # type: ignore[assignment]
    return TypeAdapter(Annotated[union, Field(discriminator="type")])  # type: ignore[arg-type]


_STORED: TypeAdapter[Any] = TypeAdapter(ConversationEvent)
_TIMELINE: TypeAdapter[Any] = TypeAdapter(TimelineItem)


def event_build(model: Event) -> dict[str, Any]:
    """The frame a model describes, as sent (`model.payload()`)."""
    return model.payload()


def frame_validate(surface: Surface, frame: dict[str, Any]) -> Event:
    """The model of a frame `surface` sends; raises pydantic's ValidationError if it is not one."""
    model: Event = _adapter(surface).validate_python(frame)
    return model


def _checked(adapter: TypeAdapter[Any], payload: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    try:
        model: Event = adapter.validate_python(payload)
    except ValidationError as exc:
        if strict:
            raise
        # A row stored by an older release (or a type this release does not know): sent as it is, so the
        # client still gets it, and logged so the model is fixed. Field names only, never values (PII).
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors()[:3])
        logger.error("event %s does not match its model: %s", payload.get("type"), problems)
        return payload
    return model.payload()


def stored_event_payload(payload: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """A stored conversation event rendered from its row, validated by its model (the widget's view)."""
    return _checked(_STORED, payload, strict=strict)


def timeline_item_payload(payload: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """A conversation event or a note as the console's timeline lists it, validated by its model."""
    return _checked(_TIMELINE, payload, strict=strict)


SURFACE_DEFINITIONS: dict[Surface, str] = {
    "widget": "WidgetFrame",
    "console": "ConsoleFrame",
    "staff": "StaffFrame",
}


def _tidy(node: Any, *, required: frozenset[str] = frozenset()) -> Any:
    """Pydantic's schema, made to say what is sent: optional fields are left out, never null, so their
    null branch and `default: null` go; generated property titles go too."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                need = frozenset(node.get("required", []))
                props: dict[str, Any] = {}
                for name, prop in value.items():
                    prop = {k: v for k, v in prop.items() if k != "title"}
                    if name not in need:
                        prop.pop("default", None)
                        branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
                        if "anyOf" in prop and len(branches) == 1:
                            del prop["anyOf"]
                            prop = {**branches[0], **prop}
                    props[name] = _tidy(prop)
                out[key] = props
            else:
                out[key] = _tidy(value)
        return out
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    return node


def events_schema() -> dict[str, Any]:
    """The JSON Schema of every frame a client receives: one definition per model, and one union per
    surface discriminated on `type` (`$defs.WidgetFrame`, `ConsoleFrame`, `StaffFrame`)."""
    definitions: dict[str, Any] = {}
    for surface, name in SURFACE_DEFINITIONS.items():
        schema = copy.deepcopy(_adapter(surface).json_schema(ref_template="#/$defs/{model}"))
        for key, value in schema.pop("$defs", {}).items():
            if key in definitions and definitions[key] != value:
                raise ValueError(f"two event models are both named {key}")
            definitions[key] = value
        definitions[name] = {
            "description": f"Every frame the {surface} socket sends, discriminated on `type`.",
            **schema,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://helpdesk.invalid/docs/architecture/events.schema.json",
        "title": "Helpdesk realtime events",
        "description": (
            "Generated by `manage.py events_schema` from apps/core/event_types; do not edit by hand. "
            "Optional fields (not in `required`) are left out when they do not apply, never sent as null."
        ),
        "anyOf": [{"$ref": f"#/$defs/{name}"} for name in SURFACE_DEFINITIONS.values()],
        "$defs": _tidy(dict(sorted(definitions.items()))),
    }
