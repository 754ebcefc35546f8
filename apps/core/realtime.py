"""Realtime primitives shared by every consumer: size-bounded, validated inbound frames and error frames."""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from pydantic import TypeAdapter, ValidationError

from apps.core.errors import BadRequest, HelpdeskError, MessageTooLong, WebsocketClose, error_frame

MAX_FRAME_BYTES = 64 * 1024

logger = logging.getLogger(__name__)


def staff_group(tenant_id: object) -> str:
    """The channel-layer group of one tenant's signed-in staff (tenant scope is in the name, rule 3)."""
    return f"staff.{tenant_id}"


def staff_publish(tenant_id: object, payload: dict[str, Any]) -> None:
    """Best-effort push to a tenant's staff sockets; the database stays the truth (STYLE rule 8).

    Call it from `transaction.on_commit`. A channel-layer outage must not fail the write that preceded it.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(staff_group(tenant_id), {"type": "staff.event", "payload": payload})
    except Exception as exc:  # the push is an optimisation: clients also poll
        logger.warning("staff push to %s failed: %s", tenant_id, exc.__class__.__name__)


class BaseConsumer(AsyncJsonWebsocketConsumer):
    """Parses and bounds every inbound frame; subclasses implement `handle(frame)` for validated frames."""

    # A pydantic adapter for the consumer's frames, usually a union discriminated on `type`.
    frame_adapter: TypeAdapter[Any]

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is None:
            await self.close(code=WebsocketClose.POLICY)  # binary frames are not part of the protocol
            return
        if len(text_data.encode("utf-8", errors="surrogatepass")) > MAX_FRAME_BYTES:
            await self.send_error(MessageTooLong(f"Frames are limited to {MAX_FRAME_BYTES // 1024} KiB."))
            await self.close(code=WebsocketClose.TOO_BIG)
            return
        try:
            raw = json.loads(text_data)
        except ValueError:
            await self.send_error(BadRequest("Frames must be JSON objects."))
            return
        client_msg_id = raw.get("client_msg_id") if isinstance(raw, dict) else None
        try:
            frame = self.frame_adapter.validate_python(raw)
        except ValidationError as exc:
            problem = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'frame'}: {e['msg']}" for e in exc.errors()[:3]
            )
            await self.send_error(BadRequest(f"Invalid frame: {problem}"), client_msg_id=client_msg_id)
            return
        try:
            await self.handle(frame)
        except HelpdeskError as exc:
            await self.send_error(exc, client_msg_id=client_msg_id)

    async def reject(self, code: int) -> None:
        """Refuses a connection with a close code the client can read (CONTRACTS §1).

        Closing before accepting makes Daphne answer the handshake with HTTP 403, which a browser only sees
        as a failed connection (1006); accepting first lets 4401/4403 reach it.
        """
        await self.accept()
        await self.close(code=code)

    async def handle(self, frame: Any) -> None:
        raise NotImplementedError

    async def send_error(self, error: HelpdeskError, *, client_msg_id: str | None = None) -> None:
        safe_id = client_msg_id if isinstance(client_msg_id, str) and len(client_msg_id) <= 64 else None
        await self.send_json(error_frame(error, client_msg_id=safe_id))
