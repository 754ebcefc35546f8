"""The staff websocket (/ws/staff/<slug>/): a signed-in member of a tenant receives the tenant's staff pushes
of the streams their roles allow (the knowledge pages' live progress for editors; the agent stream for
agents), each push re-authorised before it is relayed. It also answers pings, which the pages use to show
the connection is alive.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from apps.accounts import selectors
from apps.core.dbasync import db_async
from apps.core.errors import HelpdeskError, WebsocketClose
from apps.core.event_types import Pong, StaffHello
from apps.core.realtime import StaffStream, StaffStreamConsumer


class PingFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["ping"]
    client_msg_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class StaffConsumer(StaffStreamConsumer):
    frame_adapter = TypeAdapter(PingFrame)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.reject(WebsocketClose.UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["tenant_slug"]
        try:
            self.tenant, roles = await db_async(selectors.access_tenant)(actor=user, slug=slug)
        except HelpdeskError:
            await self.reject(WebsocketClose.FORBIDDEN)
            return
        self.user = user
        await self.streams_join(tenant_id=self.tenant.id, streams=selectors.staff_streams(roles=roles))
        await self.accept()
        hello = StaffHello.model_validate(
            {
                "tenant": self.tenant.slug,
                "roles": sorted(roles),
                "streams": sorted(stream.value for stream in self.streams),
            }
        )
        await self.send_json(hello.payload())

    async def streams_allowed(self) -> frozenset[StaffStream] | None:
        try:
            _, roles = await db_async(selectors.access_tenant)(actor=self.user, slug=self.tenant.slug)
        except HelpdeskError:
            return None
        return selectors.staff_streams(roles=roles)

    async def handle(self, frame: PingFrame) -> None:
        await self.send_json(Pong(client_msg_id=frame.client_msg_id).payload())
