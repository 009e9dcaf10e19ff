"""The real ccxt adapters against the local exchange server: trades with cursors, faults, derivatives."""

from __future__ import annotations

import csv
import json
import time
from decimal import Decimal

import pytest

from apps.derivatives.models import FundingRate, OpenInterest, TakerRatio
from apps.exchanges import ratelimit, services
from apps.exchanges.adapters import adapter_for
from apps.exchanges.models import Source
from apps.exchanges.normalize import book_summary, trades_normalize
from apps.markets.feeds.binance import DepthSnapshotMsg
from apps.markets.models import BookSample, Instrument, Trade
from apps.markets.orderbook import OrderBook
from pressureweb.lib.times import now_ms
from tests.exchanges.conftest import feed_for
from tests.exchangeserver import CRYPTOFEED, DATA, ExchangeServer

pytestmark = pytest.mark.django_db

SPOT = ExchangeServer.SPOT
FAPI = ExchangeServer.FAPI


def stored(instrument: Instrument) -> list[tuple]:
    return [(t.trade_id, t.time_ms, t.price, t.qty, t.taker_sell)
            for t in Trade.objects.filter(instrument=instrument).order_by("trade_id")]


def expected_agg(records: list[dict]) -> list[tuple]:
    """Independent parse of the served aggTrades: m (buyer is maker) true = the taker sold."""
    return sorted((r["a"], r["T"], Decimal(r["p"]), Decimal(r["q"]), r["m"]) for r in records)


# --------------------------------------------------------------------------- taker side on real payloads


def test_binance_spot_taker_side_matches_raw_feed(exchanges_at):
    exchanges_at.publish_all()
    feed = feed_for("binance-spot", "BTCUSDT", "BTC", "USDT")
    services.trades_poll(feed_id=feed.pk, max_pages=1)
    got = stored(feed.instrument)
    assert len(got) == 1000
    # The latest 1000 trades of the recording, taker side from the raw `m` flag.
    raw = ExchangeServer().stream(SPOT, "BTCUSDT").records[-1000:]
    assert got == expected_agg(raw)
    assert 0 < sum(1 for g in got if g[4]) < 1000


def test_bybit_linear_taker_side_matches_extracted_csv(exchanges_at):
    exchanges_at.publish_all()
    adapter = adapter_for("bybit-linear", api_base=exchanges_at.base)
    spec = services.InstrumentSpec("BTCUSDT", "BTC", "USDT")
    page = adapter.trades_page(spec, after_id=None, after_ms=None)
    norm = trades_normalize(page.trades)
    assert not norm.rejected
    with open(CRYPTOFEED / "bybit_publicTrade_extracted.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["market"] == "linear" and r["symbol"] == "BTCUSDT"]
    assert len(norm.rows) == len(rows) == 56
    buy = sum(Decimal(r.qty) for r in norm.rows if not r.taker_sell)
    sell = sum(Decimal(r.qty) for r in norm.rows if r.taker_sell)
    # SOURCE.txt cross-check: taker buy 0.321, sell 6.718 BTC.
    assert (buy, sell) == (Decimal("0.321"), Decimal("6.718"))
    by_time = {int(r["trade_time_ms"]): r["taker_side"] == "Sell" for r in rows}
    assert all(by_time[r.time_ms] == r.taker_sell for r in norm.rows if r.time_ms in by_time)


def test_okx_spot_taker_side_matches_cross_check(exchanges_at):
    exchanges_at.publish_all()
    adapter = adapter_for("okx-spot", api_base=exchanges_at.base)
    page = adapter.trades_page(services.InstrumentSpec("BTC-USDT", "BTC", "USDT"), after_id=None, after_ms=None)
    norm = trades_normalize(page.trades)
    assert len(norm.rows) == 69 and not norm.rejected
    buy = sum(Decimal(r.qty) for r in norm.rows if not r.taker_sell)
    sell = sum(Decimal(r.qty) for r in norm.rows if r.taker_sell)
    assert (buy, sell) == (Decimal("2.99559276"), Decimal("0.49098219"))


def test_kraken_taker_side_and_token_cursor(exchanges_at):
    exchanges_at.publish_all()
    feed = feed_for("kraken-spot", "XBTUSDT", "BTC", "USDT")
    result = services.trades_poll(feed_id=feed.pk)
    raw = json.loads((DATA / "nautilus-trader-testdata" / "kraken_http_trades.json").read_text())["result"]["XBTUSDT"]
    assert result.inserted == len(raw) == 1000
    got = stored(feed.instrument)
    want = sorted((r[6], round(r[2] * 1000), Decimal(r[0]), Decimal(r[1]), r[3] == "s") for r in raw)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[4] for g in got] == [w[4] for w in want]
    assert sum(g[3] for g in got if not g[4]) == Decimal("84.38067746")
    assert sum(g[3] for g in got if g[4]) == Decimal("8.72113991")
    feed.refresh_from_db()
    assert feed.cursor_token and feed.cursor_trade_id == max(w[0] for w in want)
    again = services.trades_poll(feed_id=feed.pk)
    assert again.inserted == 0 and Trade.objects.filter(instrument=feed.instrument).count() == 1000


# --------------------------------------------------------------------------- cursors


def test_cursor_incremental_fetch_across_restarts_has_no_gap_and_no_duplicate(exchanges_at):
    stream = exchanges_at.stream(FAPI, "BTCUSDT")
    feed = feed_for("binance-usdm", "BTCUSDT", "BTC", "USDT")
    stream.published = 700
    services.trades_poll(feed_id=feed.pk)
    assert stored(feed.instrument) == expected_agg(stream.visible())
    # More trades happen; a new process (fresh adapters, cursor only in the DB) picks up after the cursor.
    for published in (2900, 2901, 5555):
        stream.published = published
        services._adapters.clear()
        result = services.trades_poll(feed_id=feed.pk)
        assert result.duplicates == 0
        assert stored(feed.instrument) == expected_agg(stream.visible())
    feed.refresh_from_db()
    assert feed.cursor_trade_id == stream.records[5554]["a"]
    from_ids = [p for h, p in exchanges_at.requests if "aggTrades" in p and "fromId" in p]
    assert from_ids and all(f"fromId={int(p.split('fromId=')[1].split('&')[0])}" in p for p in from_ids)


def test_time_cursor_on_recent_trades_only_exchange(exchanges_at):
    stream = exchanges_at.stream("bybit", "linear", "BTCUSDT")
    feed = feed_for("bybit-linear", "BTCUSDT", "BTC", "USDT")
    stream.published = 20
    services.trades_poll(feed_id=feed.pk)
    stream.published = len(stream.records)
    services._adapters.clear()
    again = services.trades_poll(feed_id=feed.pk)
    assert Trade.objects.filter(instrument=feed.instrument).count() == 56
    # Only trades in the cursor's own millisecond (one sweep of several levels) come twice; the
    # unique trade id drops them.
    cursor_ms = max(r["T"] for r in stream.records[:20])
    assert again.duplicates == sum(1 for r in stream.records[:20] if r["T"] == cursor_ms)
    assert not again.gap


# --------------------------------------------------------------------------- faults


def test_429_with_retry_after_defers_until_it_ends(exchanges_at):
    exchanges_at.publish_all()
    feed = feed_for("binance-spot", "BTCUSDT", "BTC", "USDT")
    exchanges_at.fault("aggTrades", {"status": 429, "headers": {"Retry-After": "2"},
                                     "body": {"code": -1003, "msg": "Too many requests"}})
    with pytest.raises(services.SourceRequestFailed) as info:
        services.trades_poll(feed_id=feed.pk)
    assert info.value.outcome == ratelimit.RATE_LIMIT and info.value.retry_after == 2
    source = Source.objects.get(slug="binance-spot")
    assert source.state == "rate_limited" and source.rate_limited == 1
    assert 1500 <= source.until_ms - now_ms() <= 2100
    sent = len(exchanges_at.requests)
    with pytest.raises(services.SourceDeferred):
        services.trades_poll(feed_id=feed.pk)
    assert len(exchanges_at.requests) == sent  # nothing sent while limited
    time.sleep(2.1)
    services.trades_poll(feed_id=feed.pk, max_pages=1)
    source.refresh_from_db()
    assert source.state == "ok" and source.failures == 0
    assert Trade.objects.filter(instrument=feed.instrument).count() == 1000


def test_418_bans_the_source_until_the_ban_ends(exchanges_at):
    exchanges_at.publish_all()
    feed = feed_for("binance-usdm", "BTCUSDT", "BTC", "USDT")
    exchanges_at.fault("aggTrades", {"status": 418, "headers": {"Retry-After": "600"},
                                     "body": {"code": -1003, "msg": "Way too many requests; IP banned"}})
    with pytest.raises(services.SourceRequestFailed) as info:
        services.trades_poll(feed_id=feed.pk)
    assert info.value.outcome == ratelimit.BAN
    source = Source.objects.get(slug="binance-usdm")
    assert source.state == "banned" and source.bans == 1
    assert source.until_ms - now_ms() > 590_000
    sent = len(exchanges_at.requests)
    for poll in (services.trades_poll, services.funding_poll, services.open_interest_poll):
        with pytest.raises(services.SourceDeferred) as deferred:
            poll(feed_id=feed.pk)
        assert deferred.value.state == "banned"
    assert len(exchanges_at.requests) == sent
    assert source.health.status(now_ms()) == "banned"
    assert source.health.status(source.until_ms + 1) == "ok"


def test_5xx_is_unknown_not_failed_and_timeouts_make_a_source_unreachable(exchanges_at, settings):
    exchanges_at.publish_all()
    feed = feed_for("binance-spot", "BTCUSDT", "BTC", "USDT")
    exchanges_at.fault("aggTrades", {"status": 500, "body": "<html>Internal error</html>"})
    with pytest.raises(services.SourceRequestFailed) as info:
        services.trades_poll(feed_id=feed.pk)
    assert info.value.outcome == ratelimit.SERVER_ERROR
    source = Source.objects.get(slug="binance-spot")
    assert (source.state, source.server_errors, source.unreachable_streak) == ("backoff", 1, 0)
    # Slow answers: three timeouts in a row and the source is unreachable.
    settings.EXCHANGE_TIMEOUT_MS = 300
    services._adapters.clear()
    exchanges_at.fault("aggTrades", {"delay": 1.0}, {"delay": 1.0}, {"delay": 1.0})
    for _ in range(3):
        Source.objects.filter(pk=source.pk).update(until_ms=None)  # skip the back-off wait
        with pytest.raises(services.SourceRequestFailed) as info:
            services.trades_poll(feed_id=feed.pk)
        assert info.value.outcome == ratelimit.TIMEOUT
    source.refresh_from_db()
    assert source.state == "unreachable" and source.timeouts == 3
    assert Trade.objects.filter(instrument=feed.instrument).count() == 0


def test_malformed_rest_body_is_an_error_not_data(exchanges_at):
    exchanges_at.publish_all()
    feed = feed_for("binance-spot", "BTCUSDT", "BTC", "USDT")
    exchanges_at.fault("aggTrades", {"status": 200, "body": '[{"a": 1, "p": "NaN", "q": "-1", "T": 1723161255342,'
                                                            ' "m": true}, {"a": 2, "p": "61837.63"}]'})
    result = services.trades_poll(feed_id=feed.pk, max_pages=1)
    assert result.inserted == 0 and result.rejected == 2
    feed.refresh_from_db()
    assert feed.rejected == 2 and feed.cursor_trade_id is None  # nothing stored, cursor not moved
    # ccxt cannot parse the page at all (NaN); the rows are parsed one by one and each is refused.
    assert result.reasons == {"unparseable trade (ValueError)": 1, "missing or bad timestamp": 1}


# --------------------------------------------------------------------------- books


def test_book_snapshot_poll_stores_the_same_summary_as_the_order_book(exchanges_at):
    feed = feed_for("binance-spot", "BTCUSDT", "BTC", "USDT")
    assert services.book_snapshot_poll(feed_id=feed.pk)
    sample = BookSample.objects.get(instrument=feed.instrument)
    raw = exchanges_at.books[(SPOT, "BTCUSDT")].depth(1000)
    ob = OrderBook()
    ob.load_snapshot(DepthSnapshotMsg(raw["lastUpdateId"], tuple(map(tuple, raw["bids"])),
                                      tuple(map(tuple, raw["asks"])), 1))
    want = ob.summary(1)
    assert Decimal(want.bid_price) == sample.bid_price and Decimal(want.ask_price) == sample.ask_price
    assert sample.bid_depth_1pct == pytest.approx(want.bid_depth[2], rel=1e-9)
    assert sample.ask_depth_0_1pct == pytest.approx(want.ask_depth[0], rel=1e-9)


def test_book_summary_scales_contracts_to_base():
    book = {"bids": [[100.0, 3.0]], "asks": [[101.0, 2.0]], "timestamp": 1_700_000_000_000, "nonce": 5}
    plain = book_summary(book)
    scaled = book_summary(book, contract_size=Decimal("0.01"))
    assert plain.bid_qty == "3.0" and scaled.bid_qty == "0.03"
    assert scaled.bid_depth[3] == pytest.approx(plain.bid_depth[3] / 100)


# --------------------------------------------------------------------------- derivatives


def test_funding_history_with_negative_rates(exchanges_at):
    feed = feed_for("binance-usdm", "XRPUSDT", "XRP", "USDT")
    stored_n = services.funding_poll(feed_id=feed.pk)
    raw = json.loads((DATA / "freqtrade-testdata" / "XRP_USDT_USDT-8h-funding_rate.json").read_text())
    assert stored_n == len(raw) + 1  # history plus the current (predicted) reading
    rates = dict(FundingRate.objects.filter(instrument=feed.instrument).values_list("time_ms", "rate"))
    for t, rate, *_ in raw:
        assert rates[t] == Decimal(repr(rate))
    assert min(rates.values()) < Decimal("-0.002")
    assert services.funding_poll(feed_id=feed.pk) == 1  # nothing new but the current reading
    assert FundingRate.objects.filter(instrument=feed.instrument).count() == len(raw) + 1


def test_open_interest_from_bybit_tickers_and_binance_history(exchanges_at):
    bybit = feed_for("bybit-linear", "BTCUSDT", "BTC", "USDT")
    services.open_interest_poll(feed_id=bybit.pk)
    # The recorded ticker: OI 59891.732 BTC, 3899996265.01 USD (SOURCE.txt).
    last_ts, last = exchanges_at.bybit["tickers"][("linear", "BTCUSDT")][-1]
    assert last["openInterest"] == "59891.732"
    oi = OpenInterest.objects.get(instrument=bybit.instrument, time_ms=last_ts - last_ts % 60_000)
    assert oi.oi_base == Decimal("59891.732") and oi.oi_usd == Decimal("3899996265.01")

    # Binance's openInterestHist in its documented shape (nobody recorded it).
    exchanges_at.oi_hist["BTCUSDT"] = [
        {"symbol": "BTCUSDT", "sumOpenInterest": "20403.63700000", "sumOpenInterestValue": "150570784.07809979",
         "timestamp": 1583127900000},
        {"symbol": "BTCUSDT", "sumOpenInterest": "20401.36700000", "sumOpenInterestValue": "149940752.14464448",
         "timestamp": 1583128200000},
    ]
    binance = feed_for("binance-usdm", "BTCUSDT", "BTC", "USDT")
    assert services.open_interest_poll(feed_id=binance.pk) == 3
    rows = list(OpenInterest.objects.filter(instrument=binance.instrument).order_by("time_ms")
                .values_list("oi_base", "oi_usd"))
    assert rows[0] == (Decimal("20403.637"), Decimal("150570784.0781"))
    assert rows[-1][0] == Decimal("20401.367") and rows[-1][1] is None  # /openInterest has no USD value


def test_binance_taker_long_short_ratio(exchanges_at):
    exchanges_at.taker_ratio["BTCUSDT"] = [
        {"buySellRatio": "1.5586", "buyVol": "387.3300", "sellVol": "248.5030", "timestamp": 1585614900000},
    ]
    feed = feed_for("binance-usdm", "BTCUSDT", "BTC", "USDT")
    assert services.taker_ratio_poll(feed_id=feed.pk) == 1
    row = TakerRatio.objects.get(instrument=feed.instrument)
    assert (row.buy_vol, row.sell_vol, row.ratio) == (Decimal("387.33"), Decimal("248.503"), Decimal("1.5586"))
