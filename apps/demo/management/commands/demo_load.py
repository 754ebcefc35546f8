from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.demo.services import demo_load, demo_password


class Command(BaseCommand):
    help = "Load the demo telecom, its staff, customers and published policies (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--origin", action="append", default=[], help="allowed widget origin (repeatable)"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument(
            "--allow-non-debug",
            action="store_true",
            help="load the demo even with DEBUG off (the test suite; a demo server you really want)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_non_debug"]:
            raise CommandError(
                "Refusing to load the demo company with DEBUG off: it creates sign-ins, a superuser among "
                "them, and prints their password; pass --allow-non-debug if you really want them on this "
                "server."
            )
        result = demo_load(origins=options["origin"])
        password = demo_password()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "tenant": result.tenant.slug,
                        "created": result.created,
                        "widget_key": result.tenant.widget_key,
                        "password": password,
                        "logins": [{"username": u, "roles": r} for u, r in result.logins],
                        "documents_published": result.documents_published,
                    }
                )
            )
            return
        verb = "Loaded" if result.created else "Already loaded:"
        self.stdout.write(f"{verb} demo company {result.tenant.name} ({result.tenant.slug})")
        for username, roles in result.logins:
            self.stdout.write(f"  {username:<10} / {password}   {roles}")
