"""One channel-layer subscription per web process for all of its sockets on a public group.

With a channel per socket, every bars update became one Redis message per process (channels_redis
already batches those) but then a wake-up, a receive task and a dispatch per socket: for a thousand
sockets, most of Daphne's time per update. Here the process joins each group once, with one channel
of its own, and writes each update's ready text to its local sockets in one pass.

What a channel per socket guaranteed is kept. An update reaches every socket that was subscribed
when it arrived; the browser then asks for what it missed since its last bar whenever its socket
opens. If the layer fails (Redis restarted: its group memberships are gone), every local socket is
closed, so browsers reconnect, rejoin and catch up, exactly as when their own channel failed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# channels_redis forgets a group member after group_expiry (a day by default): re-join well before.
REJOIN_SECONDS = 3600

Push = Callable[[str], Awaitable[None]]
Close = Callable[[], Awaitable[None]]


class GroupRelay:
    """The group subscriptions of one process (one per event loop)."""

    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.joined: set[str] = set()
        self.sockets: dict[str, dict[object, tuple[Push, Close]]] = {}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []

    async def subscribe(self, group: str, key: object, push: Push, close: Close) -> None:
        """Deliver the group's updates to push(text) until unsubscribe(); close() if the layer fails.

        Raises if the layer is unreachable: the caller refuses the socket, and the browser retries.
        """
        self.sockets.setdefault(group, {})[key] = (push, close)
        if group in self.joined:
            return
        try:
            async with self._lock:
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                if group not in self.joined:
                    await self.layer.group_add(group, self.channel)
                    self.joined.add(group)
                if not self._tasks:
                    loop = asyncio.get_running_loop()
                    self._tasks = [loop.create_task(self._receive(self.channel)), loop.create_task(self._rejoin())]
        except BaseException:
            self.unsubscribe(group, key)
            raise

    def unsubscribe(self, group: str, key: object) -> None:
        # The process stays in the group (a handful of groups, a message per update at most);
        # _rejoin drops the groups nobody here watches any more.
        members = self.sockets.get(group)
        if members is not None:
            members.pop(key, None)

    async def _receive(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("live relay: the channel layer failed; closing %d sockets so they reconnect",
                               sum(map(len, self.sockets.values())), exc_info=True)
                await self._fail()
                return
            text, group = message.get("text"), message.get("group")
            members = self.sockets.get(group)
            if text is None or not members:
                continue
            for push, _close in list(members.values()):
                try:
                    await push(text)
                except Exception:  # one broken socket must not keep the update from the others
                    logger.exception("live relay: a push to a socket of %s failed", group)

    async def _rejoin(self) -> None:
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            async with self._lock:
                for group in list(self.joined):
                    try:
                        if self.sockets.get(group):
                            await self.layer.group_add(group, self.channel)
                        else:
                            await self.layer.group_discard(group, self.channel)
                            self.joined.discard(group)
                            self.sockets.pop(group, None)
                    except Exception:
                        logger.warning("live relay: could not re-join %s", group, exc_info=True)

    async def _fail(self) -> None:
        """Forget every subscription and close every socket; the next subscribe starts afresh."""
        sockets, self.sockets = self.sockets, {}
        self.joined, self.channel = set(), None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for members in sockets.values():
            for _push, close in members.values():
                try:
                    await close()
                except Exception:
                    logger.exception("live relay: closing a socket failed")


_relays: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupRelay] = weakref.WeakKeyDictionary()


def group_relay() -> GroupRelay:
    """This event loop's relay on the default channel layer (Daphne runs one loop per process)."""
    loop = asyncio.get_running_loop()
    relay = _relays.get(loop)
    if relay is None:
        relay = _relays[loop] = GroupRelay(get_channel_layer())
    return relay
