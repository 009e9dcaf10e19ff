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


async def _collect(url: str, seconds: float) -> tuple[float, float, list[tuple[float, str]]]:
    """(subscribed at, stopped at, [(arrival, update key)]) for one client, on the monotonic clock."""
    got = []
    async with websockets.connect(url, origin="http://127.0.0.1") as ws:
        await ws.recv()  # hello: subscribed from here on
        started = time.monotonic()
        deadline = started + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=left))
            except TimeoutError:
                break
            now = time.monotonic()
            for bars in msg.get("bars", {}).values():
                got.extend((now, f"{msg['instrument']}:{b['bucket_start']}:{b['trades']}") for b in bars)
    return started, time.monotonic(), got


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

    (start1, stop1, first), (start2, stop2, second) = asyncio.run(both())
    assert len(first) >= 5, stack.logs()
    # Every update sent while both clients were subscribed reaches both (a second's margin at each edge, where
    # one client may have subscribed or stopped a moment before the other).
    lo, hi = max(start1, start2) + 1.0, min(stop1, stop2) - 1.0
    keys1, keys2 = {k for _, k in first}, {k for _, k in second}
    both_on1 = [k for t, k in first if lo <= t <= hi]
    both_on2 = [k for t, k in second if lo <= t <= hi]
    assert len(both_on1) >= 3, (start1, start2, stop1, stop2, first)
    assert [k for k in both_on1 if k not in keys2] == [] and [k for k in both_on2 if k not in keys1] == []
    assert "worker2" in stack.procs
