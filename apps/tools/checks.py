"""`manage.py check` (and migrate, which runs it) names every malformed TOOLS_ALLOWED_HOSTS entry.

At run time a malformed entry allows nothing (apps/tools/hosts.py), which is safe but would leave the
operator wondering why a listed host is refused; this says so before the first deploy does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error

from apps.tools.hosts import allowed_host_parse


def check_tools_allowed_hosts(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for entry in settings.TOOLS_ALLOWED_HOSTS:
        try:
            allowed_host_parse(entry)
        except ValueError as exc:
            errors.append(
                Error(
                    f"TOOLS_ALLOWED_HOSTS: {entry}: {exc}",
                    hint="Entries are host, host:port or [IPv6]:port, comma-separated (see .env.example).",
                    id="tools.E001",
                )
            )
    return errors
