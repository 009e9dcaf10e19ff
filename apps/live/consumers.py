from __future__ import annotations

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.live.publish import OVERVIEW_GROUP, instrument_group
from apps.live.relay import group_relay
from apps.markets.models import Instrument

MAX_CLIENT_FRAME = 4096
# Application close codes: Daphne (autobahn) only sends 1000 or 3000-4999; 1003/1009 became a 1011 and a traceback.
CLOSE_UNSUPPORTED_DATA = 4003  # a binary frame, or anything on a stream clients only listen to
CLOSE_TOO_BIG = 4009  # a client frame over MAX_CLIENT_FRAME characters


class PushConsumer(AsyncJsonWebsocketConsumer):
    """A consumer whose group pushes and client frames never touch the database.

    Channels closes stale database connections before every handler, a hop to the one thread that
    sync code shares in the process: with a thousand sockets in a group, one update queued a thousand
    such hops behind each other. The handlers in DB_FREE never query, and connect() queries through
    database_sync_to_async, which cleans up its connections itself, so they are dispatched directly.
    """

    DB_FREE: frozenset[str] = frozenset({"websocket.receive"})

    async def dispatch(self, message):
        if message["type"] in self.DB_FREE:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)


class BarsConsumer(PushConsumer):
    """Read-only stream of bar updates for one instrument (or the overview).

    Updates come through the process's GroupRelay rather than a channel per socket, so the consumer
    has no channel of its own (channel_layer_alias None).
    """

    channel_layer_alias = None
    group: str | None = None
    accepted = False

    async def connect(self):
        instrument_id = self.scope["url_route"]["kwargs"].get("instrument_id")
        if instrument_id is None:
            group = OVERVIEW_GROUP
        elif await database_sync_to_async(Instrument.objects.filter(pk=instrument_id).exists)():
            group = instrument_group(instrument_id)
        else:
            await self.close(code=4404)
            return
        # Subscribed before accepting: the page fetches what it missed once the socket is open, so an
        # update from before the accept is covered and none after it can fall between the two.
        await group_relay().subscribe(group, self, self.push, self.close)
        self.group = group
        await self.accept()
        self.accepted = True
        await self.send_json({"type": "hello", "group": self.group})

    async def disconnect(self, code):
        if self.group:
            group_relay().unsubscribe(self.group, self)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # Clients only listen; anything but a small ping is a protocol error.
        if text_data is None:
            await self.close(code=CLOSE_UNSUPPORTED_DATA)
            return
        if len(text_data) > MAX_CLIENT_FRAME:
            await self.close(code=CLOSE_TOO_BIG)
            return
        if text_data.strip() == '{"type":"ping"}':
            await self.send_json({"type": "pong"})

    async def push(self, text: str) -> None:
        # The frame is serialised once per group by apps.live.publish, not once per socket here.
        if self.accepted:  # a socket still connecting cannot be written to
            await self.send(text_data=text)


class NotificationsConsumer(PushConsumer):
    """A user's private stream of alert toasts: refuses anonymous connections."""

    DB_FREE = frozenset({"websocket.receive", "alert.fired"})
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
        await self.close(code=CLOSE_UNSUPPORTED_DATA)  # nothing to say to us on this stream

    async def alert_fired(self, event):
        await self.send_json({"type": "alert", "event": event["event"]})
