"""Messaging fixtures: a company with its messaging channel pointing at a fake provider on loopback, and a
webhook client that posts what the provider signs to the real URL routes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import Tenant
from apps.messaging import services
from apps.messaging.models import MessagingChannel
from tests.conversations.conftest import (  # noqa: F401  (fixtures shared with the conversation tests)
    _fresh_realtime_state,
    fake_llm,
    kb_tenant,
)
from tests.fakes.messaging_provider import FakeMessagingProvider

SECRET = "provider-signing-secret-a"
TOKEN = "provider-api-token-a"
CUSTOMER = "+447700900123"


@pytest.fixture
def provider() -> Iterator[FakeMessagingProvider]:
    with FakeMessagingProvider(token=TOKEN, secret=SECRET) as fake:
        yield fake


def channel_for(
    tenant: Tenant, fake: FakeMessagingProvider, *, secret: str | None = None
) -> MessagingChannel:
    return services.messaging_channel_configure(
        tenant=tenant,
        enabled=True,
        base_url=fake.base_url,
        sender_id=fake.number,
        inbound_secret=secret or fake.secret,
        auth_token=fake.token,
        allowed_hosts=[fake.host_entry],
    )


@dataclass
class Webhooks:
    """Posts signed provider webhooks to the desk's routes for `slug`."""

    client: Client
    provider: FakeMessagingProvider
    slug: str

    def inbound(
        self, text: str = "Hello", *, sender: str = CUSTOMER, message_id: str | None = None, **sign: Any
    ):
        body = self.provider.inbound_body(sender=sender, text=text, message_id=message_id)
        return self.raw("inbound", *self.provider.signed(body, **sign))

    def status(self, message_id: str, status: str, **sign: Any):
        return self.raw("status", *self.provider.signed({"message_id": message_id, "status": status}, **sign))

    def raw(self, kind: str, body: bytes, headers: dict[str, str], slug: str | None = None):
        return self.client.post(
            f"/api/v1/channels/messaging/{slug or self.slug}/{kind}",
            data=body,
            content_type="application/json",
            headers=headers,
        )


@pytest.fixture
def sms_tenant(make_tenant: Callable[..., Tenant], provider: FakeMessagingProvider) -> Tenant:
    tenant = make_tenant(name="Nimbus Telecom")
    channel_for(tenant, provider)
    return tenant


@pytest.fixture
def webhooks(sms_tenant: Tenant, provider: FakeMessagingProvider) -> Webhooks:
    return Webhooks(client=Client(), provider=provider, slug=sms_tenant.slug)
