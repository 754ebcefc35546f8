"""Writes the JSON Schema of every realtime event (apps.core.event_types) to
docs/architecture/events.schema.json; with --check, only says whether the committed file is current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.event_types import events_schema

SCHEMA_PATH = Path("docs/architecture/events.schema.json")


def schema_text() -> str:
    return json.dumps(events_schema(), indent=2, ensure_ascii=False) + "\n"


class Command(BaseCommand):
    help = "Export the realtime events' JSON Schema to docs/architecture/events.schema.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="Fail if the committed schema differs from a fresh export."
        )
        parser.add_argument("--output", default=None, help="Another path to write (default: the docs').")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["output"]) if options["output"] else Path(settings.BASE_DIR) / SCHEMA_PATH
        fresh = schema_text()
        if options["check"]:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != fresh:
                raise CommandError(
                    f"{path} is out of date with apps/core/event_types: run `manage.py events_schema`."
                )
            self.stdout.write(f"{path} is current.")
            return
        path.write_text(fresh, encoding="utf-8")
        self.stdout.write(f"Wrote {path}.")
