"""The email channel type (registered in HandoffConfig.ready()): customers who write or are answered by
email. It does not stream: each answer, the assistant's or an agent's, goes out as one email through the
email path (apps.handoff.email_path.email_message_send), once it is complete."""

from __future__ import annotations

from apps.conversations.channels.registry import (
    EMAIL,
    ChannelIdentity,
    ChannelSender,
    ChannelType,
    DeliveryResult,
    channel_register,
)
from apps.conversations.models import Conversation, Delivery


def _address_matches(conversation: Conversation, sender: ChannelSender) -> bool:
    """The From address is the one the conversation answers: the address that started an email thread
    (`channel_address`) or the one a widget customer left to be answered at (`contact_email`, the ticket's).
    The webhook checks the reply token, the thread headers and SPF/DKIM before it gets here."""
    address = (sender.address or "").strip().lower()
    if not address:
        return False
    known = {
        (conversation.channel_address or "").strip().lower(),
        (conversation.contact_email or "").strip().lower(),
    }
    return address in known - {""}


class EmailChannel(ChannelType):
    name = EMAIL
    label = "Email"
    streams = False
    identity = ChannelIdentity(
        description=(
            "The From address equals the address the conversation answers (the one that started the email "
            "thread, or the one the customer left), reached through a ticket's reply+<token>@ address or "
            "the thread's Message-IDs."
        ),
        verify=_address_matches,
    )
    external_id_scope = "tenant"

    def deliver(self, *, delivery: Delivery) -> DeliveryResult:
        # Imported here: registering the type in ready() does not load the mail parser.
        from apps.handoff import email_path

        # SMTP errors (OSError) propagate: the delivery worker retries them with backoff.
        rfc_id = email_path.email_message_send(message_id=delivery.message_id)
        return DeliveryResult(status="sent", provider_message_id=rfc_id)


def email_channel_register() -> None:
    channel_register(EmailChannel())
