from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.live.publish import OVERVIEW_GROUP, instrument_group
from apps.markets.models import Instrument

MAX_CLIENT_FRAME = 4096


class BarsConsumer(AsyncJsonWebsocketConsumer):
    """Read-only stream of bar updates for one instrument (or the overview)."""

    group: str | None = None

    async def connect(self):
        instrument_id = self.scope["url_route"]["kwargs"].get("instrument_id")
        if instrument_id is None:
            self.group = OVERVIEW_GROUP
        elif await database_sync_to_async(Instrument.objects.filter(pk=instrument_id).exists)():
            self.group = instrument_group(instrument_id)
        else:
            await self.close(code=4404)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "group": self.group})

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # Clients only listen; anything but a small ping is a protocol error.
        if bytes_data is not None or text_data is None or len(text_data) > MAX_CLIENT_FRAME:
            await self.close(code=1009 if text_data and len(text_data) > MAX_CLIENT_FRAME else 1003)
            return
        if text_data.strip() == '{"type":"ping"}':
            await self.send_json({"type": "pong"})

    async def bars_update(self, event):
        await self.send_json({"type": "bars", "instrument": event["instrument"], "bars": event["bars"]})


class NotificationsConsumer(AsyncJsonWebsocketConsumer):
    """A user's private stream of alert toasts: refuses anonymous connections."""

    group: str | None = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.group = f"user.{user.pk}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        await self.close(code=1003)  # nothing to say to us on this stream

    async def alert_fired(self, event):
        await self.send_json({"type": "alert", "event": event["event"]})
