"""WebSocket fan-out: N clients on one instrument over Daphne + channels_redis, 2 updates/s.

Measures publish-to-receive latency (p50/p99) and lost messages for 1,000 clients, then raises the
client count until p99 passes 1 s (the ceiling). Prints one JSON line. Needs DATABASE_URL/REDIS_URL
like the app (defaults: SQLite in var/ and the embedded Redis).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
django.setup()

import numpy as np  # noqa: E402
import websockets  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from apps.live.publish import instrument_group  # noqa: E402
from apps.markets.services import instrument_ensure  # noqa: E402
from pressureweb import embedded_redis  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 2
SECONDS = 10
DAPHNES = int(os.environ.get("BENCH_DAPHNES", "2"))  # one per core, as docs/deploy.md recommends


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client(url: str, received: list, ready: asyncio.Event, counter: list, n: int) -> None:
    async with websockets.connect(url, origin="http://127.0.0.1", open_timeout=60, max_queue=None) as ws:
        await ws.recv()  # hello
        counter[0] += 1
        if counter[0] == n:
            ready.set()
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            if msg.get("type") == "bars":
                received.append((msg["bars"]["1m"][0]["seq"], now - msg["bars"]["1m"][0]["published_at"]))


async def _round(urls: list[str], group: str, instrument_id: int, clients: int) -> dict:
    received: list = []
    ready = asyncio.Event()
    counter = [0]
    tasks = []
    for i in range(clients):
        tasks.append(asyncio.create_task(_client(urls[i % len(urls)], received, ready, counter, clients)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not stampede the accept queue
    await asyncio.wait_for(ready.wait(), timeout=120)
    layer = get_channel_layer()
    sent = RATE_HZ * SECONDS
    for seq in range(sent):
        await layer.group_send(group, {"type": "bars.update", "instrument": instrument_id, "bars": {
            "1m": [{"seq": seq, "published_at": time.time(), "bucket_start": "2026-01-01T00:00:00Z"}]}})
        await asyncio.sleep(1 / RATE_HZ)
    await asyncio.sleep(3)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = np.array([lat for _, lat in received]) * 1000 if received else np.array([np.nan])
    return {"clients": clients, "messages_sent": sent, "deliveries_expected": sent * clients,
            "deliveries_received": len(received), "lost": sent * clients - len(received),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1)}


def main() -> None:
    _raise_fd_limit()
    redis_proc = None if settings.REDIS_URL_SET else embedded_redis.start()
    call_command("migrate", verbosity=0)
    inst = instrument_ensure(exchange_slug="bench", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    env = {**os.environ, "DEBUG": "1", "PYTHONPATH": str(ROOT)}
    ports = [_free_port() for _ in range(DAPHNES)]
    daphnes = [subprocess.Popen([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                                 "pressureweb.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=_raise_fd_limit) for port in ports]
    try:
        for port in ports:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
        urls = [f"ws://127.0.0.1:{port}/ws/instruments/{inst.pk}/" for port in ports]
        group = instrument_group(inst.pk)
        rounds = [asyncio.run(_round(urls, group, inst.pk, 1000))]
        ceiling = None
        for clients in (1500, 2000, 3000):
            result = asyncio.run(_round(urls, group, inst.pk, clients))
            rounds.append(result)
            if result["p99_ms"] > 1000 or result["lost"]:
                ceiling = clients
                break
        print(json.dumps({"rate_hz": RATE_HZ, "seconds": SECONDS, "daphne_processes": DAPHNES, "rounds": rounds,
                          "ceiling_clients_p99_over_1s": ceiling or f"> {rounds[-1]['clients']}"}))
    finally:
        for daphne in daphnes:
            daphne.terminate()
            daphne.wait(10)
        if redis_proc:
            redis_proc.terminate()


if __name__ == "__main__":
    main()
