"""How a channel finds the conversation a message belongs to (ChannelType.conversation_open's default)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.accounts.models import Tenant
from apps.conversations.channels.registry import ChannelSender
from apps.conversations.locks import channel_conversation_lock
from apps.conversations.models import Conversation
from apps.core.errors import BadRequest
from apps.llm.routing import canary_assign

KEY_MAX = 200


def keyed_conversation_open(*, tenant: Tenant, channel: str, key: str, sender: ChannelSender) -> Conversation:
    """The conversation of (tenant, channel, key), locked (order 1 of apps.conversations.locks); created on
    the first message with the sender's address and verified contact. The caller holds a transaction."""
    key = (key or "").strip()
    if not key or len(key) > KEY_MAX:
        raise BadRequest(f"A conversation key must be 1 to {KEY_MAX} characters.")
    found = _keyed_lock(tenant=tenant, channel=channel, key=key)
    if found is not None:
        return found
    endpoint_id, canary_id, arm = canary_assign(tenant_id=tenant.id)
    try:
        with transaction.atomic():
            created = Conversation.objects.create(
                tenant=tenant,
                model_endpoint_id=endpoint_id,
                canary_id=canary_id,
                canary_arm=arm,
                channel=channel,
                channel_key=key,
                channel_address=sender.address[:254],
                contact_id=sender.contact_id,
                **({"visitor_id": sender.visitor_id} if sender.visitor_id else {}),
            )
    except IntegrityError:
        created = None  # the same customer's other message created it concurrently
    found = _keyed_lock(tenant=tenant, channel=channel, key=key)
    assert found is not None or created is None
    if found is None:
        raise BadRequest("That conversation could not be opened; please send the message again.")
    return found


def _keyed_lock(*, tenant: Tenant, channel: str, key: str) -> Conversation | None:
    return channel_conversation_lock(tenant_id=tenant.id, channel=channel, key=key)
