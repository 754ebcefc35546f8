"""The typed realtime events (apps/core/event_types): the serialisation policy, the committed JSON Schema,
the reference in docs/architecture/realtime.md, and the Literal values against the models' choices."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from pydantic import ValidationError

from apps.core import event_types as et
from apps.core.event_types import common, staff
from apps.core.event_types.pushed import ProgressStage
from apps.core.management.commands.events_schema import SCHEMA_PATH, schema_text
from tests.event_frames import frame_check

DOC = Path(settings.BASE_DIR) / "docs/architecture/realtime.md"


def test_optional_fields_are_left_out_and_required_nullable_ones_are_sent_as_null() -> None:
    assert et.WidgetAck(client_msg_id="c1", seq=None).payload() == {"type": "ack", "client_msg_id": "c1"}
    assert et.WidgetAck(client_msg_id="c1", seq=4).payload() == {
        "type": "ack",
        "client_msg_id": "c1",
        "seq": 4,
    }
    activity = et.ConversationActivity(conversation_id="c", seq=3, status="waiting", agent_id=None)
    assert activity.payload() == {
        "type": "conversation.activity",
        "conversation_id": "c",
        "seq": 3,
        "status": "waiting",
        "agent_id": None,
    }
    # Nested models follow the same rule.
    note = et.Note(id="n", at="2026-01-01T00:00:00+00:00", author="Ann Lee", text="called back")
    added = et.NoteAdded(conversation_id="c", note=note).payload()
    assert added["note"] == {
        "type": "note",
        "id": "n",
        "at": note.at,
        "author": "Ann Lee",
        "text": "called back",
    }


def test_a_field_that_is_missing_unknown_or_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="last_seq"):
        et.Welcome.model_validate({"client_msg_id": "c", "conversation_id": "x", "verified": False})
    with pytest.raises(ValidationError, match="extra"):
        et.Pong.model_validate({"client_msg_id": "c", "surprise": 1})
    with pytest.raises(ValidationError, match="seq"):
        et.stored_event_payload({"type": "csat.recorded", "seq": "three", "at": "t", "score": 5}, strict=True)


def test_a_stored_event_that_does_not_match_is_logged_and_sent_as_stored_unless_strict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    row = {"type": "csat.recorded", "seq": 7, "at": "2026-01-01T00:00:00+00:00", "stars": 5}
    with pytest.raises(ValidationError):
        et.stored_event_payload(row, strict=True)
    with caplog.at_level(logging.ERROR, logger="apps.core.event_types"):
        assert et.stored_event_payload(row, strict=False) is row
    assert "csat.recorded does not match its model" in caplog.text
    assert "5" not in caplog.text.split("model:")[1]  # field names, never values
    ok = {"type": "csat.recorded", "seq": 7, "at": "2026-01-01T00:00:00+00:00", "score": 5}
    assert et.stored_event_payload(ok, strict=True) == ok


def test_each_socket_has_one_model_per_type() -> None:
    for surface, models in et.SURFACES.items():
        types = [et.event_type(model) for model in models]
        assert len(types) == len(set(types)), surface
        assert set(et.REGISTRY[surface]) == set(types)
    assert et.REGISTRY["console"]["hello"] is et.ConsoleHello
    assert et.REGISTRY["staff"]["hello"] is et.StaffHello
    assert et.REGISTRY["widget"]["ack"] is et.WidgetAck


def test_the_literal_values_are_the_models_choices() -> None:
    from apps.conversations.models import Conversation, Delivery, Message
    from apps.handoff.models import Handoff, Presence
    from apps.knowledge.models import VersionStatus

    assert set(get_args(common.Owner)) == set(Conversation.Status.values)
    assert set(get_args(common.MessageStatus)) == set(Message.Status.values)
    assert set(get_args(staff.PresenceStatus)) == set(Presence.Status.values)
    assert set(get_args(staff.HandoffState)) == set(Handoff.Status.values)
    assert set(get_args(staff.CaseFileStatus)) == set(Handoff.CaseFileStatus.values)
    assert set(get_args(staff.VersionStatus)) == set(VersionStatus.values)
    assert set(get_args(staff.DeliveryStatus)) == set(Delivery.Status.values)
    assert "thinking" in get_args(ProgressStage)  # set by the widget itself before the first progress


def test_the_committed_schema_equals_a_fresh_export(tmp_path: Path) -> None:
    committed = (Path(settings.BASE_DIR) / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == schema_text(), "run `manage.py events_schema` and commit the schema"
    call_command("events_schema", "--check")
    # A renamed field without a new export fails the check.
    stale = tmp_path / "events.schema.json"
    stale.write_text(committed.replace('"last_seq"', '"last_sequence"'), encoding="utf-8")
    with pytest.raises(CommandError, match="out of date"):
        call_command("events_schema", "--check", "--output", str(stale))
    call_command("events_schema", "--output", str(stale))
    assert stale.read_text(encoding="utf-8") == committed


HEADING = re.compile(r"^#### (?:`(?P<type>[a-z_.]+)` \((?P<model>\w+)\)|(?P<shape>\w+))\s*$")
ROW = re.compile(r"^\|\s*`(?P<field>\w+)`\s*\|")


def documented(text: str) -> dict[str, tuple[str | None, set[str]]]:
    """The `## Event reference` section of the page: model -> (its type, the fields of its table)."""
    section = text.split("\n## Event reference\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, tuple[str | None, set[str]]] = {}
    current: str | None = None
    for line in section.splitlines():
        heading = HEADING.match(line)
        if heading:
            current = heading["model"] or heading["shape"]
            assert current not in found, f"{current} is documented twice"
            found[current] = (heading["type"], set())
        elif line.startswith("#"):
            current = None
        elif current and (row := ROW.match(line)):
            found[current][1].add(row["field"])
    return found


def test_every_definition_is_documented_with_exactly_its_fields() -> None:
    schema = et.events_schema()
    definitions: dict[str, Any] = {
        name: d for name, d in schema["$defs"].items() if name not in et.SURFACE_DEFINITIONS.values()
    }
    docs = documented(DOC.read_text(encoding="utf-8"))
    assert sorted(set(definitions) - set(docs)) == [], "not documented in realtime.md"
    assert sorted(set(docs) - set(definitions)) == [], "documented, but no such model"
    problems = []
    for name, definition in definitions.items():
        kind, fields = docs[name]
        expected = set(definition["properties"])
        if fields != expected:
            problems.append(f"{name}: missing {sorted(expected - fields)}, stale {sorted(fields - expected)}")
        declared = definition["properties"].get("type", {}).get("const")
        if kind != declared:
            problems.append(f"{name}: documented as {kind!r}, its type is {declared!r}")
    assert problems == []


def test_the_doc_parser_sees_a_renamed_field() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert documented(text)["Welcome"][1] == {
        "type",
        "client_msg_id",
        "conversation_id",
        "verified",
        "last_seq",
    }
    renamed = text.replace("| `last_seq` | integer | The `seq` of the last event", "| `last` | integer | The")
    assert "last" in documented(renamed)["Welcome"][1]


def test_the_frame_hook_refuses_a_frame_its_socket_does_not_send() -> None:
    frame_check("/ws/widget/", json.dumps({"type": "pong", "client_msg_id": "p"}))
    with pytest.raises(AssertionError, match="does not match its model"):
        frame_check("/ws/widget/", json.dumps({"type": "welcome", "conversation_id": "x"}))
    with pytest.raises(AssertionError, match="does not match its model"):  # the console's hello, on staff
        frame_check("/ws/staff/t/", json.dumps({"type": "hello", "tenant": "t", "user_id": 1, "roles": []}))
    frame_check("/elsewhere/", "not even JSON")  # not one of our sockets: not checked
