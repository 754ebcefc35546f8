"""Pushing one reply to the conversation's sockets while it is written, resumably.

Each piece goes to a Redis string *before* it is pushed, so a socket that joins the group and then reads
that string has every piece pushed before it joined, and receives every later one (docs/architecture/
realtime.md). Offsets count UTF-16 code units, the length a browser's JavaScript string reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from channels.layers import get_channel_layer

from apps.conversations.models import Message
from apps.conversations.selectors import conversation_group
from apps.conversations.services import reply_heartbeat
from apps.conversations.snapshots import SNAPSHOT_DISCARD, partial_key, streaming_key
from apps.core.dbasync import db_async
from apps.core.event_types import (
    AssistantCitations,
    AssistantDelta,
    AssistantProgress,
    AssistantSnapshot,
    Citation,
    ProgressStage,
)
from apps.core.redis import astate_redis

__all__ = ["ReplyStream", "partial_key", "stream_snapshot", "streaming_key", "utf16_length"]

logger = logging.getLogger(__name__)

PARTIAL_TTL_SECONDS = 3600
HEARTBEAT_SECONDS = 1.0
# While nothing is written (waiting for the model's first token, or its turn), the writer still beats this
# often, so a reply that is alive is never taken for one whose process died (ASSISTANT_STALE_SECONDS).
KEEPALIVE_SECONDS = 5.0
PUSH_INTERVAL_SECONDS = 0.05


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _reply_streaming(*, tenant_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID) -> bool:
    return Message.objects.filter(
        id=message_id, tenant_id=tenant_id, conversation_id=conversation_id, status=Message.Status.STREAMING
    ).exists()


async def stream_snapshot(*, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> dict[str, Any] | None:
    """The reply being written right now and its text so far, from Redis; None if none is (or Redis is
    unreachable: the client then waits for the stored final text).

    Redis is read first, the database last: a snapshot is only shown while its reply is still `streaming`
    in the database (the truth), whatever keys a lost delete or a dead writer left behind. A reply that
    finishes after this check is pushed to the reader as its final event, after the snapshot."""
    try:
        client = astate_redis()
        raw_id = await client.get(streaming_key(tenant_id, conversation_id))
        if raw_id is None:
            return None
        message_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        text = await client.get(partial_key(tenant_id, conversation_id, message_id))
    except Exception as exc:
        logger.warning("stream snapshot unavailable: %s", exc.__class__.__name__)
        return None
    try:
        reply_id = uuid.UUID(message_id)
    except ValueError:
        return None
    if not await db_async(_reply_streaming)(
        tenant_id=tenant_id, conversation_id=conversation_id, message_id=reply_id
    ):
        return None
    return AssistantSnapshot(
        message_id=message_id,
        text=text.decode("utf-8", errors="replace") if isinstance(text, bytes) else (text or ""),
    ).payload()


class ReplyStream:
    def __init__(self, *, message: Message, listener: Callable[[str], None] | None = None) -> None:
        self.message = message
        self.listener = listener  # `manage.py ask` prints the pieces as they come
        self.text = ""
        self.offset = 0  # UTF-16 units pushed to sockets so far
        self.pieces = 0
        self.first_piece_at: float | None = None
        self.last_piece_at: float | None = None
        self._group = conversation_group(message.tenant_id, message.conversation_id)
        self._layer = get_channel_layer()
        self._streaming_key = streaming_key(message.tenant_id, message.conversation_id)
        self._partial_key = partial_key(message.tenant_id, message.conversation_id, message.id)
        self._redis_ok = True
        self._last_beat = time.monotonic()
        self._beat: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._closed = False
        self._pending = ""  # received from the model, not pushed yet
        self._last_push: float | None = None
        self._timer: asyncio.Task[None] | None = None
        self._push_lock = asyncio.Lock()

    async def open(self) -> None:
        self._keepalive = asyncio.create_task(self._keep_beating())
        try:
            client = astate_redis()
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(self._partial_key, b"", ex=PARTIAL_TTL_SECONDS)
                pipe.set(self._streaming_key, str(self.message.id), ex=PARTIAL_TTL_SECONDS)
                await pipe.execute()
        except Exception as exc:
            self._redis_ok = False
            logger.warning(
                "reply %s streams without a Redis snapshot: %s", self.message.id, exc.__class__.__name__
            )

    async def progress(self, stage: ProgressStage, *, text: str = "") -> None:
        # `text` e.g. the running tool's "Checking your order…"
        progress = AssistantProgress(message_id=str(self.message.id), stage=stage, text=text or None)
        await self._push("conv.delta", progress.payload())
        # A reply waiting its turn for the model writes nothing for a while: it is alive, not stale.
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_SECONDS and (self._beat is None or self._beat.done()):
            self._last_beat = now
            self._beat = asyncio.create_task(self._heartbeat(self.text))

    async def citations(self, citations: list[dict[str, Any]]) -> None:
        """The sources of the quoted evidence, pushed with it so the widget lists them before the answer
        is complete (the stored final message carries them too)."""
        await self.flush()
        pushed = AssistantCitations(
            message_id=str(self.message.id), citations=[Citation.model_validate(c) for c in citations]
        )
        await self._push("conv.delta", pushed.payload())

    async def append(self, piece: str) -> None:
        """Takes one piece from the model. The first is pushed at once; later ones are batched for at most
        PUSH_INTERVAL_SECONDS, so a fast model costs one Redis write and one push per batch, not per token
        (on a 2-core machine that CPU comes out of the model's own generation)."""
        if not piece:
            return
        now = time.monotonic()
        if self.first_piece_at is None:
            self.first_piece_at = now
        self.last_piece_at = now
        self.text += piece
        self.pieces += 1
        if self.listener is not None:
            self.listener(piece)
        self._pending += piece
        if self._last_push is None or now - self._last_push >= PUSH_INTERVAL_SECONDS:
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_soon())
        if now - self._last_beat >= HEARTBEAT_SECONDS and (self._beat is None or self._beat.done()):
            self._last_beat = now
            # Off the token path: a slow database write must not delay the next piece.
            self._beat = asyncio.create_task(self._heartbeat(self.text))

    async def _flush_soon(self) -> None:
        await asyncio.sleep(PUSH_INTERVAL_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Pushes the text not pushed yet: to the Redis snapshot first, then to the sockets."""
        async with self._push_lock:
            if not self._pending:
                return
            piece, self._pending = self._pending, ""
            offset = self.offset
            self.offset += utf16_length(piece)
            self._last_push = time.monotonic()
            if self._redis_ok:
                try:
                    # With its expiry again, in the same round trip: if the snapshot was deleted meanwhile
                    # (the reply was interrupted by a person), APPEND recreates the key, never without one.
                    async with astate_redis().pipeline(transaction=False) as pipe:
                        pipe.append(self._partial_key, piece.encode("utf-8"))
                        pipe.expire(self._partial_key, PARTIAL_TTL_SECONDS)
                        await pipe.execute()
                except Exception as exc:
                    self._redis_ok = False
                    logger.warning(
                        "reply %s lost its Redis snapshot: %s", self.message.id, exc.__class__.__name__
                    )
            delta = AssistantDelta(message_id=str(self.message.id), offset=offset, text=piece)
            await self._push("conv.delta", delta.payload())

    async def _keep_beating(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            if time.monotonic() - self._last_beat >= KEEPALIVE_SECONDS and (
                self._beat is None or self._beat.done()
            ):
                self._last_beat = time.monotonic()
                self._beat = asyncio.create_task(self._heartbeat(self.text))

    async def _heartbeat(self, text: str) -> None:
        try:
            await db_async(reply_heartbeat)(message=self.message, partial_text=text)
        except Exception as exc:
            logger.warning("heartbeat of reply %s failed: %s", self.message.id, exc.__class__.__name__)

    async def _push(self, kind: str, payload: dict[str, Any]) -> None:
        if self._layer is None:
            return
        try:
            await self._layer.group_send(self._group, {"type": kind, "payload": payload})
        except Exception as exc:
            logger.warning("push to %s failed: %s", self._group, exc.__class__.__name__)

    async def close(self) -> None:
        """Stops the writer. Safe to call again: only the first call does anything."""
        if self._closed:
            return
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        if self._beat is not None and not self._beat.done():
            await asyncio.gather(self._beat, return_exceptions=True)
        if not self._redis_ok:
            return
        try:
            # The reply's final state deletes the snapshot on commit too (apps.conversations.snapshots);
            # this covers a reply whose final state could not be saved.
            await astate_redis().eval(
                SNAPSHOT_DISCARD, 2, self._streaming_key, self._partial_key, str(self.message.id)
            )
        except Exception as exc:
            logger.warning("reply %s snapshot not cleaned: %s", self.message.id, exc.__class__.__name__)
