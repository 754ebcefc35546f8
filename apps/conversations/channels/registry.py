"""The channel registry: every way a customer can write to the desk and be answered (docs/architecture/
channels.md).

A channel type is one object registered by name. The conversations app registers the widget and the command
line in its AppConfig.ready(); higher apps register theirs in their own ready() (the handoff app registers
email, the messaging app its webhook channel), so this module never imports them.

Conversation.channel and Message.via hold these names in a plain CharField: a new channel needs no
migration, and services check the name against the registry instead of the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from apps.conversations.models import Channel
from apps.core.errors import BadRequest

if TYPE_CHECKING:
    from apps.accounts.models import Tenant
    from apps.conversations.identity import SessionClaims
    from apps.conversations.models import Conversation, Delivery

# The built-in names. Others come from the apps that register them ("messaging": apps.messaging).
WIDGET = Channel.WIDGET
CLI = Channel.CLI
EMAIL = Channel.EMAIL
MESSAGING = Channel.MESSAGING

NAME_MAX_LENGTH = 16


@dataclass(frozen=True)
class ChannelSender:
    """Who sent an inbound message, as the channel proved it.

    `address` is the sender's address on the channel (a phone number, an email address; the visitor id for
    the widget). `contact_id` is set only when the sender is a verified customer of the company (the
    company's identity signature, a verified address). `claims` are the widget's signed session claims;
    other channels leave them None.
    """

    address: str
    contact_id: uuid.UUID | None = None
    visitor_id: uuid.UUID | None = None
    claims: SessionClaims | None = None


@dataclass(frozen=True)
class ChannelIdentity:
    """How a message of this channel proves who sent it.

    `description` says it in one sentence (shown in docs and the admin). `verify(conversation, sender)`
    answers whether this sender may write into this existing conversation; it runs under the
    conversation's row lock, before anything is stored. Proofs of the request itself (an HMAC signature, a
    replay window) are checked by the channel's webhook before it builds the ChannelSender.
    """

    description: str
    verify: Callable[[Conversation, ChannelSender], bool]


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery attempt did.

    status: "sent" (the provider accepted it), "delivered" (it reached the customer, e.g. by the socket) or
    "failed". A failed result with `retryable=True` is tried again with backoff until the attempts run out;
    `retryable=False` fails the delivery at once (a refused address will not become valid). `error` is one
    sentence for staff, never PII; `provider_message_id` lets a later status callback find the delivery.
    """

    status: Literal["sent", "delivered", "failed"]
    provider_message_id: str = ""
    error: str = ""
    retryable: bool = True


def address_only(conversation: Conversation, sender: ChannelSender) -> bool:
    """The default identity check: the conversation is this sender's (same channel address)."""
    return bool(sender.address) and conversation.channel_address == sender.address


class ChannelType:
    """One channel: subclass it (or instantiate it with the attributes) and register the instance.

    name      the value stored in Conversation.channel and Message.via (at most 16 characters)
    label     what staff read ("Website widget", "SMS")
    streams   True if the customer sees the answer as it is written (the widget). A non-streaming channel
              gets ONE message per answer, the final text, delivered after the reply is stored, and its
              answers run in a Celery worker (no socket needed).
    identity  a ChannelIdentity: how a message proves who sent it
    external_id_scope
              "tenant": an inbound message's external id (the provider's message id) is unique per company
              and channel; "conversation": it is the client's idempotency key, unique per conversation
              (the widget's client_msg_id).
    """

    name: str = ""
    label: str = ""
    streams: bool = False
    identity: ChannelIdentity = ChannelIdentity(
        description="The sender's channel address matches the conversation's.", verify=address_only
    )
    external_id_scope: Literal["tenant", "conversation"] = "tenant"

    def conversation_open(self, *, tenant: Tenant, key: str, sender: ChannelSender) -> Conversation:
        """The conversation `key` names on this channel in `tenant`, locked (order 1 of
        apps.conversations.locks); created on the first message. Runs inside the caller's transaction.

        The default keeps one conversation per (tenant, channel, key), e.g. per phone number: written to
        again after it was resolved, it is reopened for a new episode. A key of another tenant never
        resolves: the lookup is scoped to `tenant`."""
        from apps.conversations.channels.conversations import keyed_conversation_open

        return keyed_conversation_open(tenant=tenant, channel=self.name, key=key, sender=sender)

    def deliver(self, *, delivery: Delivery) -> DeliveryResult:
        """Sends `delivery.message` (its final `text`) to the conversation's customer on this channel.

        Called by the delivery worker with the Delivery row locked, at most once at a time per row; it must
        not raise for expected failures (return a failed DeliveryResult), and should pass `delivery.id` to
        the provider as its idempotency key where the provider takes one. Streaming channels are delivered
        by their socket and never get Delivery rows."""
        raise NotImplementedError(f"The {self.name} channel does not deliver messages.")

    def __repr__(self) -> str:
        return f"<ChannelType {self.name}>"


_registry: dict[str, ChannelType] = {}


def channel_register(channel_type: ChannelType) -> ChannelType:
    """Registers a channel type under its name (from an AppConfig.ready()). Registering the same name
    again replaces the earlier type (a reloaded app, a test's fake); returns the type."""
    name = channel_type.name
    if not name or len(name) > NAME_MAX_LENGTH or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(
            f"A channel name is 1 to {NAME_MAX_LENGTH} lowercase letters, digits or _: {name!r}."
        )
    _registry[name] = channel_type
    return channel_type


def channel_unregister(name: str) -> None:
    """Removes a channel type (tests that register a fake one remove it again)."""
    _registry.pop(name, None)


def channel_get(name: str) -> ChannelType:
    """The registered type of that name; BadRequest (a clear sentence) for any other name."""
    channel_type = _registry.get(name)
    if channel_type is None:
        raise BadRequest(f"There is no channel called {name!r}.")
    return channel_type


def channel_find(name: str) -> ChannelType | None:
    """The registered type of that name, or None (for stored names whose app may be gone)."""
    return _registry.get(name)


def channels_all() -> list[ChannelType]:
    """Every registered type, by name."""
    return [_registry[name] for name in sorted(_registry)]


def channel_label(name: str) -> str:
    """What staff read for a stored channel name, also for one whose app is no longer installed."""
    channel_type = _registry.get(name)
    return channel_type.label if channel_type is not None else name
