"""The channel types of this app: the website widget and the command line (`manage.py ask`). Both stream:
their answers run in the process that holds the socket or the terminal, and they get no Delivery rows."""

from __future__ import annotations

import uuid

from apps.accounts.models import Tenant
from apps.conversations.channels.registry import (
    CLI,
    WIDGET,
    ChannelIdentity,
    ChannelSender,
    ChannelType,
    DeliveryResult,
    channel_register,
)
from apps.conversations.identity import SessionRevoked
from apps.conversations.locks import conversation_lock_find
from apps.conversations.models import Conversation, Delivery
from apps.conversations.selectors import session_opens
from apps.core.errors import BadRequest, NotFound


def _session_opens(conversation: Conversation, sender: ChannelSender) -> bool:
    """The widget's proof: signed session claims that open this very conversation (same visitor, same
    verified contact, session not ended). Anything else closes the socket as unauthenticated."""
    if sender.claims is None or not session_opens(conversation, sender.claims):
        raise SessionRevoked()
    return True


def _operator_vouches(conversation: Conversation, sender: ChannelSender) -> bool:
    """The command line runs on the server: the operator vouched for the customer when opening it."""
    return sender.contact_id is None or conversation.contact_id == sender.contact_id


class WidgetChannel(ChannelType):
    name = WIDGET
    label = "Website widget"
    streams = True
    identity = ChannelIdentity(
        description=(
            "A signed widget session token (anonymous visitor, or a customer the company vouched for with "
            "its identity HMAC) whose claims open the conversation."
        ),
        verify=_session_opens,
    )
    external_id_scope = "conversation"

    def conversation_open(self, *, tenant: Tenant, key: str, sender: ChannelSender) -> Conversation:
        # The session's conversation, created on its first message (the key is the claims' conversation id).
        from apps.conversations.services import _conversation_lock

        if sender.claims is None or str(sender.claims.conversation_id) != key:
            raise SessionRevoked()
        return _conversation_lock(tenant=tenant, claims=sender.claims)

    def deliver(self, *, delivery: Delivery) -> DeliveryResult:
        # Never called by the outbound path (streaming channels get no rows): the socket and the event
        # log, which a reconnecting widget replays by seq, are the widget's delivery.
        return DeliveryResult(status="delivered")


class CliChannel(ChannelType):
    name = CLI
    label = "Command line"
    streams = True
    identity = ChannelIdentity(
        description="The operator on the server; a customer is named by their external id and must exist.",
        verify=_operator_vouches,
    )
    external_id_scope = "conversation"

    def conversation_open(self, *, tenant: Tenant, key: str, sender: ChannelSender) -> Conversation:
        try:
            conversation_id = uuid.UUID(key)
        except ValueError:
            raise BadRequest(f"{key!r} is not a conversation id.") from None
        conversation = conversation_lock_find(conversation_id=conversation_id, tenant_id=tenant.id)
        if conversation is None:
            raise NotFound(f"No conversation {key} in this company.")
        return conversation

    def deliver(self, *, delivery: Delivery) -> DeliveryResult:
        # The command prints the answer as it streams; nothing to send afterwards.
        return DeliveryResult(status="delivered")


def builtin_channels_register() -> None:
    """Called from ConversationsConfig.ready()."""
    channel_register(WidgetChannel())
    channel_register(CliChannel())
