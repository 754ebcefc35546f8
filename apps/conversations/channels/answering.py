"""Answers of non-streaming channels, run by a Celery worker: no socket holds them, so the turn runs in the
worker's own event loop (the same pipeline and lifecycle as the widget's, apps.conversations.assistant).
Its completed reply is then delivered by the channel (apps.conversations.channels.outbound)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from django.conf import settings

from apps.accounts.models import Tenant
from apps.conversations.models import Message
from apps.core.redis import state_key, state_redis

logger = logging.getLogger(__name__)


def channel_turn_answer(*, tenant_id: uuid.UUID | str, conversation_id: uuid.UUID | str, turn: int) -> str:
    """Runs the assistant's answer to `turn` once: a redelivered or duplicated task finds the turn
    answered (or being answered by another worker) and does nothing. Returns what happened: "answered",
    "superseded" (a newer message or a person came first), "skipped" or "gone"."""
    from apps.conversations.assistant import assistant_turn_run
    from apps.llm.clients import close_async_clients

    try:
        tenant_key, conversation_key = uuid.UUID(str(tenant_id)), uuid.UUID(str(conversation_id))
    except ValueError:
        return "gone"
    tenant = Tenant.objects.filter(id=tenant_key).first()
    if tenant is None:
        return "gone"
    if Message.objects.filter(
        tenant=tenant, conversation_id=conversation_key, role=Message.Role.ASSISTANT, turn=turn
    ).exists():
        return "skipped"  # answered already (the task was delivered twice)
    marker = state_key("channel-answer", tenant.id, conversation_key, turn)
    try:
        if not state_redis().set(marker, "1", nx=True, ex=settings.CHANNEL_ANSWER_LEASE_SECONDS):
            return "skipped"  # another worker is answering it
    except Exception as exc:
        # Without Redis the reply row still serialises: reply_start refuses a superseded turn.
        logger.warning("answer lease not taken: %s", exc.__class__.__name__)

    async def run() -> Message | None:
        try:
            result = await assistant_turn_run(tenant=tenant, conversation_id=conversation_key, turn=turn)
            return result.message
        finally:
            await close_async_clients()  # this event loop ends with the task

    message = asyncio.run(run())
    if message is None:
        return "superseded"
    return "answered" if message.status == Message.Status.COMPLETE else str(message.status)
