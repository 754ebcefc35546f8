"""Channels: how customers write to the desk and are answered (docs/architecture/channels.md).

The registry and the outbound path are importable from here. The inbound entry point lives in
`apps.conversations.channels.inbound.channel_message_receive` (it builds on apps.conversations.services,
which itself imports this package, so it is not re-exported here).
"""

from apps.conversations.channels.outbound import (
    DeliveryStep,
    conversation_deliveries,
    deliveries_by_message,
    deliveries_render,
    delivery_attempt,
    delivery_queue,
    delivery_render,
    delivery_status_record,
    delivery_text,
)
from apps.conversations.channels.registry import (
    CLI,
    EMAIL,
    MESSAGING,
    WIDGET,
    ChannelIdentity,
    ChannelSender,
    ChannelType,
    DeliveryResult,
    address_only,
    channel_find,
    channel_get,
    channel_label,
    channel_register,
    channel_unregister,
    channels_all,
)

__all__ = [
    "CLI",
    "EMAIL",
    "MESSAGING",
    "WIDGET",
    "ChannelIdentity",
    "ChannelSender",
    "ChannelType",
    "DeliveryResult",
    "DeliveryStep",
    "address_only",
    "channel_find",
    "channel_get",
    "channel_label",
    "channel_register",
    "channel_unregister",
    "channels_all",
    "conversation_deliveries",
    "deliveries_by_message",
    "deliveries_render",
    "delivery_attempt",
    "delivery_queue",
    "delivery_render",
    "delivery_status_record",
    "delivery_text",
]
