"""The staff websocket: a signed-in member of a tenant joins that tenant's staff group.

Later issues push the live inbox and presence through it; today it authenticates, scopes to one tenant and
answers pings, which is what the console uses to show the connection is alive.
"""

from __future__ import annotations

from typing import Annotated, Literal

from channels.db import database_sync_to_async
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from apps.accounts import selectors
from apps.core.errors import HelpdeskError, WebsocketClose
from apps.core.realtime import BaseConsumer, staff_group


class PingFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["ping"]
    client_msg_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class StaffConsumer(BaseConsumer):
    frame_adapter = TypeAdapter(PingFrame)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.reject(WebsocketClose.UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["tenant_slug"]
        try:
            self.tenant, self.roles = await database_sync_to_async(selectors.access_tenant)(
                actor=user, slug=slug
            )
        except HelpdeskError:
            await self.reject(WebsocketClose.FORBIDDEN)
            return
        self.group = staff_group(self.tenant.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "tenant": self.tenant.slug, "roles": sorted(self.roles)})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def handle(self, frame: PingFrame) -> None:
        reply = {"type": "pong"}
        if frame.client_msg_id:
            reply["client_msg_id"] = frame.client_msg_id
        await self.send_json(reply)

    async def staff_event(self, event: dict[str, object]) -> None:
        """Relays an event published to the tenant's staff group."""
        await self.send_json(event["payload"])
