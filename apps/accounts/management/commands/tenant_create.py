"""Onboard a company: `manage.py tenant_create SLUG --name NAME [--origin URL]...` prints its credentials."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts import selectors, services
from apps.core.errors import HelpdeskError


class Command(BaseCommand):
    help = "Create a tenant (company) and print its widget key and identity secret as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="short unique name: lowercase letters, digits, hyphens")
        parser.add_argument("--name", required=True, help="the company's display name")
        parser.add_argument(
            "--origin",
            action="append",
            default=[],
            help="a website origin allowed to embed the widget (repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = services.tenant_create(
                slug=options["slug"], name=options["name"], origins=options["origin"]
            )
        except HelpdeskError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            json.dumps(
                {
                    "id": str(tenant.id),
                    "slug": tenant.slug,
                    "name": tenant.name,
                    "widget_key": tenant.widget_key,
                    "identity_secret": tenant.identity_secret,
                    "allowed_origins": selectors.tenant_origins(tenant=tenant),
                },
                indent=2,
            )
        )
