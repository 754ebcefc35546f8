"""The widget's script and the demo company's website that embeds it."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.accounts.selectors import tenant_by_slug
from apps.conversations.identity import identity_profile_signature
from apps.core.errors import NotFound
from apps.telco.demo_data import DEMO_ACCOUNTS

WIDGET_SCRIPT = Path(settings.BASE_DIR) / "static" / "widget" / "widget.js"
DEMO_SLUG = "nimbus"


@cache
def _script(mtime: float) -> bytes:
    return WIDGET_SCRIPT.read_bytes()


@require_GET
def widget_script(request: HttpRequest) -> HttpResponse:
    """`<script src=".../widget.js">`: served by the desk itself so its URL tells the widget where the
    desk is, whatever host the company embeds it on."""
    body = _script(WIDGET_SCRIPT.stat().st_mtime)
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def demo_host(request: HttpRequest) -> HttpResponse:
    """A stand-in for the demo company's own website, with the one-line embed."""
    tenant = tenant_by_slug(slug=DEMO_SLUG)
    if tenant is None:
        raise NotFound("The demo company is not loaded: `make run` loads it (or `manage.py demo_load`).")
    customers = [(a.external_id, a.name) for a in DEMO_ACCOUNTS]
    customer = request.GET.get("customer", "")
    identity = None
    # The demo site signs its customers in as a company's own server would (docs/architecture/realtime.md):
    # only the demo's own customers, and only on a development install.
    if settings.DEBUG and customer in dict(customers):
        issued_at = int(time.time())
        name = dict(customers)[customer]
        identity = {
            "external_id": customer,
            "issued_at": issued_at,
            # Signed with the name, so the desk stores it (an unsigned name would be ignored).
            "signature": identity_profile_signature(
                secret=tenant.identity_secret, external_id=customer, issued_at=issued_at, email="", name=name
            ),
            "name": name,
        }
    return render(
        request,
        "widget/demo_host.html",
        {
            "tenant_name": tenant.name,
            "widget_key": tenant.widget_key,
            "script_src": request.build_absolute_uri("/widget.js"),
            "identity": identity,
            "customers": customers if settings.DEBUG else [],
        },
    )
