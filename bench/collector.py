"""Collector benchmark: real Binance aggTrade messages from the local exchange server, through
ccxt.pro and the collector's batching, into the database.

    DJANGO_SETTINGS_MODULE=<settings with apps.exchanges + apps.derivatives> \\
        .venv/bin/python -m bench.collector [--rate 20000] [--seconds 10]

The exchange server runs in its own process (tests/exchangeserver.py) and stamps each trade's
exchange time with its send time, so "ingest lag" is send -> committed, exchange time to stored.
The baseline, measured in the same run, is the parse rate of the same messages without any
database: JSON decoding plus ccxt.pro's parser plus our normalisation, single-threaded.
Prints one JSON object. The target is 20,000 msg/s with p99 lag under 1 s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pressureweb.settings")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/bench-collector.sqlite3")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

import ccxt.pro  # noqa: E402
import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from apps.exchanges.collector import Collector  # noqa: E402
from apps.exchanges.models import Feed  # noqa: E402
from apps.exchanges.normalize import trades_normalize  # noqa: E402
from apps.exchanges.services import registry_sync  # noqa: E402
from apps.markets.models import Trade  # noqa: E402
from pressureweb import embedded_redis  # noqa: E402
from tests.exchangeserver import agg_from_trade, binance_raw  # noqa: E402

KEYS = ("api.binance.com:BTCUSDT", "fapi.binance.com:BTCUSDT", "api.binance.com:ETHUSDT")


def baseline_parse_rate(n: int = 50_000) -> float:
    """Messages/s for decode + ccxt.pro parse + normalise, no I/O, no database."""
    trades, _, _ = binance_raw("spot_btcusdt_20240808.gz")
    frames = [json.dumps({"e": "aggTrade", "E": t["T"], "s": "BTCUSDT", **agg_from_trade(t)}) for t in trades]
    frames = (frames * (n // len(frames) + 1))[:n]
    ex = ccxt.pro.binance()
    ex.set_markets([{"id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "type": "spot",
                     "spot": True, "swap": False, "contract": False, "precision": {}, "limits": {}}])
    start = time.perf_counter()
    parsed = [ex.parse_ws_trade(json.loads(f)) for f in frames]
    for i in range(0, len(parsed), 5000):
        trades_normalize(parsed[i:i + 5000])
    return n / (time.perf_counter() - start)


def control(port: int, action: str, **query) -> dict:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_control/{action}?{qs}", timeout=10) as resp:
        return json.loads(resp.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20_000, help="target messages/s, all streams together")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch-ms", type=int, default=250)
    args = parser.parse_args()

    with contextlib.nullcontext() if settings.REDIS_URL_SET else embedded_redis.running():
        _bench(args)


def _bench(args) -> None:
    call_command("migrate", verbosity=0)
    Trade.objects.filter(instrument__exchange__slug="binance").delete()
    Feed.objects.all().delete()
    baseline = baseline_parse_rate()

    server = subprocess.Popen([sys.executable, "-m", "tests.exchangeserver", "--restamp"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        port = json.loads(server.stdout.readline())["port"]
        per_stream = args.rate / len(KEYS)
        needed = int(per_stream * args.seconds)
        info = control(port, "loop", keys=",".join(KEYS), times=1)
        times = max(1, -(-(needed + 5_000) // min(info["total"].values())))  # + the warm-up
        info = control(port, "loop", keys=",".join(KEYS), times=times)
        total = sum(min(n, needed) for n in info["total"].values())
        registry_sync(sources=["binance-spot", "binance-usdm"])
        Feed.objects.filter(source__slug="binance-usdm", instrument__symbol="ETHUSDT").update(enabled=False)
        result = asyncio.run(_run(port, per_stream, args, total))
    finally:
        server.terminate()
        server.wait(10)
    lags = np.array(result.pop("lags_ms"), dtype=np.float64)
    out = {
        "benchmark": "collector (ccxt.pro -> batches -> market_batch_ingest)",
        "database": os.environ["DATABASE_URL"].split("://")[0],
        "cores": os.cpu_count(),
        "target_msgs_per_s": args.rate,
        **result,
        "lag_p50_ms": round(float(np.percentile(lags, 50)), 1) if len(lags) else None,
        "lag_p99_ms": round(float(np.percentile(lags, 99)), 1) if len(lags) else None,
        "baseline_parse_msgs_per_s": round(baseline),
    }
    print(json.dumps(out))


async def _run(port: int, per_stream: float, args, total: int) -> dict:
    base = f"http://127.0.0.1:{port}"
    collector = Collector(sources=["binance-spot", "binance-usdm"], api_base=base, ws_base=f"ws://127.0.0.1:{port}",
                          batch_ms=args.batch_ms, books=False, liquidations=False, publish=False, record_lag=True)
    run = asyncio.create_task(collector.run())
    deadline = time.monotonic() + 60
    while (await asyncio.to_thread(control, port, "status"))["subscribers"] < 2:
        assert time.monotonic() < deadline, "collector did not subscribe"
        await asyncio.sleep(0.2)
    # Warm-up at a low rate: the stream's first ids let the startup backfill (the gap since the
    # stored cursor) finish; the figures are for sustained ingest after that.
    await asyncio.to_thread(control, port, "play", keys=",".join(KEYS), rate=100)
    while collector.backfilling or not collector.stats.flushes:
        assert time.monotonic() < deadline, "the startup backfill did not finish"
        await asyncio.sleep(0.1)
    await asyncio.to_thread(control, port, "stop")
    await asyncio.sleep(0.5)
    start_stored = collector.stats.stored
    collector.stats.lags_ms.clear()
    t0 = time.monotonic()
    await asyncio.to_thread(control, port, "play", keys=",".join(KEYS), rate=per_stream)
    last_change, last_stored = t0, start_stored
    while time.monotonic() - last_change < 5:
        await asyncio.sleep(0.1)
        if collector.stats.stored != last_stored:
            last_change, last_stored = time.monotonic(), collector.stats.stored
        if last_stored - start_stored >= total:
            break
    elapsed = last_change - t0
    stored = collector.stats.stored - start_stored
    collector.stop()
    await run
    return {"messages": collector.stats.messages, "stored": stored, "seconds": round(elapsed, 2),
            "msgs_per_s": round(stored / elapsed) if elapsed else None, "flushes": collector.stats.flushes,
            "lags_ms": collector.stats.lags_ms}


if __name__ == "__main__":
    main()
