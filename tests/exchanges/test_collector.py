"""The streaming collector (ccxt.pro) against the local exchange server: batching, reconnect
backfill, book resync on a sequence gap, bad messages, and a SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import psutil
import pytest
from django.conf import settings
from django.db import connection

from apps.exchanges.collector import Collector
from apps.exchanges.models import Feed
from apps.markets.models import BookSample, SourceStatus, Trade
from tests.conftest import ROOT, database_url
from tests.exchangeserver import ExchangeServer

SPOT = ExchangeServer.SPOT
FAPI = ExchangeServer.FAPI


def stored_rows(symbol: str, market: str) -> list[tuple]:
    return [(t.trade_id, t.time_ms, t.price, t.qty, t.taker_sell) for t in
            Trade.objects.filter(instrument__exchange__slug="binance", instrument__market=market,
                                 instrument__symbol=symbol).order_by("trade_id")]


def expected(records: list[dict]) -> list[tuple]:
    """Independent parse of what the server published: m (buyer is maker) = the taker sold."""
    return sorted((r["a"], r["T"], Decimal(r["p"]), Decimal(r["q"]), r["m"]) for r in records)


async def wait_until(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def trade_count(market: str = "spot") -> int:
    return Trade.objects.filter(instrument__exchange__slug="binance", instrument__market=market).count()


@pytest.fixture
def one_market(settings):
    settings.EXCHANGE_SOURCES = ["binance-spot"]
    settings.EXCHANGE_DEFAULT_BASES = ["BTC"]


@pytest.mark.django_db(transaction=True)
def test_stream_with_drops_and_gaps_stores_exactly_the_recording(exchanges_at, one_market):
    server = exchanges_at
    key = (SPOT, "BTCUSDT")
    stream = server.stream(*key)
    stream.records = stream.records[:4000]
    stream.published = 500  # history before the collector starts: it comes over REST
    server.books[key].published = 0

    async def scenario():
        collector = Collector(sources=["binance-spot"], api_base=server.base, ws_base=server.ws_base, batch_ms=100,
                              book_sample_ms=200, stale_s=5)
        run = asyncio.create_task(collector.run())
        await wait_until(lambda: server.subscribers(SPOT, "btcusdt@aggTrade") > 0, what="subscription")
        await wait_until(lambda: trade_count() >= 500, what="startup backfill")
        server.play(keys=[key], rate=1500)
        await asyncio.sleep(0.8)
        server.skip_next_depth(1)  # the book misses a diff: ccxt must see the gap and resync
        await asyncio.sleep(0.6)
        server.drop_connections()  # trades published while reconnecting come back over REST
        await asyncio.sleep(0.8)
        server.drop_connections()
        await wait_until(server.play_done, what="publishing")
        await wait_until(lambda: trade_count() == len(stream.records), what="all trades stored")
        # The last drop's backfill holds the cursor until it has confirmed the gap closed; a stop
        # before that would (rightly) leave the cursor behind, for the next start to backfill from.
        await wait_until(lambda: not collector.backfilling, what="the backfills to finish")
        collector.stop()
        await run
        return collector

    collector = asyncio.run(scenario())
    assert stored_rows("BTCUSDT", "spot") == expected(stream.records)
    feed = Feed.objects.get(instrument__symbol="BTCUSDT", source__slug="binance-spot")
    assert feed.cursor_trade_id == stream.records[-1]["a"]
    # Startup plus the reconnects (two drops close together may be closed by one backfill).
    assert collector.stats.reconnects >= 1 and feed.backfills >= 2
    assert feed.sequence_gaps >= 1 and collector.stats.book_resyncs >= 1
    assert feed.messages > 0 and feed.message_rate > 0 and not feed.connected
    assert BookSample.objects.filter(instrument=feed.instrument).count() >= 3
    depth_requests = [p for h, p in server.requests if h == SPOT and p.startswith("/api/v3/depth")]
    assert len(depth_requests) >= 2  # the resync fetched a new snapshot
    assert SourceStatus.objects.get(name="binance-spot").sequence_gaps >= 1


@pytest.mark.django_db(transaction=True)
def test_bad_messages_are_rejected_and_counted_while_good_ones_are_stored(exchanges_at, one_market):
    server = exchanges_at
    key = (SPOT, "BTCUSDT")
    stream = server.stream(*key)
    stream.records = stream.records[:300]
    stream.published = 100
    good = stream.records[100]
    base = {"e": "aggTrade", "E": good["T"], "s": "BTCUSDT", "f": 1, "l": 1, "T": good["T"], "m": True}
    bad = [
        {**base, "a": 9_000_000_001, "p": "NaN", "q": "0.1"},
        {**base, "a": 9_000_000_002, "p": "61000.00", "q": "-0.5"},
        {**base, "a": 9_000_000_003, "p": "61000.00", "q": "0.1", "T": 10_000_000_000_000_000},
        {**base, "a": 9_000_000_004, "p": "1e13", "q": "0.1"},
        "{not json",
    ]

    async def scenario():
        collector = Collector(sources=["binance-spot"], api_base=server.base, ws_base=server.ws_base, batch_ms=100,
                              books=False)
        run = asyncio.create_task(collector.run())
        await wait_until(lambda: server.subscribers(SPOT, "btcusdt@aggTrade") > 0, what="subscription")
        await wait_until(lambda: trade_count() >= 100, what="startup backfill")
        for msg in bad:
            await asyncio.to_thread(server.inject, SPOT, "btcusdt@aggTrade", msg)
        dup = {"e": "aggTrade", "E": stream.records[50]["T"], "s": "BTCUSDT", **stream.records[50]}
        await asyncio.to_thread(server.inject, SPOT, "btcusdt@aggTrade", dup)  # a duplicate, out of order
        server.play(keys=[key], rate=2000)
        await wait_until(server.play_done, what="publishing")
        await wait_until(lambda: trade_count() == len(stream.records), what="good trades stored")
        await asyncio.sleep(0.3)
        collector.stop()
        await run

    asyncio.run(scenario())
    assert stored_rows("BTCUSDT", "spot") == expected(stream.records)
    feed = Feed.objects.get(instrument__symbol="BTCUSDT", source__slug="binance-spot")
    assert feed.rejected >= 4
    assert feed.out_of_order >= 1 and feed.duplicates >= 1


def _spawn_collector(server: ExchangeServer, log) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "PYTHONUNBUFFERED": "1", "DEBUG": "1"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "collect", "--exchange", "binance-spot", "--api-base", server.base,
         "--ws-base", server.ws_base, "--batch-ms", "150", "--no-books"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


@pytest.mark.django_db(transaction=True)
def test_sigkill_mid_stream_then_restart_stores_exactly_the_recording(exchanges_at, tmp_path):
    from apps.exchanges import services

    server = exchanges_at
    key = (SPOT, "BTCUSDT")
    stream = server.stream(*key)
    stream.records = stream.records[:6000]
    # Only BTC on binance-spot: the subprocess reads the same settings module, so limit it by source.
    services.registry_sync(sources=["binance-spot"])
    Feed.objects.exclude(instrument__symbol="BTCUSDT").update(enabled=False)
    connection.close()
    log = open(tmp_path / "collect.log", "wb")
    proc = _spawn_collector(server, log)
    try:
        deadline = time.monotonic() + 60
        while server.subscribers(SPOT, "btcusdt@aggTrade") == 0:
            assert proc.poll() is None, (tmp_path / "collect.log").read_text()
            assert time.monotonic() < deadline, "collector never subscribed"
            time.sleep(0.1)
        server.play(keys=[key], rate=1200)
        while trade_count() < 1500:
            assert time.monotonic() < deadline, (tmp_path / "collect.log").read_text()
            time.sleep(0.05)
        writers = psutil.Process(proc.pid).children()  # the writer process (and multiprocessing's tracker)
        assert writers, "the collector should write from its own process"
        proc.send_signal(signal.SIGKILL)  # no chance to flush: whatever was buffered is lost
        proc.wait(10)
        # The writer dies with it: no orphan keeps a transaction or a connection open.
        _, alive = psutil.wait_procs(writers, timeout=10)
        assert not alive, alive
        killed_at = trade_count()
        assert killed_at < len(stream.records)
        time.sleep(1.0)  # trades keep being published while nobody listens
        proc = _spawn_collector(server, log)
        deadline = time.monotonic() + 90
        while not server.play_done() or trade_count() < len(stream.records):
            assert proc.poll() is None, (tmp_path / "collect.log").read_text()
            assert time.monotonic() < deadline, f"stored {trade_count()}\n" + (tmp_path / "collect.log").read_text()
            time.sleep(0.1)
        writers = psutil.Process(proc.pid).children()
        proc.send_signal(signal.SIGTERM)  # graceful: flushes and exits 0
        assert proc.wait(30) == 0, (tmp_path / "collect.log").read_text()
        assert not psutil.wait_procs(writers, timeout=10)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stored_rows("BTCUSDT", "spot") == expected(stream.records)
    feed = Feed.objects.get(instrument__symbol="BTCUSDT", source__slug="binance-spot")
    assert feed.cursor_trade_id == stream.records[-1]["a"] and not feed.connected
