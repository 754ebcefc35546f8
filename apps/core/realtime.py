"""Realtime primitives shared by every consumer: size-bounded, validated inbound frames and error frames, and
the staff push streams with their re-authorisation (docs/architecture/realtime.md, "Staff pushes")."""

from __future__ import annotations

import json
import logging
import time
from enum import StrEnum
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from pydantic import TypeAdapter, ValidationError

from apps.core.errors import BadRequest, HelpdeskError, MessageTooLong, WebsocketClose, error_frame

# The largest inbound frame a consumer reads. Daphne's protocol refuses far larger ones before they are
# buffered (helpdesk/daphne_close_codes.py), with the same error frame and close code as below.
MAX_FRAME_BYTES = 64 * 1024

logger = logging.getLogger(__name__)


def frame_too_big() -> MessageTooLong:
    """The error a frame past MAX_FRAME_BYTES gets before the socket closes with 1009."""
    return MessageTooLong(f"Frames are limited to {MAX_FRAME_BYTES // 1024} KiB.")


# How long one socket trusts its last access check before a push makes it read the membership again. Every
# push would otherwise cost a query per open socket (a busy queue pushes to every agent many times a
# minute); a few seconds is the longest someone removed keeps receiving what was already on its way.
STAFF_RECHECK_SECONDS = 5.0


class StaffStream(StrEnum):
    """The named streams of staff pushes. Who may receive each is declared once, in
    `apps.accounts.selectors.STAFF_STREAM_ROLES` (roles belong to the accounts app)."""

    # Document versions being processed and knowledge gaps: what editors work on.
    KNOWLEDGE = "knowledge"
    # The queue, notes, presence, case files, tickets, escalations and conversation activity: customers'
    # names and agents' private notes, for agents only.
    AGENT = "agent"


def staff_group(tenant_id: object, stream: StaffStream) -> str:
    """The channel-layer group of one stream of one tenant (tenant scope is in the name, rule 3)."""
    return f"staff.{tenant_id}.{stream.value}"


def staff_publish(tenant_id: object, payload: dict[str, Any], *, stream: StaffStream) -> None:
    """Best-effort push to the tenant's staff sockets allowed `stream`; the database stays the truth (rule 8).

    Call it from `transaction.on_commit`. A channel-layer outage must not fail the write that preceded it.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "staff.event", "stream": stream.value, "payload": payload}
    try:
        async_to_sync(layer.group_send)(staff_group(tenant_id, stream), message)
    except Exception as exc:  # the push is an optimisation: clients also poll
        logger.warning("staff push to %s failed: %s", tenant_id, exc.__class__.__name__)


class BaseConsumer(AsyncJsonWebsocketConsumer):
    """Parses and bounds every inbound frame; subclasses implement `handle(frame)` for validated frames."""

    # A pydantic adapter for the consumer's frames, usually a union discriminated on `type`.
    frame_adapter: TypeAdapter[Any]
    # Closed for a frame it could not read: frames already on their way are not read either.
    closing = False

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if self.closing:
            return
        # Binary frames and frames past the limit get an error frame, then the socket closes: a client that
        # sends them does not speak this protocol. A malformed or unknown text frame gets the error frame
        # alone (CONTRACTS §3).
        if text_data is None:
            error = BadRequest("Frames must be text: JSON objects.")
            await self.close_with_error(error, code=WebsocketClose.POLICY)
            return
        if len(text_data.encode("utf-8", errors="surrogatepass")) > MAX_FRAME_BYTES:
            await self.close_with_error(frame_too_big(), code=WebsocketClose.TOO_BIG)
            return
        if not await self.admit():
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

    async def close_with_error(self, error: HelpdeskError, *, code: int) -> None:
        self.closing = True
        await self.send_error(error)
        await self.close(code=code)

    async def admit(self) -> bool:
        """Whether to read the next frame at all (a subclass's frame budget); False drops it unread."""
        return True

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


class StaffStreamConsumer(BaseConsumer):
    """A staff socket that joins the streams its member's roles allow and is re-authorised before it relays
    a push: access read at connect can be gone (membership removed, role taken away, tenant deactivated)
    while the socket stays open for hours.

    Subclasses authenticate in `connect`, call `streams_join`, and implement `streams_allowed`.
    """

    streams: frozenset[StaffStream] = frozenset()
    stream_groups: tuple[str, ...] = ()
    checked_at = float("-inf")
    revoked = False

    async def streams_allowed(self) -> frozenset[StaffStream] | None:
        """The streams the member may receive now, read from the database; None once they lost the tenant."""
        raise NotImplementedError

    async def streams_join(self, *, tenant_id: object, streams: frozenset[StaffStream]) -> None:
        """Joins the tenant's groups of `streams`. The caller has just read the member's access to choose
        them, so that read counts as the first check."""
        self.checked_at = time.monotonic()
        self.streams = streams
        self.stream_groups = tuple(staff_group(tenant_id, stream) for stream in sorted(streams))
        for group in self.stream_groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def streams_leave(self) -> None:
        groups, self.stream_groups = self.stream_groups, ()
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def authorised(self, *, fresh: bool = False) -> bool:
        """Whether the member may still receive every stream this socket joined; revokes the socket if not.

        A check younger than STAFF_RECHECK_SECONDS is trusted unless `fresh` is asked for (inbound frames
        that act on the tenant's data ask for it).
        """
        if self.revoked:
            return False
        started = time.monotonic()
        if not fresh and started - self.checked_at < STAFF_RECHECK_SECONDS:
            return True
        allowed = await self.streams_allowed()
        if allowed is None or not self.streams <= allowed:
            await self.revoke()
            return False
        # From when the read began: the answer says nothing about changes committed while it ran.
        self.checked_at = started
        return True

    async def revoke(self) -> None:
        """Leaves every group before closing, so nothing more is relayed while the close goes out."""
        if self.revoked:
            return
        self.revoked = True
        await self.streams_leave()
        await self.close(code=WebsocketClose.FORBIDDEN)

    async def disconnect(self, code: int) -> None:
        await self.streams_leave()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if not self.revoked:  # frames already in flight when the socket was closed go unanswered
            await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)

    async def staff_event(self, event: dict[str, Any]) -> None:
        """Relays a push of one of the joined streams, once the member is known to be allowed it still."""
        try:
            stream = StaffStream(event.get("stream", ""))
        except ValueError:  # not one of our streams: relayed to nobody
            return
        if stream in self.streams and await self.authorised():
            await self.send_json(event["payload"])
