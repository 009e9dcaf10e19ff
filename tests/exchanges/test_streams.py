"""The real adapters' WebSocket streams (ccxt.pro) for Bybit, OKX, Coinbase and Kraken against the
local exchange server, which replays the real recordings in each exchange's own protocol.

Every expectation is computed here from the recording files themselves (plain json + Decimal),
not from the server's or the app's parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from decimal import Decimal

import ccxt
import pytest

from apps.exchanges import services
from apps.exchanges.adapters import InstrumentSpec, adapter_for
from apps.exchanges.collector import Collector
from apps.exchanges.models import Feed
from apps.markets.models import BookSample, Trade
from tests.exchanges.conftest import feed_for
from tests.exchangeserver import BYBIT_WS, CRYPTOFEED, DATA, KRAKEN_WS, OKX_WS

BTC_USDT = InstrumentSpec("BTCUSDT", "BTC", "USDT")
OKX_BTC_USDT = InstrumentSpec("BTC-USDT", "BTC", "USDT")
CB_BTC_USD = InstrumentSpec("BTC-USD", "BTC", "USD")
KRAKEN_BTC_USDT = InstrumentSpec("XBTUSDT", "BTC", "USDT")


# --------------------------------------------------------------------------- the recordings, read here


def recv(name: str, conn_suffix: str | None = None):
    with open(CRYPTOFEED / name) as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["t"] == "recv" and (conn_suffix is None or rec.get("conn", "").endswith(conn_suffix)):
                yield json.loads(rec["data"])


BYBIT_CONN = {"linear": ".2", "spot": ".3"}


def bybit_trades(cat: str, symbol: str) -> list[tuple]:
    """(id, ms, price, qty, taker sold): Bybit publicTrade ``S`` is the taker's side."""
    return sorted((t["i"], t["T"], Decimal(t["p"]), Decimal(t["v"]), t["S"] == "Sell")
                  for d in recv("BYBIT.jsonl", BYBIT_CONN[cat]) if d.get("topic") == f"publicTrade.{symbol}"
                  for t in d["data"])


def okx_trades(inst: str) -> list[tuple]:
    """OKX trades ``side`` is the taker's side."""
    return sorted((t["tradeId"], int(t["ts"]), Decimal(t["px"]), Decimal(t["sz"]), t["side"] == "sell")
                  for d in recv("OKX_filtered.jsonl") if (d.get("arg") or {}).get("channel") == "trades"
                  for t in d.get("data", []) if t["instId"] == inst)


def iso_ms(text: str) -> int:
    from datetime import UTC, datetime

    stamp, _, frac = text.rstrip("Z").partition(".")
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()) * 1000 + int(
        (frac + "000")[:3])


def coinbase_trades(product: str) -> list[tuple]:
    """Advanced Trade market_trades: the subscribe snapshot's trades and every update. ``side`` is the
    MAKER's side (see test_coinbase_public_side_is_the_makers), so the taker sold when it is BUY."""
    out = {}
    for d in recv("COINBASE_truncated.jsonl"):
        if d.get("channel") == "market_trades":
            for ev in d["events"]:
                for t in ev["trades"]:
                    if t["product_id"] == product:
                        out[t["trade_id"]] = (t["trade_id"], iso_ms(t["time"]), Decimal(t["price"]),
                                              Decimal(t["size"]), t["side"] == "BUY")
    return sorted(out.values())


def kraken_trades() -> list[tuple]:
    """Kraken rows [price, volume, time, b/s, ...]: b/s is the taker's side."""
    rows = json.loads((DATA / "nautilus-trader-testdata" / "kraken_http_trades.json").read_text())["result"]["XBTUSDT"]
    return sorted((str(r[6]), int(Decimal(repr(r[2])) * 1000), Decimal(r[0]), Decimal(r[1]), r[3] == "s")
                  for r in rows)


def got_rows(trades: list[dict]) -> list[tuple]:
    return sorted((str(t["id"]), t["timestamp"], Decimal(str(t["price"])), Decimal(str(t["amount"])),
                   t["side"] == "sell") for t in trades)


def okx_checksum(bids, asks) -> int:
    parts = []
    for i in range(25):
        parts += bids[i][:2] if i < len(bids) else []
        parts += asks[i][:2] if i < len(asks) else []
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def rebuild(exchange: str, key: str) -> tuple[dict, dict]:
    """An independent rebuild of a recorded book: snapshot, then every update as recorded.
    Bybit: update ids must chain by one; OKX: every recorded checksum must match the rebuilt book."""
    bids: dict[Decimal, tuple] = {}
    asks: dict[Decimal, tuple] = {}

    def put(side, price, qty, level):
        if Decimal(qty) == 0:
            side.pop(Decimal(price), None)
        else:
            side[Decimal(price)] = level

    if exchange.startswith("bybit"):
        last_u = None
        for d in recv("BYBIT.jsonl", BYBIT_CONN[exchange.split("-")[1]]):
            if d.get("topic") != f"orderbook.200.{key}":
                continue
            if d["type"] == "snapshot":
                bids.clear()
                asks.clear()
            else:
                assert d["data"]["u"] == last_u + 1
            last_u = d["data"]["u"]
            for side, levels in ((bids, d["data"]["b"]), (asks, d["data"]["a"])):
                for p, q in levels:
                    put(side, p, q, (p, q))
    elif exchange == "okx":
        checked = 0
        for d in recv("OKX_filtered.jsonl"):
            if (d.get("arg") or {}) != {"channel": "books", "instId": key} or "data" not in d:
                continue
            data = d["data"][0]
            for side, levels in ((bids, data["bids"]), (asks, data["asks"])):
                for level in levels:
                    put(side, level[0], level[1], tuple(level[:2]))
            top_b = [bids[p] for p in sorted(bids, reverse=True)[:25]]
            top_a = [asks[p] for p in sorted(asks)[:25]]
            assert okx_checksum(top_b, top_a) == data["checksum"]
            checked += 1
        assert checked > 90  # the snapshot and every update of the recording
    else:
        for d in recv("COINBASE_truncated.jsonl"):
            if d.get("channel") != "l2_data":
                continue
            for ev in d["events"]:
                if ev["product_id"] == key:
                    for u in ev["updates"]:
                        put(bids if u["side"] == "bid" else asks, u["price_level"], u["new_quantity"],
                            (u["price_level"], u["new_quantity"]))
    return bids, asks


def top(book_side, n: int, reverse: bool) -> list[tuple[Decimal, Decimal]]:
    return [(p, Decimal(book_side[p][1])) for p in sorted(book_side, reverse=reverse)[:n]]


def ccxt_top(levels, n: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(str(p)), Decimal(str(q))) for p, q, *_ in levels[:n]]


# --------------------------------------------------------------------------- driving the real adapters


@contextlib.asynccontextmanager
async def pro_for(server, slug: str):
    """The adapter and its ccxt.pro instance as the collector sets them up (markets from REST)."""
    adapter = adapter_for(slug, api_base=server.base, ws_base=server.ws_base, timeout_ms=3000)
    await asyncio.to_thread(adapter.rest.load_markets)
    ex = adapter.pro()
    ex.set_markets(adapter.rest.markets, adapter.rest.currencies)
    try:
        yield adapter, ex
    finally:
        await ex.close()


async def until(predicate, timeout: float = 10, what: str = "condition", db: bool = False):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate) if db else predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def top_after_the_rest(server, replay: str, adapter, ex, spec) -> tuple[list, list]:
    """Publish the rest of the recording; the best 25 bids and asks once the book has settled."""
    server.publish_ws(replay)
    book = await settled_book(adapter, ex, spec)
    return ccxt_top(book["bids"], 25), ccxt_top(book["asks"], 25)


async def settled_book(adapter, ex, spec, quiet: float = 0.4):
    """Watch until no update arrives for ``quiet`` seconds; the book as ccxt holds it then."""
    book = None
    while True:
        try:
            book = await asyncio.wait_for(adapter.watch_order_book(ex, spec), quiet)
        except TimeoutError:
            return book


STREAMS = {
    # slug: (spec, replay, ws host, trade topic, expected trades)
    "bybit-linear": (BTC_USDT, "bybit-linear", BYBIT_WS, "publicTrade.BTCUSDT",
                     lambda: bybit_trades("linear", "BTCUSDT")),
    "bybit-spot": (BTC_USDT, "bybit-spot", BYBIT_WS, "publicTrade.BTCUSDT", lambda: bybit_trades("spot", "BTCUSDT")),
    "okx-spot": (OKX_BTC_USDT, "okx", OKX_WS, "trades:BTC-USDT", lambda: okx_trades("BTC-USDT")),
    "coinbase-spot": (CB_BTC_USD, "coinbase", "advanced-trade-ws.coinbase.com", "market_trades:BTC-USD",
                      lambda: coinbase_trades("BTC-USD")),
    "kraken-spot": (KRAKEN_BTC_USDT, "kraken", KRAKEN_WS, "trade:BTC/USDT", kraken_trades),
}


@pytest.mark.parametrize("slug", list(STREAMS))
def test_every_recorded_trade_arrives_once_with_price_qty_and_taker_side(exchange_server, slug):
    spec, replay, host, topic, expected_of = STREAMS[slug]
    expected = expected_of()

    async def scenario():
        got: list[dict] = []
        async with pro_for(exchange_server, slug) as (adapter, ex):
            async def loop():
                while True:
                    got.extend(await adapter.watch_trades(ex, spec))

            task = asyncio.create_task(loop())
            await until(lambda: exchange_server.ws_subscribers(host, topic) == 1, what="subscription")
            exchange_server.publish_ws(replay)
            await until(lambda: len(got) >= len(expected), what=f"{len(expected)} trades")
            await asyncio.sleep(0.1)  # nothing more (no repeat) may follow
            task.cancel()
        return got

    got = asyncio.run(scenario())
    assert len({str(t["id"]) for t in got}) == len(got)  # each trade once
    assert got_rows(got) == expected
    assert 0 < sum(1 for g in expected if g[4]) < len(expected)  # both taker sides occur


def test_coinbase_public_side_is_the_makers():
    """Why the Coinbase adapter flips ccxt's side: in both real Coinbase feeds, a taker order that
    sweeps several price levels moves the price DOWN when the recorded side is buy (it sold into the
    resting bids) and UP when it is sell. The old ``match`` channel documents side as the maker
    order's; Advanced Trade ``market_trades`` behaves the same."""
    directions: dict[tuple[str, str], int] = {}

    def sweep(side: str, prices: list[Decimal]) -> None:
        if len(set(prices)) > 1:
            key = (side.lower(), "up" if prices[-1] > prices[0] else "down")
            directions[key] = directions.get(key, 0) + 1

    by_time: dict[tuple, list[dict]] = {}
    for d in recv("COINBASE_truncated.jsonl"):
        if d.get("channel") == "market_trades":
            for ev in d["events"]:
                for t in ev["trades"]:
                    by_time.setdefault((t["product_id"], t["time"], t["side"]), []).append(t)
    for (_, _, side), trades in by_time.items():
        sweep(side, [Decimal(t["price"]) for t in sorted(trades, key=lambda t: int(t["trade_id"]))])
    by_taker: dict[str, list[dict]] = {}
    for d in recv("COINBASE_PRO_2021_ws_level2_matches_ticker.jsonl"):
        if d.get("type") == "match":
            by_taker.setdefault(d["taker_order_id"], []).append(d)
    for trades in by_taker.values():
        sweep(trades[0]["side"], [Decimal(t["price"]) for t in sorted(trades, key=lambda t: t["trade_id"])])
    assert directions == {("buy", "down"): 13, ("sell", "up"): 9}


# --------------------------------------------------------------------------- order books


BOOKS = {
    "bybit-linear": (BTC_USDT, "bybit-linear", ("bybit-linear", "BTCUSDT")),
    "bybit-spot": (BTC_USDT, "bybit-spot", ("bybit-spot", "BTCUSDT")),
    "okx-spot": (OKX_BTC_USDT, "okx", ("okx", "BTC-USDT")),
    "coinbase-spot": (CB_BTC_USD, "coinbase", ("coinbase", "BTC-USD")),
}


@pytest.mark.parametrize("slug", list(BOOKS))
def test_book_after_snapshot_and_deltas_equals_an_independent_rebuild(exchange_server, slug):
    spec, replay, (exchange, key) = BOOKS[slug]
    bids, asks = rebuild(exchange, key)

    async def scenario():
        async with pro_for(exchange_server, slug) as (adapter, ex):
            first = await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            assert first["bids"][0][0] < first["asks"][0][0]
            exchange_server.publish_ws(replay)
            book = await settled_book(adapter, ex, spec)
            return ccxt_top(book["bids"], 25), ccxt_top(book["asks"], 25), len(book["bids"])

    got_bids, got_asks, depth = asyncio.run(scenario())
    assert got_bids[0] == top(bids, 1, True)[0] and got_asks[0] == top(asks, 1, False)[0]
    assert got_bids == top(bids, 25, True) and got_asks == top(asks, 25, False)
    if slug.startswith("bybit"):
        assert depth >= 150  # orderbook.200, not ccxt's default 50 levels


@pytest.mark.parametrize("slug", ["bybit-linear", "okx-spot"])
def test_a_lost_book_update_fails_the_watch_and_a_fresh_snapshot_repairs_the_book(exchange_server, slug):
    """Bybit (u chain, checked by the adapter) and OKX (prevSeqId, checked by ccxt): the gap raises
    InvalidNonce, what the collector counts as a sequence gap; the next watch unsubscribes and
    subscribes again, and the exchange's new snapshot makes the book right."""
    spec, replay, (exchange, key) = BOOKS[slug]
    bids, asks = rebuild(exchange, key)
    topic = "orderbook.200.BTCUSDT" if exchange.startswith("bybit") else "books:BTC-USDT"
    host = BYBIT_WS if exchange.startswith("bybit") else OKX_WS

    async def book_updates_one_by_one(adapter, ex, count: int, errors: list) -> None:
        """Publish the next ``count`` updates of the book with a watch waiting for each (as in the
        collector's loop), so a gap fails that watch."""
        events = exchange_server.replays[replay]
        task = None
        while count:
            ev = events.events[events.published]
            if task is None:
                task = asyncio.create_task(adapter.watch_order_book(ex, spec))
                await until(lambda: any(c.futures for c in ex.clients.values()), what="a pending watch")
            skipped_before = exchange_server.skip_depth
            exchange_server.publish_ws(replay, 1)
            if ev.topic != topic or exchange_server.skip_depth < skipped_before:
                continue  # nothing for this book was sent
            count -= 1
            try:
                await asyncio.wait_for(task, 5)
            except ccxt.InvalidNonce as exc:
                errors.append(exc)
            task = None

    async def scenario():
        errors = []
        async with pro_for(exchange_server, slug) as (adapter, ex):
            await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            await book_updates_one_by_one(adapter, ex, 5, errors)
            exchange_server.skip_next_depth(1, topic)
            await book_updates_one_by_one(adapter, ex, 1, errors)
            assert len(errors) == 1
            book = await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            # The book after the gap is the fresh snapshot of the new subscription.
            server_book = exchange_server.ws_books[("okx", key) if exchange == "okx" else ("bybit", "linear", key)]
            assert Decimal(str(book["bids"][0][0])) == max(server_book.bids)
            return errors, *await top_after_the_rest(exchange_server, replay, adapter, ex, spec)

    errors, got_bids, got_asks = asyncio.run(scenario())
    assert len(errors) == 1
    assert got_bids == top(bids, 25, True) and got_asks == top(asks, 25, False)
    frames = [d for h, d in exchange_server.ws_received if h == host]
    ops = [d.get("op") for d in frames if topic.split(":")[0] in json.dumps(d.get("args"))]
    assert ops == ["subscribe", "unsubscribe", "subscribe"]


def test_dropped_connection_reconnects_and_the_book_and_trades_carry_on(exchange_server):
    spec = CB_BTC_USD
    bids, asks = rebuild("coinbase", "BTC-USD")
    expected = coinbase_trades("BTC-USD")

    async def scenario():
        got, errors = [], []
        async with pro_for(exchange_server, "coinbase-spot") as (adapter, ex):
            async def trades():
                while True:
                    try:
                        got.extend(await adapter.watch_trades(ex, spec))
                    except ccxt.NetworkError as exc:
                        errors.append(exc)
                        await asyncio.sleep(0.05)

            task = asyncio.create_task(trades())
            await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            await until(lambda: len(got) >= 100, what="the trades snapshot")
            exchange_server.publish_ws("coinbase", 300)
            exchange_server.drop_connections()
            await until(lambda: errors, what="the trades watch to see the drop")
            exchange_server.publish_ws("coinbase", 200)  # missed by the old connection's book
            try:  # subscribes again on a new connection: a new snapshot
                await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            except ccxt.NetworkError:  # a watch pending at the drop fails once
                await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            exchange_server.publish_ws("coinbase")
            book = await settled_book(adapter, ex, spec)
            await until(lambda: {str(t["id"]) for t in got} >= {e[0] for e in expected[-100:]}, what="trades")
            task.cancel()
        return got, errors, ccxt_top(book["bids"], 25), ccxt_top(book["asks"], 25)

    got, errors, got_bids, got_asks = asyncio.run(scenario())
    assert errors  # the trade watch saw the drop too, and came back
    assert got_bids == top(bids, 25, True) and got_asks == top(asks, 25, False)
    # Whatever arrived is right (the reconnect's snapshot repeats recent trades: ccxt keeps one each).
    by_id = {r[0]: r for r in expected}
    assert all(by_id[r[0]] == r for r in got_rows(got))
    connects = [d for h, d in exchange_server.ws_received if d.get("channel") == "level2"]
    assert len(connects) == 2


# --------------------------------------------------------------------------- keepalive


@pytest.mark.parametrize(("slug", "host", "topic"), [
    ("okx-spot", OKX_WS, "trades:BTC-USDT"),
    ("bybit-linear", BYBIT_WS, "publicTrade.BTCUSDT"),
    ("kraken-spot", KRAKEN_WS, "trade:BTC/USDT"),
])
def test_keepalive_pings_are_answered_and_a_silent_server_times_the_client_out(exchange_server, slug, host, topic):
    """Each ccxt.pro client's own text ping (OKX "ping", Bybit op ping, Kraken v2 method ping) gets
    the exchange's pong and the connection stays up; unanswered, the client gives up with a
    RequestTimeout (a NetworkError: the collector reconnects)."""
    spec = STREAMS[slug][0]

    async def scenario():
        async with pro_for(exchange_server, slug) as (adapter, ex):
            ex.streaming = {**ex.streaming, "keepAlive": 150}  # the exchange's interval, shortened
            task = asyncio.create_task(adapter.watch_trades(ex, spec))
            await until(lambda: exchange_server.ws_subscribers(host, topic) == 1, what="subscription")
            await until(lambda: exchange_server.pings.get(host, 0) >= 4, what="four pings")
            assert not task.done() and exchange_server.ws_subscribers(host, topic) == 1
            exchange_server.answer_pings = False
            with pytest.raises(ccxt.RequestTimeout):
                await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


# --------------------------------------------------------------------------- liquidations


def test_liquidation_streams_subscribe_and_map_the_liquidated_side(exchange_server):
    """Nothing was liquidated while the recordings ran: one message each in the exchange's documented
    shape is injected (Bybit allLiquidation ``S`` = position side; OKX details with posSide, sizes in
    contracts of ctVal 0.01 BTC)."""
    async def scenario():
        async with pro_for(exchange_server, "bybit-linear") as (adapter, ex):
            task = asyncio.create_task(adapter.watch_liquidations(ex, BTC_USDT))
            await until(lambda: exchange_server.ws_subscribers(BYBIT_WS, "allLiquidation.BTCUSDT") == 1,
                        what="bybit subscription")
            await asyncio.to_thread(exchange_server.inject, "api.bybit.com", "allLiquidation.BTCUSDT", {
                "topic": "allLiquidation.BTCUSDT", "type": "snapshot", "ts": 1786310830000,
                "data": [{"T": 1786310829929, "s": "BTCUSDT", "S": "Buy", "v": "0.25", "p": "65000.10"}]})
            bybit = [adapter.liquidation_point(ex, BTC_USDT, x) for x in await asyncio.wait_for(task, 5)]
        spec = InstrumentSpec("BTC-USDT-SWAP", "BTC", "USDT")
        async with pro_for(exchange_server, "okx-swap") as (adapter, ex):
            task = asyncio.create_task(adapter.watch_liquidations(ex, spec))
            await until(lambda: exchange_server.ws_subscribers(OKX_WS, "liquidation-orders:SWAP") == 1,
                        what="okx subscription")
            await asyncio.to_thread(exchange_server.inject, OKX_WS, "liquidation-orders:SWAP", {
                "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
                "data": [{"details": [{"bkLoss": "0", "bkPx": "30100.5", "ccy": "", "posSide": "short",
                                       "side": "buy", "sz": "12", "ts": "1652459230000"}],
                          "instFamily": "BTC-USDT", "instId": "BTC-USDT-SWAP", "instType": "SWAP",
                          "uly": "BTC-USDT"}]})
            okx = [adapter.liquidation_point(ex, spec, x) for x in await asyncio.wait_for(task, 5)]
        return bybit, okx

    bybit, okx = asyncio.run(scenario())
    assert [(p.position, Decimal(p.price), Decimal(p.qty), p.time_ms) for p in bybit] == [
        ("long", Decimal("65000.1"), Decimal("0.25"), 1786310829929)]
    assert [(p.position, Decimal(p.price), Decimal(p.qty), p.time_ms) for p in okx] == [
        ("short", Decimal("30100.5"), Decimal("0.12"), 1652459230000)]


# --------------------------------------------------------------------------- Coinbase REST


@pytest.mark.django_db
def test_coinbase_rest_trades_poll_stores_the_taker_side_and_resumes_by_time(exchanges_at):
    feed = feed_for("coinbase-spot", "BTC-USD", "BTC", "USD")
    first = services.trades_poll(feed_id=feed.pk)  # the 100 trades before the recording's subscribe
    assert first.inserted == 100
    exchanges_at.publish_all()
    again = services.trades_poll(feed_id=feed.pk)
    expected = coinbase_trades("BTC-USD")
    assert again.inserted == len(expected) - 100 and not again.gap
    got = sorted((str(t.trade_id), t.time_ms, t.price, t.qty, t.taker_sell)
                 for t in Trade.objects.filter(instrument=feed.instrument))
    assert got == expected
    # Taker buys and sells by hand from the raw rows (side BUY = a resting buy was hit: taker sold).
    sold = sum(e[3] for e in expected if e[4])
    assert sum(t.qty for t in Trade.objects.filter(instrument=feed.instrument, taker_sell=True)) == sold
    ticker = [p for h, p in exchanges_at.requests if "/ticker" in p]
    assert len(ticker) == 2 and "start=" in ticker[1] and "end=" in ticker[1]


# --------------------------------------------------------------------------- the collector


@pytest.mark.django_db(transaction=True)
def test_collector_stores_bybit_linear_stream_trades_through_a_drop_and_a_book_gap(exchanges_at, settings):
    settings.EXCHANGE_SOURCES = ["bybit-linear"]
    settings.EXCHANGE_DEFAULT_BASES = ["BTC"]
    server = exchanges_at
    stream = server.stream("bybit", "linear", "BTCUSDT")
    replay = server.replays["bybit-linear"]
    # History before the collector starts comes over REST: the first 200 messages are published.
    server.publish_ws("bybit-linear", 200)
    assert 0 < stream.published < len(stream.records)

    def stored() -> int:
        return Trade.objects.filter(instrument__exchange__slug="bybit", instrument__symbol="BTCUSDT").count()

    async def scenario():
        collector = Collector(sources=["bybit-linear"], api_base=server.base, ws_base=server.ws_base,
                              batch_ms=100, book_sample_ms=100, stale_s=5)
        run = asyncio.create_task(collector.run())
        await until(lambda: server.ws_subscribers(BYBIT_WS, "publicTrade.BTCUSDT") == 1, what="subscription")
        await until(lambda: server.ws_subscribers(BYBIT_WS, "orderbook.200.BTCUSDT") == 1, what="book")
        await until(lambda: stored() == stream.published, timeout=15, what="startup backfill", db=True)
        server.publish_ws("bybit-linear", 500)
        server.skip_next_depth(1, "orderbook.200.BTCUSDT")
        server.publish_ws("bybit-linear", 300)
        await until(lambda: collector.stats.book_resyncs >= 1, what="book resync")
        server.drop_connections()
        server.publish_ws("bybit-linear", 300)  # while reconnecting: comes back over REST
        await until(lambda: server.ws_subscribers(BYBIT_WS, "publicTrade.BTCUSDT") == 1, what="resubscription")
        server.publish_ws("bybit-linear")
        assert replay.remaining() == 0
        await until(lambda: stored() == len(stream.records), timeout=15, what="all trades stored", db=True)
        collector.stop()
        await run
        return collector

    collector = asyncio.run(scenario())
    rows = sorted((t.time_ms, t.price, t.qty, t.taker_sell) for t in
                  Trade.objects.filter(instrument__exchange__slug="bybit", instrument__symbol="BTCUSDT"))
    assert rows == sorted(r[1:] for r in bybit_trades("linear", "BTCUSDT"))
    feed = Feed.objects.get(instrument__symbol="BTCUSDT", source__slug="bybit-linear")
    assert feed.sequence_gaps >= 1 and collector.stats.reconnects >= 1 and feed.backfills >= 2
    assert BookSample.objects.filter(instrument=feed.instrument).exists()


@pytest.mark.parametrize("slug", ["bybit-linear", "okx-spot"])
def test_a_gap_inside_a_burst_with_no_watch_waiting_still_ends_in_a_repaired_book(exchange_server, slug):
    """Updates arrive faster than the collector watches: the gap happens while no watch is pending.
    The next watch must still raise the gap once (so it is counted) and the book must recover from
    a fresh snapshot, instead of failing every later watch."""
    spec, replay, (exchange, key) = BOOKS[slug]
    bids, asks = rebuild(exchange, key)
    topic = "orderbook.200.BTCUSDT" if exchange.startswith("bybit") else "books:BTC-USDT"

    async def scenario():
        errors = []
        async with pro_for(exchange_server, slug) as (adapter, ex):
            await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            exchange_server.skip_next_depth(1, topic)
            exchange_server.publish_ws(replay, 40)  # a burst, nobody watching, with one update lost
            await asyncio.sleep(0.3)
            book = None
            for _ in range(6):
                try:
                    book = await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
                    break
                except ccxt.InvalidNonce as exc:
                    errors.append(exc)
            assert book is not None, f"the book never recovered: {errors}"
            return errors, *await top_after_the_rest(exchange_server, replay, adapter, ex, spec)

    errors, got_bids, got_asks = asyncio.run(scenario())
    assert len(errors) == 1
    assert got_bids == top(bids, 25, True) and got_asks == top(asks, 25, False)


def test_an_okx_update_that_fails_its_checksum_is_a_gap_and_a_fresh_snapshot_repairs_the_book(exchange_server):
    """OKX sends a CRC32 of the best 25 levels with every book message; ccxt does not check it. The
    adapter does: a corrupted update fails the watch once (ChecksumError, an InvalidNonce) and the
    book comes back right from a new subscription's snapshot."""
    spec, replay, (exchange, key) = BOOKS["okx-spot"]
    bids, asks = rebuild(exchange, key)

    async def scenario():
        async with pro_for(exchange_server, "okx-spot") as (adapter, ex):
            book = await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            best_bid = ccxt_top(book["bids"], 1)[0][0]
            task = asyncio.create_task(adapter.watch_order_book(ex, spec))
            await until(lambda: any(c.futures for c in ex.clients.values()), what="a pending watch")
            # A changed size at the best bid, sent with a checksum of some other book.
            await asyncio.to_thread(exchange_server.inject, OKX_WS, f"books:{key}", {
                "arg": {"channel": "books", "instId": key}, "action": "update",
                "data": [{"bids": [[str(best_bid), "123.45", "0", "7"]], "asks": [], "ts": str(int(time.time() * 1000)),
                          "checksum": 12345}]})
            with pytest.raises(ccxt.ChecksumError):
                await asyncio.wait_for(task, 5)
            book = await asyncio.wait_for(adapter.watch_order_book(ex, spec), 5)
            assert ccxt_top(book["bids"], 1)[0][1] != Decimal("123.45")
            return await top_after_the_rest(exchange_server, replay, adapter, ex, spec)

    got_bids, got_asks = asyncio.run(scenario())
    assert got_bids == top(bids, 25, True) and got_asks == top(asks, 25, False)
