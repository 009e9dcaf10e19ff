import random
from decimal import ROUND_HALF_EVEN, Context, Decimal

import pytest
from django.core.management import call_command

from apps.markets.models import SourceStatus, Trade
from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.services import market_batch_ingest
from tests.recordings import DATA, minute_bars_by_hand, raw_trades

pytestmark = pytest.mark.django_db


@pytest.fixture
def eth():
    return instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")


def _rows(trades):
    return [TradeRow(*t) for t in trades]


def _assert_bars_match_recording(instrument, trades):
    want = minute_bars_by_hand(trades)
    bars = {int(b.bucket_start.timestamp() * 1000): b for b in PressureBar.objects.filter(
        instrument=instrument, interval="1m")}
    assert set(bars) == set(want)
    for bucket, w in want.items():
        b = bars[bucket]
        assert (b.open, b.high, b.low, b.close, b.trades) == (w["open"], w["high"], w["low"], w["close"], w["trades"])
        assert b.taker_buy_base == w["buy"] and b.taker_sell_base == w["sell"]
        assert b.taker_buy_quote == w["buy_q"] and b.taker_sell_quote == w["sell_q"]
        assert b.delta_base == w["buy"] - w["sell"]
        # 12 significant digits, whatever the price level.
        exact = Context(prec=50).divide(w["buy_q"] + w["sell_q"], w["buy"] + w["sell"])
        assert b.vwap == Context(prec=12, rounding=ROUND_HALF_EVEN).plus(exact)


def test_ingesting_a_recording_twice_stores_each_trade_once(eth):
    trades = raw_trades("spot_ethusdt_20240808.gz")
    first = market_batch_ingest(instrument=eth, trades=_rows(trades), source="test", publish=False)
    second = market_batch_ingest(instrument=eth, trades=_rows(trades), source="test", publish=False)
    assert (first.trades_inserted, first.duplicates) == (6_106, 0)
    assert (second.trades_inserted, second.duplicates) == (0, 6_106)
    assert Trade.objects.filter(instrument=eth).count() == 6_106
    status = SourceStatus.objects.get(name="test")
    assert (status.trades_inserted, status.duplicates, status.batches) == (6_106, 6_106, 2)
    _assert_bars_match_recording(eth, trades)


def test_shuffled_small_batches_give_the_same_bars_as_one_batch(eth):
    trades = list(raw_trades("spot_ethusdt_20240808.gz"))
    shuffled = trades[:]
    random.Random(3).shuffle(shuffled)  # out-of-order delivery, as after a reconnect
    for i in range(0, len(shuffled), 700):
        market_batch_ingest(instrument=eth, trades=_rows(shuffled[i:i + 700]), source="test", publish=False)
    _assert_bars_match_recording(eth, trades)
    minutes = list(PressureBar.objects.filter(instrument=eth, interval="1m").order_by("bucket_start"))
    for interval, size in (("5m", 300_000), ("1h", 3_600_000)):
        for bar in PressureBar.objects.filter(instrument=eth, interval=interval):
            start = int(bar.bucket_start.timestamp() * 1000)
            inside = [m for m in minutes if start <= int(m.bucket_start.timestamp() * 1000) < start + size]
            assert bar.trades == sum(m.trades for m in inside)
            assert bar.taker_sell_base == sum(m.taker_sell_base for m in inside)
            assert bar.open == inside[0].open and bar.close == inside[-1].close


def test_bad_rows_are_rejected_and_counted_while_good_rows_in_the_batch_are_stored(eth):
    good = _rows(raw_trades("spot_ethusdt_20240808.gz")[:50])
    bad = [TradeRow(1, good[0].time_ms, "NaN", "1", True), TradeRow(2, good[0].time_ms, "2600", "-1", False)]
    result = market_batch_ingest(instrument=eth, trades=[*good[:25], *bad, *good[25:]], source="test", publish=False)
    assert (result.trades_inserted, result.rejected) == (50, 2)
    assert SourceStatus.objects.get(name="test").rejected == 2
    assert not Trade.objects.filter(instrument=eth, trade_id__in=[1, 2]).exists()


def test_import_trades_reads_binance_vision_layouts(tmp_path, capsys):
    trades = raw_trades("spot_btcusdt_20240809.gz")[:3000]
    with_header = tmp_path / "BTCUSDT-trades.csv"
    with_header.write_text("id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + "".join(
        f"{i},{p},{q},{Decimal(p) * Decimal(q)},{t * 1000},{str(m).lower()},true\n" for i, t, p, q, m in trades[:1500]))
    no_header = tmp_path / "BTCUSDT-trades-2.csv"
    no_header.write_text("".join(
        f"{i},{p},{q},{Decimal(p) * Decimal(q)},{t},{m},True\n" for i, t, p, q, m in trades[1000:]))
    call_command("import_trades", str(with_header), str(no_header), "--symbol", "BTCUSDT", "--market", "spot")
    out = capsys.readouterr().out
    assert "read 3,500, inserted 3,000, skipped as duplicates 500, conflicts 0, rejected 0" in out
    stored = Trade.objects.filter(instrument__symbol="BTCUSDT").order_by("trade_id")
    assert stored.count() == 3000
    first = stored.first()
    assert (first.trade_id, first.time_ms, first.price, first.qty, first.taker_sell) == (
        trades[0][0], trades[0][1], Decimal(trades[0][2]), Decimal(trades[0][3]), trades[0][4])


def test_import_trades_reads_real_aggtrades_and_raw_feed(capsys):
    path = DATA / "cryptofeed-sample-data" / "binance_futures_aggTrades_extracted.csv"
    call_command("import_trades", str(path), "--symbol", "SUSHIUSDT", "--market", "usdm")
    bar_delta = sum(b.delta_base for b in PressureBar.objects.filter(instrument__symbol="SUSHIUSDT", interval="1h"))
    assert bar_delta == 1026  # the cross-check in the recording's SOURCE.txt
    call_command("import_trades", str(DATA / "binance-raw-feed" / "spot_ethusdt_20240808.gz"), "--symbol", "ETHUSDT")
    assert "inserted 6,106" in capsys.readouterr().out


def test_large_batches_with_bad_rows_take_the_exact_path_and_keep_good_rows(eth):
    good = _rows(raw_trades("spot_ethusdt_20240808.gz")[:500])
    bad = [TradeRow(7, good[0].time_ms, "1e400", "1", True), TradeRow(8, good[0].time_ms, "2600.1", "abc", False)]
    result = market_batch_ingest(instrument=eth, trades=[*good[:200], *bad, *good[200:]], source="test", publish=False)
    assert (result.trades_inserted, result.rejected, result.duplicates) == (500, 2, 0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_overlapping_batches_store_each_trade_once():
    import threading

    from django.db import connection

    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    trades = _rows(raw_trades("spot_ethusdt_20240808.gz"))
    results, errors = [], []

    def write(batch):
        try:
            results.append(market_batch_ingest(instrument=inst, trades=batch, source="race", publish=False))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(trades[i:i + 4000],)) for i in (0, 1000, 2000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(r.trades_inserted for r in results) == Trade.objects.filter(instrument=inst).count() == 6_000
    _assert_bars_match_recording(inst, raw_trades("spot_ethusdt_20240808.gz")[:6000])
