"""The messaging channel's reads: what staff see of a conversation's channel (its label and the number,
masked unless the reader may see personal details)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from apps.accounts.models import Tenant
from apps.conversations.channels.registry import MESSAGING, channel_label
from apps.conversations.models import Conversation
from apps.messaging.models import MessagingChannel
from apps.messaging.signing import phone_masked

MAX_IDS = 200


@dataclass(frozen=True)
class ChannelBadge:
    conversation_id: str
    channel: str
    label: str
    address: str  # the phone number, whole or masked


def channel_badges(*, tenant: Tenant, conversation_ids: Iterable[str], original: bool) -> list[ChannelBadge]:
    """The messaging conversations among `conversation_ids` (of this tenant only; others, unknown ids and
    malformed ones are left out)."""
    ids: list[uuid.UUID] = []
    for raw in list(conversation_ids)[:MAX_IDS]:
        try:
            ids.append(uuid.UUID(str(raw)))
        except ValueError:
            continue
    rows = (
        Conversation.objects.for_tenant(tenant)
        .filter(id__in=ids, channel=MESSAGING)
        .only("id", "channel_address")
    )
    label = channel_label(MESSAGING)
    return [
        ChannelBadge(
            conversation_id=str(row.id),
            channel=MESSAGING,
            label=label,
            address=row.channel_address if original else phone_masked(row.channel_address),
        )
        for row in rows
    ]


def messaging_channel_of(*, tenant: Tenant) -> MessagingChannel | None:
    return MessagingChannel.objects.filter(tenant=tenant).first()
