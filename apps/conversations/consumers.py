"""The customer widget's websocket (protocol: docs/architecture/realtime.md)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from apps.accounts.models import Tenant
from apps.conversations import selectors, services
from apps.conversations.assistant import assistant_turn_schedule
from apps.conversations.identity import SessionClaims, SessionRevoked
from apps.conversations.models import Conversation
from apps.conversations.sessions import session_still_open
from apps.conversations.stream import stream_snapshot
from apps.conversations.tool_services import tool_run_decide_by_customer
from apps.conversations.widget import (
    SOCKET_SLOT_RENEW_SECONDS,
    rate_limits_for_frame,
    rate_limits_for_message,
    socket_slots_for_ip,
    widget_tenant_for_origin,
)
from apps.core import tracing
from apps.core.clientip import client_ip_from_scope
from apps.core.dbasync import db_async
from apps.core.errors import HelpdeskError, RateLimited, Unauthorized, WebsocketClose
from apps.core.event_types import Pong, Welcome, WidgetAck
from apps.core.outage import DATABASE_DOWN, database_down
from apps.core.ratelimit import rate_limit_check, slot_release, slot_take
from apps.core.realtime import BaseConsumer

logger = logging.getLogger(__name__)

ClientMsgId = Annotated[str, Field(min_length=1, max_length=64)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_msg_id: ClientMsgId


class HelloFrame(_Frame):
    type: Literal["hello"]
    token: Annotated[str, Field(min_length=1, max_length=1024)]
    last_seq: Annotated[int, Field(ge=0)] = 0


class MessageFrame(_Frame):
    type: Literal["message"]
    # Length is checked by the service, so an over-long message gets `message_too_long`, not a schema error.
    text: str


class RetryFrame(_Frame):
    type: Literal["retry"]
    message_id: uuid.UUID


class HandoffFrame(_Frame):
    type: Literal["handoff.request"]
    reason: Annotated[str, Field(max_length=500)] = ""


class HandoffCancelFrame(_Frame):
    """The customer would rather go on with the assistant than wait for a person."""

    type: Literal["handoff.cancel"]


class HandoffEmailFrame(_Frame):
    """Nobody can answer live: the customer leaves an email to be answered at."""

    type: Literal["handoff.email"]
    email: Annotated[str, Field(min_length=3, max_length=254)]


class CsatFrame(_Frame):
    """The customer rates the conversation after it was resolved."""

    type: Literal["csat"]
    score: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, Field(max_length=2000)] = ""


class PingFrame(_Frame):
    type: Literal["ping"]


class ToolDecideFrame(_Frame):
    """The customer confirms (or cancels) a change the assistant proposed, where the company allows it."""

    type: Literal["tool.decide"]
    run_id: uuid.UUID
    approve: bool


Frame = Annotated[
    HelloFrame
    | MessageFrame
    | RetryFrame
    | HandoffFrame
    | HandoffCancelFrame
    | HandoffEmailFrame
    | CsatFrame
    | PingFrame
    | ToolDecideFrame,
    Field(discriminator="type"),
]


# Frames refused in a row for the budget before the socket is closed: a client that ignores `rate_limited`
# is flooding, not chatting.
REFUSED_FRAMES_BEFORE_CLOSE = 20


class WidgetConsumer(BaseConsumer):
    frame_adapter = TypeAdapter(Frame)

    tenant: Tenant
    claims: SessionClaims | None = None
    last_seq = 0
    group = ""
    ip = ""
    slot_held = False
    slot_renewed_at = 0.0
    session_checked_at = 0.0
    refused_in_a_row = 0
    ended = False  # closed by us: whatever the client still sends is not read

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        query = self.scope.get("query_string", b"").decode("latin-1")
        key = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("key", "")
        try:
            tenant = await db_async(widget_tenant_for_origin)(widget_key=key, origin=origin)
        except DATABASE_DOWN:
            await self._try_later(accepted=False)
            return
        if tenant is None:
            await self.reject(WebsocketClose.FORBIDDEN)
            return
        self.tenant = tenant
        self.ip = client_ip_from_scope(self.scope)
        if not await slot_take(socket_slots_for_ip(ip=self.ip), member=self.channel_name):
            # The close code alone: the widget's sentence for 4429 says what happens, where an error frame
            # would have it say "you're sending messages too quickly" first.
            await self.reject(WebsocketClose.RATE_LIMITED)
            return
        self.slot_held, self.slot_renewed_at = True, time.monotonic()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.slot_held:
            self.slot_held = False
            await slot_release(socket_slots_for_ip(ip=self.ip), member=self.channel_name)

    async def admit(self) -> bool:
        """Every frame is counted against the visitor's and the address's budgets before it is parsed."""
        if self.ended:
            return False
        try:
            await rate_limit_check(
                rate_limits_for_frame(tenant=self.tenant, claims=self.claims, ip=self.ip), what="requests"
            )
        except RateLimited as error:
            self.refused_in_a_row += 1
            if self.refused_in_a_row >= REFUSED_FRAMES_BEFORE_CLOSE:
                logger.info("widget socket closed: it kept sending past its frame budget")
                await self._close_session(WebsocketClose.RATE_LIMITED)
            else:
                await self.send_error(error)
            return False
        self.refused_in_a_row = 0
        if self.slot_held and time.monotonic() - self.slot_renewed_at > SOCKET_SLOT_RENEW_SECONDS:
            self.slot_renewed_at = time.monotonic()
            await slot_take(socket_slots_for_ip(ip=self.ip), member=self.channel_name)
        return True

    async def handle(self, frame: Any) -> None:
        if isinstance(frame, HelloFrame):
            await self._hello(frame)
            return
        if self.claims is None:
            raise Unauthorized("Start with a hello frame carrying your session token.")
        # Every frame that reads or writes the conversation checks the session in its own database round
        # trip (`session_conversation`, `_conversation_lock`): a revoked one raises SessionRevoked there.
        try:
            await self._handle_in_session(frame)
        except SessionRevoked:
            await self._close_session(WebsocketClose.UNAUTHENTICATED)

    async def _handle_in_session(self, frame: Any) -> None:
        assert self.claims is not None
        if isinstance(frame, MessageFrame):
            await self._message(frame)
        elif isinstance(frame, RetryFrame):
            turn = await db_async(selectors.retry_turn)(
                tenant=self.tenant, claims=self.claims, message_id=frame.message_id
            )
            await self.send_json(WidgetAck(client_msg_id=frame.client_msg_id).payload())
            assistant_turn_schedule(
                tenant=self.tenant,
                conversation_id=self.claims.conversation_id,
                turn=turn,
                received_at=time.monotonic(),
                retry_of=frame.message_id,
            )
        elif isinstance(frame, HandoffFrame):
            event = await db_async(services.handoff_request)(
                tenant=self.tenant, claims=self.claims, reason=frame.reason
            )
            await self._ack(frame.client_msg_id, event)
        elif isinstance(frame, HandoffCancelFrame):
            event = await db_async(services.handoff_cancel)(tenant=self.tenant, claims=self.claims)
            await self._ack(frame.client_msg_id, event)
        elif isinstance(frame, HandoffEmailFrame):
            event = await db_async(services.contact_email_leave)(
                tenant=self.tenant, claims=self.claims, email=frame.email
            )
            await self._ack(frame.client_msg_id, event)
        elif isinstance(frame, CsatFrame):
            await self._rate(frame)
        elif isinstance(frame, ToolDecideFrame):
            await db_async(tool_run_decide_by_customer)(
                tenant=self.tenant, claims=self.claims, run_id=frame.run_id, approve=frame.approve
            )
            await self.send_json(WidgetAck(client_msg_id=frame.client_msg_id).payload())
        else:
            await self.send_json(Pong(client_msg_id=frame.client_msg_id).payload())

    async def _rate(self, frame: CsatFrame) -> None:
        """Whether a rating is possible is checked before the comment is redacted, and the redaction runs
        off the thread every database call shares: a flood of ratings costs a query each, not Presidio."""
        assert self.claims is not None
        await db_async(services.rating_check)(tenant=self.tenant, claims=self.claims)
        redacted = await sync_to_async(services.rating_comment_redact, thread_sensitive=False)(
            comment=frame.comment
        )
        await db_async(services.rating_record)(
            tenant=self.tenant, claims=self.claims, score=frame.score, redacted_comment=redacted
        )
        await self._ack(frame.client_msg_id, None)

    async def _session_stands(self) -> bool:
        """Before a push: re-checks, at most every WIDGET_SESSION_RECHECK_SECONDS, that the session this
        socket said hello with still stands (not signed out, not revoked by a rotated secret, not expired,
        its conversation still its own); closes 4401 when it does not, so the widget asks for a new one."""
        assert self.claims is not None
        if time.monotonic() - self.session_checked_at < settings.WIDGET_SESSION_RECHECK_SECONDS:
            return True
        still = await db_async(session_still_open)(tenant=self.tenant, claims=self.claims)
        if not still:
            await self._close_session(WebsocketClose.UNAUTHENTICATED)
            return False
        self.session_checked_at = time.monotonic()
        return True

    async def _close_session(self, code: int) -> None:
        """Stops every push before the close goes out."""
        self.ended = True
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = ""
        self.claims = None
        await self.close(code=code)

    async def _ack(self, client_msg_id: str, event: Any) -> None:
        """Acknowledges a frame; `seq` is the event it stored (none when nothing had to change)."""
        ack = WidgetAck(client_msg_id=client_msg_id, seq=event.seq if event is not None else None)
        await self.send_json(ack.payload())

    async def _hello(self, frame: HelloFrame) -> None:
        if self.claims is not None:
            await self.send_error(
                Unauthorized("This socket already said hello."), client_msg_id=frame.client_msg_id
            )
            return
        try:
            await self._resume(frame)
        except DATABASE_DOWN:
            await self._try_later(accepted=True)

    async def _try_later(self, *, accepted: bool) -> None:
        """The database is down (restarting): an error frame, then 1013, and the widget reconnects with
        backoff. Nothing was stored for this socket, so nothing is lost."""
        logger.warning("widget socket closed with 1013: the database is unavailable")
        if not accepted:
            await self.accept()
        await self.send_error(database_down())
        await self._close_session(WebsocketClose.TRY_AGAIN_LATER)

    async def _resume(self, frame: HelloFrame) -> None:
        claims = await db_async(services.widget_socket_resume)(tenant=self.tenant, token=frame.token)
        if claims is None:
            await self.close(code=WebsocketClose.UNAUTHENTICATED)
            return
        self.claims, self.session_checked_at = claims, time.monotonic()
        self.group = selectors.conversation_group(self.tenant.id, claims.conversation_id)
        # Join first, then read: anything pushed from now on arrives after the replay below, in order.
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.last_seq = frame.last_seq
        stored = await self._stored_after(self.last_seq)
        welcome = Welcome(
            client_msg_id=frame.client_msg_id,
            conversation_id=str(claims.conversation_id),
            verified=claims.verified,
            last_seq=stored[-1]["seq"] if stored else self.last_seq,
        )
        await self.send_json(welcome.payload())
        await self._send_stored(stored)
        snapshot = await stream_snapshot(tenant_id=self.tenant.id, conversation_id=claims.conversation_id)
        if snapshot is not None:
            await self.send_json(snapshot)

    async def _stored_after(self, seq: int) -> list[dict[str, Any]]:
        """Every stored event after `seq`, read page by page."""
        assert self.claims is not None
        events: list[dict[str, Any]] = []
        while True:
            page = await db_async(selectors.events_rendered)(
                tenant=self.tenant, conversation_id=self.claims.conversation_id, after=seq
            )
            events.extend(page)
            if len(page) < selectors.EVENT_PAGE:
                return events
            seq = page[-1]["seq"]

    async def _send_stored(self, events: list[dict[str, Any]]) -> None:
        for payload in events:
            if payload["seq"] > self.last_seq:
                await self.send_json(payload)
                self.last_seq = payload["seq"]

    async def _message(self, frame: MessageFrame) -> None:
        assert self.claims is not None
        # The root of the turn's trace (docs/architecture/tracing.md): ids only, never the words.
        attributes = {
            "helpdesk.tenant_id": str(self.tenant.id),
            "helpdesk.conversation_id": str(self.claims.conversation_id),
        }
        with tracing.turn_span("widget.message", attributes):
            answered = False
            try:
                answered = await self._message_traced(frame)
            finally:
                if not answered:  # no turn will claim this trace: the recorder need not keep it
                    tracing.turn_spans_claim(tracing.current_trace_id())

    async def _message_traced(self, frame: MessageFrame) -> bool:
        """Stores the message; True when the assistant was asked to answer it."""
        assert self.claims is not None
        received_at = time.monotonic()
        await rate_limit_check(rate_limits_for_message(tenant=self.tenant, claims=self.claims, ip=self.ip))
        # Validation and Presidio off the thread every database call shares: other conversations keep moving.
        with tracing.span("guardrails.redact") as redaction:
            prepared = await sync_to_async(services.message_prepare, thread_sensitive=False)(text=frame.text)
            redaction.set_attribute("helpdesk.pii_findings", len(prepared.findings))
        receipt = await db_async(services.message_receive)(
            tenant=self.tenant, claims=self.claims, client_msg_id=frame.client_msg_id, prepared=prepared
        )
        message_id = str(receipt.message.id)
        ack = WidgetAck(client_msg_id=frame.client_msg_id, message_id=message_id, seq=receipt.seq)
        await self.send_json(ack.payload())
        # The assistant answers only while it owns the conversation (CONTRACTS I6); a person, or the queue,
        # sees the message instead.
        if receipt.created and receipt.owner == Conversation.Status.ASSISTANT:
            assistant_turn_schedule(
                tenant=self.tenant,
                conversation_id=self.claims.conversation_id,
                turn=receipt.message.turn,
                received_at=received_at,
            )
            return True
        return False

    # ---- pushes from the conversation's group ----

    async def conv_event(self, event: dict[str, Any]) -> None:
        if self.claims is None or not await self._session_stands():
            return
        payload = event["payload"]
        seq = payload.get("seq", 0)
        if seq <= self.last_seq:
            return  # already sent by the replay
        if seq > self.last_seq + 1:
            # A push went missing (Redis blipped): the database has it.
            await self._send_stored(await self._stored_after(self.last_seq))
            return
        self.last_seq = seq
        await self.send_json(payload)

    async def conv_delta(self, event: dict[str, Any]) -> None:
        if self.claims is None or not await self._session_stands():
            return
        await self.send_json(event["payload"])

    async def send_error(self, error: HelpdeskError, *, client_msg_id: str | None = None) -> None:
        if error.code not in ("bad_request", "message_too_long"):
            logger.info("widget error %s: %s", error.code, error.message)
        await super().send_error(error, client_msg_id=client_msg_id)
