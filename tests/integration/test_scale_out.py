"""Two Daphne processes and two workers on one Redis and database: a client on either sees every update."""

import asyncio
import json
import time

import pytest
import websockets

from apps.pressure.models import PressureBar
from apps.replay.services import replay_streams_ensure
from tests.conftest import BIN, free_port, wait_for

pytestmark = pytest.mark.integration


async def _collect(url: str, seconds: float) -> list[str]:
    got = []
    async with websockets.connect(url, origin="http://127.0.0.1") as ws:
        await ws.recv()  # hello
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=left))
            except TimeoutError:
                break
            for bars in msg.get("bars", {}).values():
                got.extend(f"{msg['instrument']}:{b['bucket_start']}:{b['trades']}" for b in bars)
    return got


def test_clients_on_either_daphne_receive_every_update(stack_factory):
    replay_streams_ensure(history_minutes=0)
    stack = stack_factory(beat=True, workers=2)
    port = free_port()
    stack._spawn("web2", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "pressureweb.asgi:application"])
    second_web = f"http://127.0.0.1:{port}"
    stack.url, first_url = second_web, stack.url
    stack.wait_http("/healthz", accept=(200, 503))
    stack.url = first_url
    # Collect only once the replay flows (the worker's first tick parses the recordings).
    wait_for(lambda: PressureBar.objects.values("instrument").distinct().count() == 3, 60,
             f"the replay did not start\n{stack.logs()}")

    async def both():
        return await asyncio.gather(
            _collect(f"ws://127.0.0.1:{stack.port}/ws/overview/", 8),
            _collect(f"ws://127.0.0.1:{port}/ws/overview/", 8),
        )

    first, second = asyncio.run(both())
    assert len(first) >= 5, stack.logs()
    # Both clients subscribed within a few ms of each other: the same updates reach both.
    common = set(first) & set(second)
    assert len(common) >= len(first) - 2 and len(common) >= len(second) - 2
    assert "worker2" in stack.procs
