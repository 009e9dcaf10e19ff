from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.flows.services import FLOWS_GROUP
from apps.live.consumers import CLOSE_UNSUPPORTED_DATA


class FlowsConsumer(AsyncJsonWebsocketConsumer):
    """Read-only stream of flow bar updates for the /flows/ page (route: ws/flows/)."""

    joined = False

    async def connect(self):
        await self.channel_layer.group_add(FLOWS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_json({"type": "hello", "group": FLOWS_GROUP})

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(FLOWS_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        await self.close(code=CLOSE_UNSUPPORTED_DATA)  # clients only listen on this stream

    async def flows_update(self, event):
        await self.send_json({"type": "flows", "chain": event["chain"], "asset": event["asset"],
                              "bars": event["bars"], "pending": event.get("pending", [])})
