"""The agent console's websocket (/ws/console/<slug>/; protocol in docs/architecture/handoff.md).

A signed-in agent of the tenant joins the tenant's agent stream of staff pushes (queue, presence, notes,
case files, tickets, escalations, conversation activity) and, for the conversation open on screen, that
conversation's group. Every push, of either kind, is relayed only while the agent is still an agent here
(re-checked against the database, trusted for STAFF_RECHECK_SECONDS); once not, the socket leaves its groups
and closes with 4403. Conversation events are re-read from the database and rendered for staff (customer
words redacted unless the agent may see them) rather than relayed: the conversation group carries what the
customer sees, original text included.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant, staff_streams
from apps.conversations.selectors import conversation_group
from apps.core.dbasync import db_async
from apps.core.errors import HelpdeskError, WebsocketClose
from apps.core.event_types import ConsoleAck, ConsoleHello, Pong, PresenceSet, Timeline, Unwatched, Watching
from apps.core.outage import DATABASE_DOWN, database_down
from apps.core.realtime import StaffStream, StaffStreamConsumer
from apps.handoff import selectors, services
from apps.handoff.models import Presence


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_msg_id: Annotated[str, Field(min_length=1, max_length=56)] | None = None


class PingFrame(_Frame):
    type: Literal["ping"]


class WatchFrame(_Frame):
    type: Literal["watch"]
    conversation_id: uuid.UUID


class UnwatchFrame(_Frame):
    type: Literal["unwatch"]


class ReplyFrame(_Frame):
    type: Literal["reply"]
    conversation_id: uuid.UUID
    text: Annotated[str, Field(min_length=1, max_length=6000)]
    client_msg_id: Annotated[str, Field(min_length=1, max_length=56)]


class PresenceFrame(_Frame):
    type: Literal["presence"]
    status: Literal["online", "away", "offline"]


Frame = Annotated[
    PingFrame | WatchFrame | UnwatchFrame | ReplyFrame | PresenceFrame, Field(discriminator="type")
]


class ConsoleConsumer(StaffStreamConsumer):
    frame_adapter = TypeAdapter(Frame)

    watched: uuid.UUID | None = None
    watched_group = ""
    watched_seq = 0
    connected = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.reject(WebsocketClose.UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["tenant_slug"]
        try:
            self.tenant, self.roles = await db_async(access_tenant)(actor=user, slug=slug, roles=[Role.AGENT])
        except HelpdeskError:
            await self.reject(WebsocketClose.FORBIDDEN)
            return
        except DATABASE_DOWN:
            await self._try_later(accepted=False)
            return
        self.user = user
        # The console shows the queue and conversations, nothing of the knowledge stream, even to admins.
        await self.streams_join(tenant_id=self.tenant.id, streams=frozenset({StaffStream.AGENT}))
        await self.accept()
        try:
            await db_async(services.presence_connect)(tenant=self.tenant, user=user)
        except DATABASE_DOWN:
            await self._try_later(accepted=True)
            return
        self.connected = True
        await self.send_json(
            ConsoleHello(tenant=self.tenant.slug, user_id=user.id, roles=sorted(self.roles)).payload()
        )

    async def _try_later(self, *, accepted: bool) -> None:
        """The database is down (restarting): an error frame, then 1013; the console says it is
        reconnecting and polls meanwhile. Nothing is relayed or read on this socket any more."""
        self.revoked = True
        await self.streams_leave()
        if not accepted:
            await self.accept()
        await self.send_error(database_down())
        await self.close(code=WebsocketClose.TRY_AGAIN_LATER)

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        await self._unwatch()
        if self.connected:
            self.connected = False
            await db_async(services.presence_disconnect)(tenant=self.tenant, user=self.user)

    async def handle(self, frame: Any) -> None:
        # Still an agent of this company? Checked afresh on every frame that reads or writes (a ping comes
        # every 20 s): someone removed, or no longer an agent, loses the queue and the conversations at once.
        if not isinstance(frame, UnwatchFrame) and not await self.authorised(fresh=True):
            return
        if isinstance(frame, PingFrame):
            await self._ping(frame)
        elif isinstance(frame, WatchFrame):
            await self._watch(frame)
        elif isinstance(frame, UnwatchFrame):
            await self._unwatch()
            await self.send_json(Unwatched(client_msg_id=frame.client_msg_id).payload())
        elif isinstance(frame, ReplyFrame):
            reply = await db_async(services.agent_reply)(
                tenant=self.tenant,
                conversation_id=frame.conversation_id,
                agent=self.user,
                text=frame.text,
                client_msg_id=frame.client_msg_id,
            )
            ack = ConsoleAck(
                seq=reply.seq, message_id=str(reply.message.id), client_msg_id=frame.client_msg_id
            )
            await self.send_json(ack.payload())
        elif isinstance(frame, PresenceFrame):
            presence = await db_async(services.presence_set)(
                tenant=self.tenant, user=self.user, status=Presence.Status(frame.status)
            )
            saved = PresenceSet.model_validate(
                {"status": presence.status, "client_msg_id": frame.client_msg_id}
            )
            await self.send_json(saved.payload())

    async def streams_allowed(self) -> frozenset[StaffStream] | None:
        try:
            # Roles are read again too: losing pii_viewer shows redacted words from the next push on.
            _, self.roles = await db_async(access_tenant)(
                actor=self.user, slug=self.tenant.slug, roles=[Role.AGENT]
            )
        except HelpdeskError:
            return None
        return staff_streams(roles=self.roles)

    async def revoke(self) -> None:
        await self._unwatch()
        await super().revoke()

    async def _ping(self, frame: PingFrame) -> None:
        await db_async(services.presence_seen)(tenant=self.tenant, user=self.user)
        await self.send_json(Pong(client_msg_id=frame.client_msg_id).payload())

    async def _watch(self, frame: WatchFrame) -> None:
        conversation = await db_async(selectors.access_staff_conversation)(
            tenant=self.tenant, conversation_id=frame.conversation_id
        )
        await self._unwatch()
        self.watched = conversation.id
        self.watched_group = conversation_group(self.tenant.id, conversation.id)
        # Join, then read the position: anything committed later arrives as a push and is read by seq.
        await self.channel_layer.group_add(self.watched_group, self.channel_name)
        self.watched_seq = await db_async(selectors.conversation_last_seq)(conversation_id=conversation.id)
        watching = Watching(
            conversation_id=str(conversation.id), last_seq=self.watched_seq, client_msg_id=frame.client_msg_id
        )
        await self.send_json(watching.payload())

    async def _unwatch(self) -> None:
        if self.watched_group:
            await self.channel_layer.group_discard(self.watched_group, self.channel_name)
        self.watched, self.watched_group, self.watched_seq = None, "", 0

    # ---- pushes (staff_event: StaffStreamConsumer) ----

    async def conv_event(self, event: dict[str, Any]) -> None:
        if self.watched is None or event["payload"].get("seq", 0) <= self.watched_seq:
            return
        if not await self.authorised():
            return
        conversation_id = self.watched
        conversation = await db_async(selectors.access_staff_conversation)(
            tenant=self.tenant, conversation_id=conversation_id
        )
        items = await db_async(selectors.staff_timeline)(
            conversation=conversation, roles=self.roles, after=self.watched_seq
        )
        if self.watched != conversation_id or not items:
            return
        self.watched_seq = max(item.get("seq", 0) for item in items)
        # The items were each validated by their model as staff_timeline rendered them.
        envelope = Timeline(conversation_id=str(conversation_id), items=[]).payload()
        await self.send_json({**envelope, "items": items})

    async def conv_delta(self, event: dict[str, Any]) -> None:
        if self.watched is not None and await self.authorised():
            await self.send_json({**event["payload"], "conversation_id": str(self.watched)})
