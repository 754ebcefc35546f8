"""Outbound messages on channels that do not stream (docs/architecture/channels.md, "Outbound").

An assistant reply completed, or an agent's reply, in a conversation whose channel does not stream gets one
Delivery row in the transaction that stores it; after commit a Celery task
(apps.conversations.tasks.channel_delivery_send) hands it to the channel type's `deliver`. The worker locks
only the Delivery row (it holds no lock of the conversation's order, apps.conversations.locks), and a row
that is no longer queued is never sent again: a redelivered or duplicated task sends nothing twice.
Failures are retried with exponential backoff up to CHANNEL_DELIVERY_MAX_ATTEMPTS, then marked failed with
the last error for staff to see.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.conversations.channels.registry import DeliveryResult, channel_find, channel_get
from apps.conversations.locks import delivery_lock, delivery_lock_by_provider
from apps.conversations.models import Conversation, Delivery, Message
from apps.core.errors import BadRequest
from apps.core.event_types import Delivery as DeliveryView
from apps.core.event_types import DeliveryUpdated
from apps.core.realtime import StaffStream, staff_publish

logger = logging.getLogger(__name__)

SEND_TASK = "apps.conversations.tasks.channel_delivery_send"
Status = Delivery.Status


def delivery_queue(*, message: Message, conversation: Conversation) -> Delivery | None:
    """Queues `message` (an assistant's or an agent's, stored in the caller's transaction) for delivery on
    the conversation's channel, and its send after commit. None when the channel streams (the socket and
    the event log deliver it) or is not installed. Queuing the same message again returns its row."""
    channel_type = channel_find(conversation.channel)
    if channel_type is None or channel_type.streams:
        return None
    try:
        with transaction.atomic():
            delivery = Delivery.objects.create(
                tenant_id=message.tenant_id, message=message, channel=conversation.channel
            )
    except IntegrityError:
        return Delivery.objects.get(message=message, channel=conversation.channel)
    delivery_id = delivery.id
    transaction.on_commit(lambda: _send_enqueue(delivery_id))
    return delivery


def _send_enqueue(delivery_id: uuid.UUID, *, countdown: float | None = None) -> None:
    try:
        current_app.send_task(SEND_TASK, args=[str(delivery_id)], countdown=countdown)
    except Exception as exc:
        # The row stays queued: deliveries_resend_due() picks it up (a worker start runs it).
        logger.error("delivery %s not queued: %s", delivery_id, exc.__class__.__name__)


@dataclass(frozen=True)
class DeliveryStep:
    """What one run of the send task did: the row's status after it, and when to try again (seconds), if
    at all."""

    status: str
    retry_in: float | None = None


def delivery_backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base, then doubling, capped at ten minutes."""
    base = float(settings.CHANNEL_DELIVERY_BACKOFF_SECONDS)
    return float(min(600.0, base * (2 ** max(0, attempts - 1))))


def delivery_attempt(*, delivery_id: uuid.UUID | str) -> DeliveryStep:
    """One attempt at sending a queued delivery (the send task's body). Idempotent: a delivery that is
    sent, delivered or failed is left as it is."""
    try:
        key = uuid.UUID(str(delivery_id))
    except ValueError:
        return DeliveryStep(status="missing")
    with transaction.atomic():
        delivery = delivery_lock(delivery_id=key)
        if delivery is None:
            return DeliveryStep(status="missing")
        if delivery.status != Status.QUEUED:
            return DeliveryStep(status=delivery.status)
        delivery.attempts += 1
        result = _deliver(delivery)
        now = timezone.now()
        retry_in: float | None = None
        if result.status in (Status.SENT, Status.DELIVERED):
            delivery.status = result.status
            delivery.provider_message_id = result.provider_message_id[:200]
            delivery.last_error = ""
            delivery.next_attempt_at = None
            delivery.sent_at = now
            if result.status == Status.DELIVERED:
                delivery.delivered_at = now
        elif result.retryable and delivery.attempts < settings.CHANNEL_DELIVERY_MAX_ATTEMPTS:
            retry_in = delivery_backoff(delivery.attempts)
            delivery.last_error = (result.error or "The channel did not accept the message.")[:300]
            delivery.next_attempt_at = now + datetime.timedelta(seconds=retry_in)
        else:
            delivery.status = Status.FAILED
            delivery.last_error = (result.error or "The channel did not accept the message.")[:300]
            delivery.next_attempt_at = None
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "provider_message_id",
                "last_error",
                "next_attempt_at",
                "sent_at",
                "delivered_at",
                "updated_at",
            ]
        )
        _staff_tell(delivery)
    log = logger.warning if delivery.status == Status.FAILED or retry_in is not None else logger.info
    log(
        "delivery %s on %s: %s after %s attempt(s)%s",
        delivery.id,
        delivery.channel,
        delivery.status,
        delivery.attempts,
        f", again in {retry_in:.0f} s" if retry_in is not None else "",
    )
    return DeliveryStep(status=delivery.status, retry_in=retry_in)


def delivery_text(message: Message) -> str:
    """What a channel that shows plain text (an SMS, an email) sends for a message: an answer's text, then
    the sources its [n] markers point to, named, since there are no links to open as in the widget."""
    text = message.text
    if message.role != Message.Role.ASSISTANT:
        return text
    named: dict[int, str] = {}
    for citation in message.citations or []:
        if not isinstance(citation, dict):
            continue
        number, title = citation.get("n"), str(citation.get("title") or "").strip()
        if not isinstance(number, int) or not title or number in named or f"[{number}]" not in text:
            continue
        section = str(citation.get("section") or "").split(" > ")[-1].strip()
        named[number] = f"{title} > {section}" if section and section != title else title
    if not named:
        return text
    sources = "\n".join(f"[{number}] {name}" for number, name in sorted(named.items()))
    return f"{text}\n\nSources:\n{sources}"


def _deliver(delivery: Delivery) -> DeliveryResult:
    try:
        channel_type = channel_get(delivery.channel)
    except BadRequest:
        return DeliveryResult(
            status="failed", error=f"The {delivery.channel} channel is not installed.", retryable=False
        )
    try:
        return channel_type.deliver(delivery=delivery)
    except Exception as exc:
        # Unexpected failures are retried: the class name only (a message could hold the address).
        logger.exception("delivery %s on %s raised", delivery.id, delivery.channel)
        return DeliveryResult(status="failed", error=f"The channel failed ({exc.__class__.__name__}).")


def delivery_status_record(
    *, tenant_id: uuid.UUID, channel: str, provider_message_id: str, status: str, error: str = ""
) -> Delivery | None:
    """A provider's status callback ("delivered", "failed") for a message it accepted earlier; None if no
    delivery of this tenant and channel has that provider id. A delivered message stays delivered."""
    if status not in (Status.DELIVERED, Status.FAILED) or not provider_message_id:
        raise BadRequest("A delivery status is 'delivered' or 'failed', with the provider's message id.")
    with transaction.atomic():
        delivery = delivery_lock_by_provider(
            tenant_id=tenant_id, channel=channel, provider_message_id=provider_message_id
        )
        if delivery is None:
            return None
        if delivery.status == Status.DELIVERED or delivery.status == status:
            return delivery
        delivery.status = status
        if status == Status.DELIVERED:
            delivery.delivered_at = timezone.now()
            delivery.last_error = ""
        else:
            delivery.last_error = (error or "The provider could not deliver the message.")[:300]
        delivery.save(update_fields=["status", "delivered_at", "last_error", "updated_at"])
        _staff_tell(delivery)
    return delivery


def deliveries_resend_due(*, limit: int = 500) -> int:
    """Queues the send of deliveries still queued past their next attempt (a lost task, a worker killed
    mid-retry); returns how many."""
    cutoff = timezone.now() - datetime.timedelta(seconds=60)
    due = list(
        Delivery.objects.filter(status=Status.QUEUED)
        .filter(next_attempt_at__lt=cutoff)
        .values_list("id", flat=True)[:limit]
    ) + list(
        Delivery.objects.filter(
            status=Status.QUEUED, next_attempt_at__isnull=True, created_at__lt=cutoff
        ).values_list("id", flat=True)[:limit]
    )
    for delivery_id in due:
        _send_enqueue(delivery_id)
    return len(due)


def delivery_render(delivery: Delivery) -> dict[str, Any]:
    """A delivery as staff see it beside its message (the console's timeline)."""
    return {
        "channel": delivery.channel,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "at": (delivery.delivered_at or delivery.sent_at or delivery.updated_at).isoformat(),
    }


def deliveries_render(message: Message) -> list[dict[str, Any]]:
    """The deliveries of one message (from a `prefetch_related("deliveries")` when the caller made one)."""
    return [delivery_render(d) for d in message.deliveries.all()]


def deliveries_by_message(*, message_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Deliveries of many messages in one query, by message id."""
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for delivery in Delivery.objects.filter(message_id__in=list(message_ids)).order_by("created_at"):
        out.setdefault(delivery.message_id, []).append(delivery_render(delivery))
    return out


def conversation_deliveries(*, conversation: Conversation) -> list[dict[str, Any]]:
    """Every delivery of the conversation's messages, oldest first, with the message it carries."""
    rows = Delivery.objects.filter(message__conversation=conversation).order_by("created_at")
    return [{"message_id": str(d.message_id), **delivery_render(d)} for d in rows]


def _staff_tell(delivery: Delivery) -> None:
    """Agents' consoles update the message's delivery mark live (best effort, after commit)."""
    payload = DeliveryUpdated(
        conversation_id=str(delivery.message.conversation_id),
        message_id=str(delivery.message_id),
        delivery=DeliveryView.model_validate(delivery_render(delivery)),
    ).payload()
    tenant_id = delivery.tenant_id
    transaction.on_commit(lambda: staff_publish(tenant_id, payload, stream=StaffStream.AGENT))
