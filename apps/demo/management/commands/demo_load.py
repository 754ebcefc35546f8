from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.demo.services import DEMO_PASSWORD, demo_load


class Command(BaseCommand):
    help = "Load the demo telecom, its staff, customers and published policies (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--origin", action="append", default=[], help="allowed widget origin (repeatable)"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_load(origins=options["origin"])
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "tenant": result.tenant.slug,
                        "created": result.created,
                        "widget_key": result.tenant.widget_key,
                        "password": DEMO_PASSWORD,
                        "logins": [{"username": u, "roles": r} for u, r in result.logins],
                        "documents_published": result.documents_published,
                    }
                )
            )
            return
        verb = "Loaded" if result.created else "Already loaded:"
        self.stdout.write(f"{verb} demo company {result.tenant.name} ({result.tenant.slug})")
        for username, roles in result.logins:
            self.stdout.write(f"  {username:<10} / {DEMO_PASSWORD}   {roles}")
