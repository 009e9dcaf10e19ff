"""WebSocket fan-out: N clients on one instrument over Daphne + channels_redis, 2 updates/s.

Measures publish-to-receive latency (p50/p99) and lost messages for 1,000, 2,000, 4,000, 6,000 and
8,000 clients (BENCH_CLIENTS) and the ceiling: the first count whose p99 passes 1 s or that loses a message.
The baseline, measured in the same run at the first count, is Channels' documented pattern of a channel per
socket in the group (bench/ws_channel_per_socket.py); the app uses one relay channel per process.
Prints one JSON line. Needs DATABASE_URL/REDIS_URL like the app (defaults: SQLite in var/ and the
embedded Redis).

The publisher sends what the app sends: bars_publish() with real PressureBar rows (1m, 5m, 1h), the
send time stamped into the 1m bar's `published_at`. The clients are not the system under test but
share its 2 cores, so they run in their own process(es) (BENCH_CLIENT_PROCS) on uvloop when installed,
as a minimal WebSocket reader that stamps the arrival time as soon as the bytes reach user space. The
CPU seconds of every process during the publishing window are reported, so the share of the client is
visible.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import secrets
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 2
SECONDS = 10
DAPHNES = int(os.environ.get("BENCH_DAPHNES", "2"))  # one per core, as docs/deploy.md recommends
CLIENT_PROCS = int(os.environ.get("BENCH_CLIENT_PROCS", "1"))
CLIENT_COUNTS = [int(n) for n in os.environ.get("BENCH_CLIENTS", "1000,2000,4000,6000,8000").split(",")]


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- client side (its own process) -----------------------------------------------------------------

class _Reader(asyncio.Protocol):
    """A WebSocket client that only reads: handshake, unmasked server frames, pong to pings."""

    def __init__(self, host: str, port: int, path: str, stats: dict, loads):
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n").encode()
        self.stats, self.loads = stats, loads
        self.buf = bytearray()
        self.upgraded = False
        self.hello = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        self.stats["closed"] += 1
        if not self.hello.done():
            self.hello.set_exception(ConnectionError(f"closed before hello: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[:buf.find(b"\r\n")]:
                self.hello.set_exception(ConnectionError(bytes(buf[:200]).decode(errors="replace")))
                self.transport.close()
                return
            del buf[:end + 4]
            self.upgraded = True
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head:pos + head + length])
            pos += head + length
            opcode = b0 & 0x0F
            if opcode == 1:
                self._message(payload, now)
            elif opcode == 9:  # ping: answer with a masked pong
                mask = os.urandom(4)
                body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(body)]) + mask + body)
            elif opcode == 8:
                self.transport.close()
        del buf[:pos]

    def _message(self, payload: bytes, now: float) -> None:
        msg = self.loads(payload)
        kind = msg.get("type")
        if kind == "bars":
            bar = msg["bars"]["1m"][-1]
            self.stats["latencies"].append(now - bar["published_at"])
            self.stats["seqs"].append(bar["seq"])
        elif kind == "hello" and not self.hello.done():
            self.hello.set_result(None)

    def close(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(b"\x88\x82" + b"\0\0\0\0" + struct.pack("!H", 1000))
            self.transport.close()


async def _clients_main(urls: list[str], count: int) -> None:
    """Open `count` readers, say `ready`, record until told `stop`, then print the results as JSON."""
    try:
        import orjson
        loads = orjson.loads
    except ImportError:  # pragma: no cover
        loads = json.loads
    loop = asyncio.get_running_loop()
    stats = {"latencies": [], "seqs": [], "closed": 0}
    readers = []
    for i in range(count):
        host_port, _, path = urls[i % len(urls)].removeprefix("ws://").partition("/")
        host, port = host_port.split(":")
        _t, reader = await loop.create_connection(
            lambda h=host, p=int(port), pa="/" + path: _Reader(h, p, pa, stats, loads), host, int(port))
        readers.append(reader)
        if i % 100 == 99:
            await asyncio.gather(*(r.hello for r in readers[-100:]))  # do not stampede the accept queue
    await asyncio.wait_for(asyncio.gather(*(r.hello for r in readers)), timeout=120)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    assert (await stdin.readline()).strip() == b"start"
    cpu0 = sum(os.times()[:2])
    assert (await stdin.readline()).strip() == b"stop"
    cpu = sum(os.times()[:2]) - cpu0
    print(json.dumps({"latencies": stats["latencies"], "seqs": stats["seqs"], "cpu_s": cpu,
                      "closed": stats["closed"]}), flush=True)
    for reader in readers:
        reader.close()
    await asyncio.sleep(0.2)


def _run_clients(argv: list[str]) -> None:
    _raise_fd_limit()
    urls, count = json.loads(argv[0]), int(argv[1])
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    runner(_clients_main(urls, count))


# --- server side and publisher -----------------------------------------------------------------------

def _cpu(pids: dict[str, int]) -> dict[str, float]:
    import psutil

    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system + getattr(t, "children_user", 0) + getattr(t, "children_system", 0)
        except psutil.Error:
            out[name] = float("nan")
    return out


def _round(urls: list[str], instrument, clients: int, pids: dict[str, int]) -> dict:
    import numpy as np

    from apps.live.publish import bars_payload_send
    from apps.pressure.models import PressureBar
    from apps.pressure.selectors import bar_serialize

    shares = [clients // CLIENT_PROCS + (1 if i < clients % CLIENT_PROCS else 0) for i in range(CLIENT_PROCS)]
    procs = [subprocess.Popen([sys.executable, "-m", "bench.ws_fanout", "--clients", json.dumps(urls), str(n)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              preexec_fn=_raise_fd_limit) for n in shares]
    for proc in procs:
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"client process failed: {line!r}"
    bars = {iv: list(PressureBar.objects.filter(instrument=instrument, interval=iv).order_by("-bucket_start")[:n])[::-1]
            for iv, n in (("1m", 5), ("5m", 2), ("1h", 1))}
    every = {**pids, **{f"clients{i}": p.pid for i, p in enumerate(procs)}, "publisher": os.getpid()}
    for proc in procs:
        proc.stdin.write("start\n")
        proc.stdin.flush()
    cpu0, t0 = _cpu(every), time.monotonic()
    sent = RATE_HZ * SECONDS
    publish_ms = []
    for seq in range(sent):
        time.sleep(max(0.0, t0 + seq / RATE_HZ - time.monotonic()))
        now = time.time()
        # What the app sends after a batch (bars_publish): real bars of every interval, serialised and
        # pushed to the instrument and overview groups; the newest 1m bar carries the send time.
        payload = {iv: [bar_serialize(b) for b in rows] for iv, rows in bars.items()}
        payload["1m"][-1].update(published_at=now, seq=seq)
        bars_payload_send(instrument_id=instrument.pk, payload=payload)
        publish_ms.append((time.time() - now) * 1000)
    time.sleep(3)
    cpu1, window = _cpu(every), time.monotonic() - t0
    received, seqs, client_cpu, closed = [], [], [], 0
    for proc in procs:
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
        received += result["latencies"]
        seqs += result["seqs"]
        client_cpu.append(result["cpu_s"])
        closed += result["closed"]
        proc.wait(30)
    latencies = np.array(received) * 1000 if received else np.array([np.nan])
    cpu = {name: round((cpu1[name] - cpu0[name]) / window * 100, 1) for name in every}
    # The slowest delivery of each update: one slow update moves p99 as much as a slow client.
    worst = {}
    for seq, latency in zip(seqs, latencies, strict=False):
        worst[seq] = max(worst.get(seq, 0.0), float(latency))
    return {"clients": clients, "messages_sent": sent, "deliveries_expected": sent * clients,
            "deliveries_received": len(received), "lost": sent * clients - len(received),
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "max_ms": round(float(np.max(latencies)), 1),
            "slowest_delivery_per_update_ms": [round(worst[k], 1) for k in sorted(worst)],
            "publish_call_p50_ms": round(float(np.percentile(publish_ms, 50)), 2),
            "cpu_percent_of_one_core": cpu, "client_process_cpu_s": [round(c, 2) for c in client_cpu],
            "sockets_closed_early": closed}


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.markets.services import instrument_ensure
    from apps.markets.validation import TradeRow
    from apps.pressure.services import market_batch_ingest
    from pressureweb import embedded_redis

    _raise_fd_limit()
    redis_proc = None if settings.REDIS_URL_SET else embedded_redis.start()
    call_command("migrate", verbosity=0)
    inst = instrument_ensure(exchange_slug="bench", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    if not inst.bars.exists():  # real bars to publish, from recorded trades
        from tests.recordings import raw_trades

        trades = [TradeRow(*t) for t in raw_trades("spot_btcusdt_20240808.gz")[:20_000]]
        market_batch_ingest(instrument=inst, trades=trades, source="bench", publish=False)
    try:
        pids = {"redis": redis_proc.pid} if redis_proc else {}
        with _daphnes("pressureweb.asgi:application") as (ports, daphne_pids):
            urls = [f"ws://127.0.0.1:{port}/ws/instruments/{inst.pk}/" for port in ports]
            rounds = [_round(urls, inst, clients, {**pids, **daphne_pids}) for clients in CLIENT_COUNTS]
        # Baseline, same run: Channels' documented pattern (a channel per socket) at the first count.
        with _daphnes("bench.ws_channel_per_socket:application") as (ports, daphne_pids):
            urls = [f"ws://127.0.0.1:{port}/ws/instruments/{inst.pk}/" for port in ports]
            baseline = _round(urls, inst, CLIENT_COUNTS[0], {**pids, **daphne_pids})
        ceiling = next((r["clients"] for r in rounds if r["p99_ms"] > 1000 or r["lost"]), None)
        print(json.dumps({"rate_hz": RATE_HZ, "seconds": SECONDS, "daphne_processes": DAPHNES,
                          "client_processes": CLIENT_PROCS,
                          "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"], "rounds": rounds,
                          "ceiling_clients_p99_over_1s": ceiling or f"> {rounds[-1]['clients']}",
                          "baseline_channel_per_socket": baseline,
                          "p99_ratio_to_baseline": round(rounds[0]["p99_ms"] / baseline["p99_ms"], 2)}))
    finally:
        if redis_proc:
            redis_proc.terminate()


@contextlib.contextmanager
def _daphnes(app: str):
    """DAPHNES Daphne processes serving `app` as the web role does in production: DEBUG off, same settings."""
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1,localhost",
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    ports = [_free_port() for _ in range(DAPHNES)]
    daphnes = [subprocess.Popen([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                                 app], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=_raise_fd_limit) for port in ports]
    try:
        for port in ports:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
        yield ports, {f"daphne{i}": d.pid for i, d in enumerate(daphnes)}
    finally:
        for daphne in daphnes:
            daphne.terminate()
            daphne.wait(10)

if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients"]:
        _run_clients(sys.argv[2:])
    else:
        main()
