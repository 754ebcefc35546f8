"""The messaging channel's writes: a company's provider settings, inbound webhooks (messages and delivery
statuses) and the outbound send (docs/architecture/channels.md, "Worked example: the messaging channel").

Inbound: the webhook's signature and replay window are checked with the company's sealed secret before the
body is even parsed; the sender's number (as the provider vouched for it) names the conversation, one per
(company, number), and the text goes through the one inbound entry point
(apps.conversations.channels.inbound), which redacts, stores once per provider message id and queues the
assistant's answer. Outbound: the channel type's deliver() POSTs the final text through the tools' wrapped
HTTP client, which only reaches allow-listed hosts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apps.accounts.models import Tenant
from apps.conversations.channels.inbound import channel_message_receive
from apps.conversations.channels.outbound import delivery_status_record
from apps.conversations.channels.registry import MESSAGING, ChannelSender
from apps.conversations.models import Conversation, Delivery
from apps.conversations.services import Receipt
from apps.core.errors import BadRequest, Forbidden, MessageTooLong, NotFound, Unauthorized
from apps.core.sealing import SealBroken, seal, unseal
from apps.messaging.models import MessagingChannel
from apps.messaging.signing import phone_normalize, signature_verify
from apps.tools.hosts import AllowedHost, allow_list_admits, allowed_host_parse, allowed_hosts_parse

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
SENDER_ID_MAX = 32


# ---- configuration ---------------------------------------------------------------------------------------


def _allowed(channel: MessagingChannel) -> frozenset[AllowedHost]:
    return allowed_hosts_parse([*settings.MESSAGING_ALLOWED_HOSTS, *channel.allowed_hosts])


def messaging_allowed_hosts(channel: MessagingChannel) -> set[str]:
    """The hosts the channel's outbound client may reach: MESSAGING_ALLOWED_HOSTS for every company, plus
    the company's own list, which only the platform operator sets (Django admin)."""
    return {str(entry) for entry in _allowed(channel)}


def base_url_allowed(channel: MessagingChannel, base_url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return allow_list_admits(_allowed(channel), scheme=parts.scheme, hosts=(parts.hostname,), port=port)


@transaction.atomic
def messaging_channel_configure(
    *,
    tenant: Tenant,
    enabled: bool,
    base_url: str,
    sender_id: str,
    inbound_secret: str | None = None,
    auth_token: str | None = None,
    allowed_hosts: list[str] | None = None,
    timeout_seconds: float | None = None,
) -> MessagingChannel:
    """Creates or updates the company's messaging channel. `inbound_secret` / `auth_token`: None keeps the
    stored one, "" removes it, anything else replaces it (sealed). `allowed_hosts` None keeps the list.
    Raises BadRequest with a sentence for the operator when the settings cannot work."""
    channel = MessagingChannel.objects.select_for_update().filter(tenant=tenant).first() or MessagingChannel(
        tenant=tenant
    )
    if allowed_hosts is not None:
        entries = [entry.strip() for entry in allowed_hosts if entry.strip()]
        for entry in entries:
            try:
                allowed_host_parse(entry)
            except ValueError as exc:
                raise BadRequest(f"{entry}: {exc}.") from None
        channel.allowed_hosts = entries
    sender = (sender_id or "").strip()
    if len(sender) > SENDER_ID_MAX:
        raise BadRequest(f"The sender number or id is at most {SENDER_ID_MAX} characters.")
    normalized = phone_normalize(sender)
    channel.sender_id = normalized or sender
    channel.base_url = (base_url or "").strip()
    if channel.base_url and not base_url_allowed(channel, channel.base_url):
        raise BadRequest("The provider's host is not on the messaging host allow-list.")
    if inbound_secret is not None:
        channel.inbound_secret = seal(inbound_secret)
    if auth_token is not None:
        channel.auth_token = seal(auth_token)
    if timeout_seconds is not None:
        if not 0 < timeout_seconds <= 30:
            raise BadRequest("The timeout is more than 0 and at most 30 seconds.")
        channel.timeout_seconds = timeout_seconds
    if enabled and not (channel.base_url and channel.sender_id and channel.inbound_secret):
        raise BadRequest(
            "To turn the channel on, give the provider's base URL, the sender and a signing secret."
        )
    channel.enabled = enabled
    channel.save()
    return channel


def inbound_secret_generate() -> str:
    """A fresh signing secret for the company to give its provider."""
    return secrets.token_urlsafe(32)


# ---- inbound webhooks ------------------------------------------------------------------------------------


class InboundMessage(BaseModel):
    """The provider's inbound message (the JSON most SMS and WhatsApp providers send, by these names)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    message_id: str = Field(min_length=1, max_length=200)
    sender: str = Field(alias="from", min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=64)
    text: str = Field(max_length=100_000)
    timestamp: int | None = None


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(min_length=1, max_length=200)
    status: Literal["delivered", "failed"]
    error: str = Field(default="", max_length=300)


@dataclass(frozen=True)
class InboundResult:
    receipt: Receipt
    conversation: Conversation


def _channel_for_webhook(*, tenant_slug: str) -> MessagingChannel | None:
    return (
        MessagingChannel.objects.select_related("tenant")
        .filter(tenant__slug=tenant_slug, tenant__is_active=True, enabled=True)
        .first()
    )


def webhook_verify(*, tenant_slug: str, timestamp: str, signature: str, body: bytes) -> MessagingChannel:
    """The company's enabled channel, once the webhook is proven to come from its provider. An unknown
    company, a disabled channel and a wrong signature get the same answer (nothing about which companies
    exist leaks), and the same work: a signature is computed either way."""
    if len(body) > MAX_BODY_BYTES:
        raise MessageTooLong("The webhook body is too large.")
    channel = _channel_for_webhook(tenant_slug=tenant_slug)
    try:
        secret = unseal(channel.inbound_secret) if channel is not None else ""
    except SealBroken:
        logger.error(
            "messaging secret of tenant %s is unreadable (SECRET_KEY changed)",
            channel.tenant_id if channel else "",
        )
        secret = ""
    # A random stand-in when there is no secret: the comparison runs, and nothing can match it.
    signature_verify(
        secrets=[secret or secrets.token_hex(32)], timestamp=timestamp, signature=signature, body=body
    )
    if channel is None or not secret:
        raise Unauthorized("The webhook signature does not match.")
    return channel


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("The webhook body is not JSON.") from None


def sender_digest(tenant: Tenant, phone: str) -> str:
    """A rate-limit subject for a sender that is no phone number in Redis."""
    return hashlib.sha256(f"{tenant.id}:{phone}".encode()).hexdigest()[:32]


def inbound_parse(*, channel: MessagingChannel, body: bytes) -> tuple[InboundMessage, str]:
    """The verified webhook's message and the sender's number (E.164)."""
    try:
        message = InboundMessage.model_validate(_json(body))
    except ValidationError:
        raise BadRequest("The webhook needs message_id, from, to and text.") from None
    phone = phone_normalize(message.sender)
    if phone is None:
        raise BadRequest("The sender is not a phone number in international format.")
    to = phone_normalize(message.to) or message.to.strip()
    if to != channel.sender_id:
        # Signed with this company's secret but addressed elsewhere: a provider misconfiguration.
        raise Forbidden("This message is addressed to another number than the company's.")
    return message, phone


def messaging_inbound_receive(
    *, channel: MessagingChannel, message: InboundMessage, phone: str
) -> InboundResult:
    """Stores a verified inbound message once (per provider message id) in the number's conversation and
    queues the assistant's answer when the assistant owns it."""
    text = message.text.strip()
    if len(text) > settings.WIDGET_MAX_MESSAGE_CHARS:
        limit = settings.WIDGET_MAX_MESSAGE_CHARS
        raise MessageTooLong(f"Messages are limited to {limit} characters; this one has {len(text)}.")
    receipt = channel_message_receive(
        tenant=channel.tenant,
        channel=MESSAGING,
        sender=ChannelSender(address=phone),
        external_id=message.message_id,
        text=text,
        conversation_key=phone,
    )
    if receipt.created:
        logger.info(
            "messaging message %s stored in conversation %s",
            receipt.message.id,
            receipt.message.conversation_id,
        )
    return InboundResult(receipt=receipt, conversation=receipt.message.conversation)


def status_parse(*, body: bytes) -> StatusUpdate:
    try:
        return StatusUpdate.model_validate(_json(body))
    except ValidationError:
        raise BadRequest("The status webhook needs message_id and a status of delivered or failed.") from None


def messaging_status_record(*, channel: MessagingChannel, update: StatusUpdate) -> Delivery:
    """The provider's news about a message we sent: delivered to the phone, or failed. Found by the
    provider's message id within the company only; a repeated callback changes nothing."""
    # The provider's words are not kept: they may quote the number. A reason code is enough for staff.
    code = "".join(ch for ch in update.error if ch.isalnum() or ch in "_-.")[:60]
    error = "The provider could not deliver it" + (f" ({code})." if code else ".")
    delivery = delivery_status_record(
        tenant_id=channel.tenant_id,
        channel=MESSAGING,
        provider_message_id=update.message_id,
        status=update.status,
        error=error,
    )
    if delivery is None:
        raise NotFound("There is no message with that id.")
    return delivery
