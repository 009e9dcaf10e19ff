"""The fan-out baseline: Channels' documented pattern, a channel per socket in the instrument group.

Served by `python -m bench.ws_fanout` beside the app (pressureweb.asgi, one relay per process), with the
same settings, process set-up and frames, so the ratio between them is the relay's alone.
"""

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from pressureweb.asgi import application as app_application


class ChannelPerSocketConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        from apps.live.publish import instrument_group  # after pressureweb.asgi has set Django up

        self.group = instrument_group(self.scope["url_route"]["kwargs"]["instrument_id"])
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send(text_data='{"type": "hello"}')

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def bars_update(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({
    "http": app_application,
    "websocket": URLRouter([path("ws/instruments/<int:instrument_id>/", ChannelPerSocketConsumer.as_asgi())]),
})
