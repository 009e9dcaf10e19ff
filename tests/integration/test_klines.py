"""import_klines against real Binance klines and hostile files, on whichever backend the suite runs on.

The reference is tests.recordings.kline_bars_by_hand (Decimal and loops over the CSV text), never the
importer's own math.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.markets.models import Instrument
from apps.markets.services import instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.services import market_batch_ingest
from tests.recordings import KLINES, kline_bars_by_hand, kline_rows, minute_bars_by_hand

pytestmark = pytest.mark.django_db

HOUR = 3_600_000
HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
          "taker_buy_quote_volume,ignore")
ADABTC = ("ADABTC-1m-2021-11-27.csv", "ADABTC-1m-2021-11-28.csv")


def _import(*paths, interval="5m", symbol="BTCUSDT", market="spot"):
    call_command("import_klines", *map(str, paths), "--symbol", symbol, "--interval", interval, "--market", market)


def _bars(interval: str) -> dict[int, PressureBar]:
    return {int(b.bucket_start.timestamp() * 1000): b for b in PressureBar.objects.filter(interval=interval)}


def _assert_bars_equal(interval: str, want: dict[int, dict]) -> None:
    bars = _bars(interval)
    assert set(bars) == set(want)
    for bucket, bar in bars.items():
        w = want[bucket]
        assert (bar.open, bar.high, bar.low, bar.close, bar.trades) == (w["open"], w["high"], w["low"], w["close"],
                                                                        w["trades"]), bucket
        assert (bar.taker_buy_base, bar.taker_sell_base, bar.delta_base) == (w["buy"], w["sell"], w["delta"]), bucket
        assert (bar.taker_buy_quote, bar.taker_sell_quote) == (w["buy_q"], w["sell_q"]), bucket
        assert bar.taker_sell_ratio == w["ratio"] and bar.vwap == w["vwap"], bucket
        assert (bar.source, bar.final) == ("klines", True)
        # Nothing klines do not carry: no book fields, no trade-count split, no large trades.
        assert (bar.spread_bps, bar.imbalance_0_5pct, bar.bid_depth_0_5pct, bar.ofi, bar.book_samples) == (
            None, None, None, None, 0)
        assert (bar.buy_trades, bar.sell_trades, bar.large_trade_sell_share, bar.large_trade_base) == (0, 0, None, 0)


def _write(tmp_path, name: str, lines: list[str], *, packing: str = "plain", header: bool = False):
    body = ("\n".join(([HEADER] if header else []) + lines) + "\n").encode()
    path = tmp_path / name
    if packing == "gz":
        path = path.with_name(name + ".gz")
        path.write_bytes(gzip.compress(body))
    elif packing == "zip":
        path = path.with_suffix(".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, body)
    else:
        path.write_bytes(body)
    return path


def _month(name: str) -> list[str]:
    return (KLINES / f"BTCUSDT-5m-{name}.csv").read_text().splitlines()


def test_kline_bars_equal_an_independent_decimal_computation(shared_data, capsys):
    """Two real months across a year end: every 5m and 1h bar equals the Decimal computation from the text."""
    paths = [KLINES / "BTCUSDT-5m-2023-12.csv", KLINES / "BTCUSDT-5m-2024-01.csv"]
    _import(*paths)
    rows = [cells for path in paths for cells in kline_rows(path)]
    assert "read 17,856, rejected 0" in capsys.readouterr().out
    _assert_bars_equal("5m", kline_bars_by_hand(rows, 300_000))
    _assert_bars_equal("1h", kline_bars_by_hand(rows, HOUR))
    assert not PressureBar.objects.filter(interval="1m").exists()
    assert Instrument.objects.get().kind == "spot"


def test_1m_klines_roll_up_into_5m_and_1h(shared_data):
    """Real 1m klines of another market (ADABTC, prices near 3e-5 BTC): stored at 1m, rolled up exactly."""
    paths = [shared_data / "nautilus-trader-testdata" / name for name in ADABTC]
    _import(*paths, interval="1m", symbol="ADABTC")
    rows = [cells for path in paths for cells in kline_rows(path)]
    for interval, size in (("1m", 60_000), ("5m", 300_000), ("1h", HOUR)):
        _assert_bars_equal(interval, kline_bars_by_hand(rows, size))
    assert len(_bars("1m")) == 21 and len(_bars("1h")) == 2


def _coarser_lines(lines: list[str], per: int) -> list[str]:
    """Klines of `per` x 5m built from real 5m ones (Decimal sums): what Binance publishes at 15m or 1h."""
    out = []
    for i in range(0, len(lines) - per + 1, per):
        group = [line.split(",") for line in lines[i:i + per]]
        total = [sum((Decimal(c[k]) for c in group), Decimal(0)) for k in (5, 7, 9, 10)]
        high = max(Decimal(c[2]) for c in group)
        low = min(Decimal(c[3]) for c in group)
        out.append(",".join([group[0][0], group[0][1], str(high), str(low), group[-1][4], str(total[0]),
                             str(int(group[0][0]) + per * 300_000 - 1), str(total[1]),
                             str(sum(int(c[8]) for c in group)), str(total[2]), str(total[3]), "0"]))
    return out


def test_1h_klines_and_the_5m_klines_of_the_same_hours_agree(tmp_path, capsys):
    lines = _month("2024-02")[:12 * 6]
    _import(_write(tmp_path, "BTCUSDT-1h.csv", _coarser_lines(lines, 12)), interval="1h")
    hours = list(PressureBar.objects.order_by("pk").values())
    _import(_write(tmp_path, "BTCUSDT-5m.csv", lines))
    assert "1h bars: inserted 0, unchanged 6" in capsys.readouterr().out
    assert list(PressureBar.objects.filter(interval="1h").order_by("pk").values()) == hours
    _assert_bars_equal("1h", kline_bars_by_hand([line.split(",") for line in lines], HOUR))


def test_15m_klines_are_stored_as_their_complete_hours(tmp_path, shared_data, capsys):
    lines = _month("2024-02")[:12 * 24]  # the first day
    fifteen = _coarser_lines(lines, 3)
    path = _write(tmp_path, "BTCUSDT-15m-2024-02-01.csv", fifteen[:-1])  # the day's last quarter-hour missing
    _import(path, interval="15m")
    out = capsys.readouterr().out
    assert "1 hours with fewer than four 15m klines, not stored (line 93)" in out
    want = kline_bars_by_hand([line.split(",") for line in lines[: 12 * 23]], HOUR)
    _assert_bars_equal("1h", want)
    assert not PressureBar.objects.exclude(interval="1h").exists()


def test_reimport_changes_nothing(tmp_path, capsys):
    path = KLINES / "BTCUSDT-5m-2024-03.csv"
    _import(path)
    before = list(PressureBar.objects.order_by("pk").values())
    capsys.readouterr()
    _import(path)
    assert list(PressureBar.objects.order_by("pk").values()) == before
    out = capsys.readouterr().out
    assert "5m bars: inserted 0, unchanged 8,928" in out and "1h bars: inserted 0, unchanged 744" in out


@pytest.mark.parametrize(("column", "change"), [
    (8, lambda cells: str(int(cells[8]) + 1)),  # one more trade
    (9, lambda cells: str(Decimal(cells[9]) - Decimal("0.00000001"))),  # taker buy volume
    (10, lambda cells: str(Decimal(cells[10]) - Decimal("0.00000001"))),  # taker buy quote volume
    (4, lambda cells: cells[3]),  # close at the low
])
def test_a_conflicting_reimport_keeps_the_first_copy(tmp_path, capsys, column, change):
    lines = _month("2024-03")[:48]
    _import(_write(tmp_path, "first.csv", lines))
    before = list(PressureBar.objects.order_by("pk").values())
    cells = lines[5].split(",")
    cells[column] = change(cells)  # in the 6th kline
    changed = [*lines[:5], ",".join(cells), *lines[6:]]
    _import(_write(tmp_path, "second.csv", changed))
    captured = capsys.readouterr()
    assert ("second.csv: conflicts: 1 x same bucket, other values (the first stored copy is kept) (line 6)"
            in captured.err)
    assert list(PressureBar.objects.order_by("pk").values()) == before


def test_a_file_completing_stored_hours_updates_their_rollup(tmp_path):
    lines = _month("2024-04")[:36]  # three hours
    _import(_write(tmp_path, "a.csv", lines[:18]))  # 1.5 hours
    _import(_write(tmp_path, "b.csv", lines[18:]))
    want = kline_bars_by_hand([line.split(",") for line in lines], HOUR)
    _assert_bars_equal("1h", want)


def test_copies_within_a_file(tmp_path, capsys):
    lines = _month("2024-05")[:24]
    cells = lines[3].split(",")
    cells[4] = cells[1]  # same open time, another close
    _import(_write(tmp_path, "copies.csv", [*lines, lines[2], ",".join(cells)]))
    captured = capsys.readouterr()
    assert "exact copies skipped 1" in captured.out
    assert "conflicts: 1 x same bucket, other values (the first stored copy is kept) (line 26)" in captured.err
    _assert_bars_equal("5m", kline_bars_by_hand([line.split(",") for line in lines], 300_000))


# Each bad line, and the reason it must be refused with.
GOOD = "1711929600000,69702.30000000,69718.99000000,69600.00000000,69690.01000000,52.91735000,1711929899999,3686137.17402810,3829,25.41049000,1770337.24931140,0"  # noqa: E501
BAD = [
    ("1711929900000,\u0666\u0669\u0667\u0660\u0662,69718.99,69600,69690.01,1,1711930199999,69700,10,0.5,34850,0",
     "open not a plain decimal (ASCII digits and one dot only)"),  # Arabic-Indic digits
    ("1711930200000,69702.3,69600,69718.99,69690.01,1,1711930499999,69700,10,0.5,34850,0", "high below low"),
    ("1711930500000,69702.3,69718.99,69600,69690.01,-1,1711930799999,69700,10,0.5,34850,0", "volume negative"),
    ("1711930800000,69702.3,69718.99,69600,69690.01,1,1711931099999,69700,10,1.5,34850,0",
     "taker buy volume above volume"),
    ("1711931100000,69702.3,69718.99,69600,69800,1,1711931399999,69700,10,0.5,34850,0", "close outside [low, high]"),
    ("1711931460000,69702.3,69718.99,69600,69690.01,1,1711931759999,69700,10,0.5,34850,0",
     "open time not on the 5m grid"),
    ("1711931700000,69702.3,69718.99,69600,69690.01,0.12345678901,1711931999999,69700,10,0.5,34850,0",
     "volume has more than 10 decimals"),
    ("1711932000000,69702.3,69718.99,69600,69690.01,1,1711932059999,69700,10,0.5,34850,0",
     "close time does not match a 5m kline (open time + 5m - 1 ms)"),
    ("1711932300000,69702.3,69718.99,69600,69690.01,1,1711932599999,69700,10,0.5,34850",
     "expected 12 columns, found 11"),
    ("1711932600000,6.97e4,69718.99,69600,69690.01,1,1711932899999,69700,10,0.5,34850,0",
     "open not a plain decimal (ASCII digits and one dot only)"),
    ("1711932900000,69702.3,69718.99,69600,69690.01,1,1711933199999,69700,1_0,0.5,34850,0",
     "trade count not an integer of ASCII digits"),
    ("1711933200000,169702.3000000001,69718.99,69600,69690.01,1,1711933499999,69700,10,0.5,34850,0",
     "open has more than 15 significant digits"),
    ("1711933500000,69702.3,69718.99,69600,69690.01,1,1711933799999,69700,10,0.5,69701,0",
     "taker buy quote volume above quote volume"),
    ("1711933800000,69702.3,69718.99,69600,69690.01,1,1711934099999,1000,10,0.5,500,0",
     "quote volume / volume outside [low, high]"),
    ("1711934100000,0,69718.99,69600,69690.01,1,1711934399999,69700,10,0.5,34850,0", "open not positive"),
    ("1711934400000,69702.3,69718.99,69600,69690.01,1,1711934699999,,10,0.5,34850,0", "quote volume missing"),
    ("1711934700000,69702.3,69718.99,69600,69690.01,0,1711934999999,0,10,0,0,0",
     "volume and trade count disagree (one is zero)"),
    ("1711935300000,69702.3,69718.99,69600,69690.01,0,1711935599999,5,0,0,0,0", "quote volume without volume"),
]


def test_bad_rows_are_rejected_with_their_reason_and_line(tmp_path, capsys):
    lines = [GOOD, *(line for line, _ in BAD)]
    good_too = "1711935600000,69702.3,69718.99,69600,69690.01,1,1711935899999,69700,10,0.5,34850,0"
    path = tmp_path / "bad.csv"
    path.write_bytes(("\n".join([*lines, good_too]) + "\n").encode() + b"1711935900000,caf\xe9\n")
    _import(path)
    err = capsys.readouterr().err
    expected: dict[str, list[int]] = {}
    for number, (_, reason) in enumerate(BAD, start=2):
        expected.setdefault(reason, []).append(number)
    for reason, numbers in expected.items():
        where = f"line {numbers[0]}" if len(numbers) == 1 else f"lines {', '.join(map(str, numbers))}"
        assert f"bad.csv: rejected: {len(numbers)} x {reason} ({where})" in err, (reason, err)
    assert "rejected: 1 x not UTF-8 text (line 21)" in err
    want = kline_bars_by_hand([GOOD.split(","), good_too.split(",")], 300_000)
    _assert_bars_equal("5m", want)


def test_microsecond_times_make_the_same_bars(tmp_path):
    lines = _month("2024-06")[:24]
    micro = []
    for line in lines:
        cells = line.split(",")
        cells[0], cells[6] = cells[0] + "000", str(int(cells[6]) * 1000 + 999)
        micro.append(",".join(cells))
    _import(_write(tmp_path, "micro.csv", micro[:12] + lines[12:]))  # a file may switch part-way
    want = kline_bars_by_hand([line.split(",") for line in lines], 300_000)
    _assert_bars_equal("5m", want)
    _assert_bars_equal("1h", kline_bars_by_hand([line.split(",") for line in lines], HOUR))


@pytest.mark.parametrize("packing", ["plain", "gz", "zip"])
@pytest.mark.parametrize("header", [False, True])
def test_header_or_not_plain_gz_or_zip(tmp_path, capsys, packing, header):
    lines = _month("2023-11")[:30]
    _import(_write(tmp_path, "BTCUSDT-5m-2023-11.csv", lines, packing=packing, header=header), market="usdm")
    assert "read 30, rejected 0" in capsys.readouterr().out
    _assert_bars_equal("5m", kline_bars_by_hand([line.split(",") for line in lines], 300_000))
    assert Instrument.objects.get().kind == "perp"


@pytest.mark.parametrize("packing", ["gz", "zip"])
def test_a_truncated_archive_keeps_the_rows_before_the_damage(tmp_path, packing):
    lines = _month("2023-10")
    path = _write(tmp_path, "BTCUSDT-5m-2023-10.csv", lines, packing=packing)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CommandError) as exc:
        _import(path)
    message = str(exc.value)
    assert "\n" not in message and "damaged or cut short after line" in message
    kept = len(_bars("5m"))
    assert 0 < kept < len(lines) and f"the {kept:,} klines before it were imported" in message
    _assert_bars_equal("5m", kline_bars_by_hand([line.split(",") for line in lines[:kept]], 300_000))


@pytest.mark.parametrize(("body", "message"), [
    (b"", "no data (the file is empty)"),
    ("\n".join([GOOD] * 3).encode(), "no row could be read as 1h klines (line 1: close time does not match"),
    (b"1,61000.5,0.1,0,1723075200000,true\n" * 3, "no row could be read as 1h klines (line 1: expected 12"),
])
def test_files_that_are_no_klines_end_in_one_clear_line(tmp_path, body, message):
    path = tmp_path / "x.csv"
    path.write_bytes(body)
    with pytest.raises(CommandError) as exc:
        _import(path, interval="1h")
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not PressureBar.objects.exists()


def _trades_in(start_ms: int, count: int, first_id: int = 1) -> list[TradeRow]:
    return [TradeRow(first_id + i, start_ms + 1000 * i, "69000.5", "0.25", i % 3 == 0) for i in range(count)]


def test_buckets_with_trade_built_bars_keep_them(tmp_path, capsys):
    lines = _month("2024-04")[:24]  # 2024-04-01 00:00 .. 01:55 UTC
    start = int(lines[0].split(",")[0])
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    market_batch_ingest(instrument=inst, trades=_trades_in(start + 600_000, 20), source="t", publish=False)
    trade_bars = {(b.interval, b.bucket_start): b for b in PressureBar.objects.all()}
    assert {b.source for b in trade_bars.values()} == {"trades"}
    _import(_write(tmp_path, "k.csv", lines))
    for key, bar in trade_bars.items():
        now = PressureBar.objects.get(interval=key[0], bucket_start=key[1])
        assert (now.source, now.taker_sell_base, now.trades, now.updated_at) == (
            "trades", bar.taker_sell_base, bar.trades, bar.updated_at)
    assert "2 buckets already have trade-built bars, kept (line 3)" in capsys.readouterr().out
    klines = PressureBar.objects.filter(source="klines")
    assert klines.filter(interval="5m").count() == 23 and klines.filter(interval="1h").count() == 1


@pytest.mark.parametrize("history", [False, True])
@pytest.mark.parametrize("interval", ["1m", "5m"])
def test_trade_ingestion_replaces_a_kline_bar(tmp_path, shared_data, interval, history):
    """Trades into a bucket that has kline bars: the trade path's bars replace them, at every interval.

    Without history the batch grows the stored minute (the append path), with an earlier trade it is
    recomputed from the stored trades: both must start from the trades, not from the kline bar.
    """
    if interval == "1m":
        path, symbol, base, price = shared_data / "nautilus-trader-testdata" / ADABTC[0], "ADABTC", "ADA", "0.00002855"
    else:
        path, symbol, base, price = _write(tmp_path, "k.csv", _month("2024-04")[:24]), "BTCUSDT", "BTC", "69000.5"
    size = {"1m": 60_000, "5m": 300_000}[interval]
    start = int(kline_rows(path)[0][0])
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol=symbol, base=base, quote=symbol[len(base):])
    earlier = [TradeRow(100, start + 3 * size, price, "7", True)] if history else []
    if earlier:
        market_batch_ingest(instrument=inst, trades=earlier, source="t", publish=False)
    _import(path, interval=interval, symbol=symbol)
    kline_count = PressureBar.objects.filter(interval=interval, source="klines").count()
    trades = [TradeRow(1 + i, start + size + 1000 * i, price, "0.25" if i % 3 else "2", i % 3 == 0) for i in range(20)]
    market_batch_ingest(instrument=inst, trades=trades, source="t", publish=False)
    want = minute_bars_by_hand(trades, size)[start + size]
    bar = _bars(interval)[start + size]
    assert (bar.source, bar.open, bar.close, bar.trades) == ("trades", want["open"], want["close"], 20)
    assert (bar.taker_buy_base, bar.taker_sell_base, bar.taker_sell_quote) == (
        want["buy"], want["sell"], want["sell_q"])
    hour = _bars("1h")[start - start % HOUR]
    assert (hour.source, hour.trades) == ("trades", 20 + history)
    assert PressureBar.objects.filter(interval=interval, source="klines").count() == kline_count - 1


T0 = 1_711_929_600_000  # 2024-04-01 00:00 UTC
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "15"))


@st.composite
def valid_klines(draw) -> list[str]:
    """Consistent klines: OHLC within [low, high], taker buys within the volumes, quote = volume x a price."""
    slots = draw(st.lists(st.integers(0, 40), min_size=1, max_size=25, unique=True))
    lines = []
    for slot in slots:
        low = Decimal(draw(st.integers(1, 10**8))).scaleb(-draw(st.integers(0, 4)))
        high = low + Decimal(draw(st.integers(0, 10**6))).scaleb(-4)
        inside = [low + (high - low) * Decimal(draw(st.integers(0, 100))) / 100 for _ in range(3)]
        inside = [x.quantize(Decimal("1e-6")) for x in inside]
        volume = Decimal(draw(st.integers(1, 10**12))).scaleb(-8)
        buy = (volume * Decimal(draw(st.integers(0, 100))) / 100).quantize(Decimal("1e-8"))
        quote, buy_q = ((v * inside[2]).quantize(Decimal("1e-8")) for v in (volume, buy))
        t = T0 + slot * 300_000
        cells = (t, inside[0], high, low, inside[1], volume, t + 299_999, quote, draw(st.integers(1, 10**6)), buy,
                 buy_q, 0)
        lines.append(",".join(format(c, "f") if isinstance(c, Decimal) else str(c) for c in cells))
    return lines


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(valid=valid_klines(), bad=st.lists(st.sampled_from([line for line, _ in BAD]), max_size=6),
       order=st.randoms(use_true_random=False), header=st.booleans(), packing=st.sampled_from(["plain", "gz", "zip"]))
def test_any_mix_stores_exactly_the_valid_klines(tmp_path_factory, valid, bad, order, header, packing):
    PressureBar.objects.all().delete()
    lines = valid + bad
    order.shuffle(lines)
    _import(_write(tmp_path_factory.mktemp("k"), "k.csv", lines, packing=packing, header=header))
    rows = [line.split(",") for line in valid]
    _assert_bars_equal("5m", kline_bars_by_hand(rows, 300_000))
    _assert_bars_equal("1h", kline_bars_by_hand(rows, HOUR))
    for bar in PressureBar.objects.all():
        assert 0 <= bar.taker_sell_ratio <= 1 and 0 < bar.low <= min(bar.open, bar.close)
        assert max(bar.open, bar.close) <= bar.high and bar.taker_buy_base >= 0 and bar.taker_sell_base >= 0
