"""Memory fixtures: a company with published policies, the scriptable model and widget sockets (from
tests/conversations/conftest.py), widget sessions for guests and verified customers, and the widget's
memory endpoints called over HTTP the way the widget calls them."""

from __future__ import annotations

import time
from typing import Any

from django.test import Client

from apps.accounts.models import Tenant
from apps.conversations import services
from apps.conversations.identity import IdentityClaim, identity_signature
from tests.conversations.conftest import (  # noqa: F401  (fixtures shared with the conversation tests)
    ORIGIN,
    _fresh_realtime_state,
    anyio_backend,
    fake_llm,
    kb_tenant,
)

MEMORY = "/api/widget/v1/memory"


def guest_session(tenant: Tenant, token: str | None = None) -> services.WidgetSession:
    return services.widget_session_open(tenant=tenant, token=token, claim=None)


def customer_session(tenant: Tenant, external_id: str = "cust-1001") -> services.WidgetSession:
    """A verified customer's session, as a page the company signed opens it (their latest open
    conversation, or a new one)."""
    issued = int(time.time())
    claim = IdentityClaim(
        external_id=external_id,
        issued_at=issued,
        signature=identity_signature(
            secret=tenant.identity_secret, external_id=external_id, issued_at=issued
        ),
    )
    return services.widget_session_open(tenant=tenant, token=None, claim=claim)


def call(method: str, path: str, token: str, *, origin: str = ORIGIN, body: Any = None) -> Any:
    """The widget's request: bearer token, the page's Origin, JSON."""
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ORIGIN": origin}
    if body is None:
        return getattr(client, method.lower())(path, **headers)
    return getattr(client, method.lower())(path, data=body, content_type="application/json", **headers)
