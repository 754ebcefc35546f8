"""The messaging channel type: SMS or WhatsApp-style providers that speak webhooks (registered in
MessagingConfig.ready()). It does not stream: each answer goes out as one message, once it is complete."""

from __future__ import annotations

import logging

from apps.conversations.channels.outbound import delivery_text
from apps.conversations.channels.registry import (
    MESSAGING,
    ChannelIdentity,
    ChannelType,
    DeliveryResult,
    address_only,
)
from apps.conversations.models import Delivery
from apps.core.sealing import SealBroken, unseal
from apps.messaging.models import MessagingChannel
from apps.messaging.services import messaging_allowed_hosts
from apps.tools.errors import AdapterError
from apps.tools.http import AdapterHttpClient

logger = logging.getLogger(__name__)

# What one outbound message may carry: providers split longer text into parts themselves, up to about this.
MAX_OUTBOUND_CHARS = 1600


def _failed(error: str, *, retryable: bool) -> DeliveryResult:
    return DeliveryResult(status="failed", error=error, retryable=retryable)


class MessagingChannelType(ChannelType):
    name = MESSAGING
    label = "SMS"
    streams = False
    identity = ChannelIdentity(
        description=(
            "A webhook signed by the company's provider (HMAC-SHA256 of the timestamp and the body with the "
            "company's secret, within a 5-minute window); the sender is the phone number it vouches for, "
            "and each number has its own conversation."
        ),
        verify=address_only,
    )
    external_id_scope = "tenant"

    def deliver(self, *, delivery: Delivery) -> DeliveryResult:
        """POSTs `{"to", "from", "text", "client_ref"}` to `{base_url}/messages` with the company's token
        (the delivery id is the idempotency key) and keeps the provider's message id for its status
        callbacks. A refusal, a host off the allow-list or a broken secret fail at once; an outage, a
        timeout or a 429 is retried by the delivery worker."""
        message = delivery.message
        conversation = message.conversation
        channel = MessagingChannel.objects.filter(tenant_id=delivery.tenant_id).first()
        if channel is None or not channel.enabled:
            return _failed("The company's messaging channel is turned off.", retryable=False)
        if not conversation.channel_address:
            return _failed("The conversation has no phone number to answer.", retryable=False)
        try:
            token = unseal(channel.auth_token)
        except SealBroken:
            return _failed(
                "The provider token was sealed under a key this installation lost.", retryable=False
            )
        body = {
            "to": conversation.channel_address,
            "from": channel.sender_id,
            "text": delivery_text(message)[:MAX_OUTBOUND_CHARS],
            "client_ref": str(delivery.id),
        }
        try:
            with AdapterHttpClient(
                base_url=channel.base_url,
                auth_secret=token,
                timeout_seconds=channel.timeout_seconds,
                allowed_hosts=messaging_allowed_hosts(channel),
            ) as client:
                data = client.post(("messages",), body, idempotency_key=str(delivery.id))
        except AdapterError as exc:
            if exc.transient:
                return _failed(f"The provider did not take it ({exc.code}).", retryable=True)
            return _failed(f"The provider refused it ({exc.code}).", retryable=False)
        except ValueError:
            return _failed("The provider token is not a valid header value.", retryable=False)
        provider_id = data.get("message_id") if isinstance(data, dict) else None
        return DeliveryResult(
            status="sent", provider_message_id=provider_id if isinstance(provider_id, str) else ""
        )


def messaging_channel_register() -> None:
    from apps.conversations.channels.registry import channel_register

    channel_register(MessagingChannelType())
