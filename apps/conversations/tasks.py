"""Celery interfaces of the conversations app: ids in, one service call (STYLE rule 9). They run on the
default queue: answers and deliveries of channels that have no socket (docs/architecture/channels.md)."""

from __future__ import annotations

from celery import shared_task

from apps.conversations.channels import answering, outbound


@shared_task(acks_late=True, soft_time_limit=150, time_limit=180)
def channel_turn_answer(tenant_id: str, conversation_id: str, turn: int) -> str:
    return answering.channel_turn_answer(tenant_id=tenant_id, conversation_id=conversation_id, turn=turn)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def channel_delivery_send(delivery_id: str) -> str:
    step = outbound.delivery_attempt(delivery_id=delivery_id)
    if step.retry_in is not None:
        # Bounded: delivery_attempt fails the row once CHANNEL_DELIVERY_MAX_ATTEMPTS are spent.
        channel_delivery_send.apply_async((delivery_id,), countdown=step.retry_in)
    return step.status


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def channel_deliveries_resend_due() -> int:
    return outbound.deliveries_resend_due()
