"""Nothing corrupt gets in, nothing good is lost: the whole import path against hostile input.

The reference for bars is tests.recordings.minute_bars_by_hand (Decimal and loops), never the app's
bar math. Runs on whichever backend the suite runs on (CI: SQLite, then PostgreSQL).
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.markets.models import Instrument, Trade
from apps.markets.services import CONFLICT, instrument_ensure
from apps.markets.validation import TradeRow
from apps.pressure.models import PressureBar
from apps.pressure.services import market_batch_ingest
from tests.recordings import minute_bars_by_hand, raw_trades

pytestmark = pytest.mark.django_db

T0 = 1_723_075_200_000  # 2024-08-08 00:00 UTC
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "25"))
HEADER = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"


def _decimal_text(units: int, decimals: int, zeros: int) -> str:
    text = format(Decimal(units).scaleb(-decimals), "f")
    return text + ("0" * zeros if "." in text else "")


# Valid values stay within 9 price digits (6 decimals) and 7 + 8 size digits, so any mix of them fits
# an instrument's 15-digit scale: which rows are valid never depends on the order they arrive in.
prices = st.builds(_decimal_text, st.integers(1, 10**9 - 1), st.integers(0, 6), st.integers(0, 3))
sizes = st.builds(_decimal_text, st.integers(1, 10**7 - 1), st.integers(0, 8), st.integers(0, 2))
sides = st.sampled_from([("true", True), ("false", False), ("True", True), ("False", False), ("1", True),
                         ("0", False)])


@st.composite
def valid_rows(draw):
    ids = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=40, unique=True))
    return [(i, T0 + draw(st.integers(0, 20 * 60_000)), draw(prices), draw(sizes), draw(sides)) for i in ids]


# Lines that must never be stored, each with what it would have fooled before.
BAD_LINES = [
    b"2000001,\xd9\xa6\xd9\xa1\xd9\xa0\xd9\xa0\xd9\xa0,1,0,1723075200000,true,true",  # Arabic-Indic digits
    b"2000002,61000,1_0,0,1723075200000,true,true",  # int() and Decimal() read 1_0 as 10
    b"2000003,6.1e4,1,0,1723075200000,false,true",
    b"2000004,61000,-1,0,1723075200000,false,true",
    b"2000005,61000,0.000,0,1723075200000,false,true",
    b"2000006,61000,0.000000000001,0,1723075200000,true,true",  # 12 decimals: the column keeps 10
    b"2000007,123456789.1234567,1,0,1723075200000,true,true",  # 16 significant digits
    b"9223372036854775808,61000,1,0,1723075200000,true,true",  # 2**63: beyond BIGINT
    b"\xd9\xa1\xd9\xa2\xd9\xa3,61000,1,0,1723075200000,true,true",  # an id in Arabic-Indic digits
    b"2000010,61000,1,0,1723075200000,maybe,true",
    b"2000011,61000",
    b"2000012,61000,1,0,17230752000x0,true,true",
    b"2000013,61000,1,0,1723075200000,caf\xe9,true",  # latin-1, not UTF-8
    b"2000014,NaN,1,0,1723075200000,true,true",
    b"2000015,61000,inf,0,1723075200000,true,true",
    b"2000016,61000,1000000000000,0,1723075200000,true,true",  # absurd size
    b"2000017,1e400,1,0,1723075200000,true,true",
    b"2000018, 61000,1,0,1723075200000,true,true",  # the last is good: spaces around a cell are stripped
]
VALID_BAD_LOOKING = {2000018: (T0, "61000", "1", True)}


def _line(row) -> bytes:
    trade_id, t, price, qty, (side_text, _) = row
    return f"{trade_id},{price},{qty},0,{t},{side_text},true".encode()


def _write(tmp_dir, name: str, body: bytes, packing: str):
    path = tmp_dir / name
    if packing == "gz":
        path = path.with_suffix(".csv.gz")
        path.write_bytes(gzip.compress(body))
    elif packing == "zip":
        path = path.with_suffix(".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, body)
    else:
        path.write_bytes(body)
    return path


def _fresh_instrument():
    Trade.objects.all().delete()
    PressureBar.objects.all().delete()
    Instrument.objects.all().delete()


def _stored():
    return {t.trade_id: (t.time_ms, t.price, t.qty, t.taker_sell) for t in Trade.objects.all()}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(valid=valid_rows(), bad=st.lists(st.sampled_from(BAD_LINES), max_size=8),
       order=st.randoms(use_true_random=False), header=st.booleans(), packing=st.sampled_from(["plain", "gz", "zip"]),
       batch_size=st.sampled_from([3, 17, 50_000]), repeat=st.integers(0, 3))
def test_import_stores_exactly_the_valid_rows_and_bars_hold_their_invariants(
        tmp_path_factory, valid, bad, order, header, packing, batch_size, repeat):
    _fresh_instrument()
    lines = [_line(r) for r in valid] + bad
    order.shuffle(lines)
    # Exact copies and conflicting copies (same id, another size) after the originals.
    copies = [_line(r) for r in valid[:repeat]]
    conflicting = [_line((i, t, p, q + "1" if "." in q else q + ".1", s)) for i, t, p, q, s in valid[:repeat]]
    body = b"\n".join(([HEADER.encode()] if header else []) + lines + copies + conflicting) + b"\n"
    path = _write(tmp_path_factory.mktemp("imp"), "BTCUSDT-trades", body, packing)

    call_command("import_trades", str(path), "--symbol", "BTCUSDT", "--batch-size", str(batch_size))

    expected = {i: (t, p, q, s) for i, t, p, q, (_, s) in valid}
    if BAD_LINES[-1] in bad:
        expected.update(VALID_BAD_LOOKING)
    stored = _stored()
    assert set(stored) == set(expected)
    for trade_id, (t, price, qty, sell) in expected.items():
        assert stored[trade_id] == (t, Decimal(price), Decimal(qty), sell)  # read back equal, first copy kept
    want = minute_bars_by_hand([(i, t, p, q, s) for i, (t, p, q, s) in expected.items()])
    bars = {int(b.bucket_start.timestamp() * 1000): b for b in PressureBar.objects.filter(interval="1m")}
    assert set(bars) == set(want)
    for bucket, bar in bars.items():
        w = want[bucket]
        assert (bar.open, bar.high, bar.low, bar.close, bar.trades) == (w["open"], w["high"], w["low"], w["close"],
                                                                        w["trades"])
        assert (bar.taker_buy_base, bar.taker_sell_base) == (w["buy"], w["sell"])
        assert (bar.taker_buy_quote, bar.taker_sell_quote) == (w["buy_q"], w["sell_q"])
        assert 0 < bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.taker_buy_base >= 0 and bar.taker_sell_base >= 0
        assert 0 <= bar.taker_sell_ratio <= 1
        assert bar.low <= bar.vwap <= bar.high
    for bar in PressureBar.objects.exclude(interval="1m"):
        assert 0 <= bar.taker_sell_ratio <= 1 and 0 < bar.low <= bar.high


def test_one_odd_trade_no_longer_corrupts_the_bars_for_good(tmp_path, capsys):
    """The 3-row file that overflowed the bar math and stored a size as 0 (issue #15)."""
    path = tmp_path / "t.csv"
    path.write_text("id,price,qty,quote_qty,time,is_buyer_maker\n1,61000.5,0.000000000001,0,1723075200000,true\n"
                    "2,61001.5,10000000,0,1723075201000,false\n3,61002.5,0.5,0,1723075202000,true\n")
    call_command("import_trades", str(path), "--symbol", "BTCUSDT")
    assert "rejected: 1 x qty has more than 10 decimals (line 2)" in capsys.readouterr().err
    inst = Instrument.objects.get()
    assert (inst.qty_decimals, inst.qty_int_digits) == (5, 8)  # 5: the default an instrument starts at
    bar = PressureBar.objects.get(interval="1m")
    assert (bar.low, bar.taker_sell_base, bar.taker_buy_base) == (Decimal("61001.5"), Decimal("0.5"),
                                                                  Decimal("10000000"))
    # A later trade arriving out of order into that minute recomputes it, exactly.
    market_batch_ingest(instrument=inst, trades=[TradeRow(4, T0 + 500, "61000", "0.25", True)], source="t",
                        publish=False)
    bar.refresh_from_db()
    assert (bar.open, bar.low, bar.taker_sell_base) == (Decimal("61000"), Decimal("61000"), Decimal("0.75"))


def test_sums_beyond_int64_stay_exact():
    """10,000 trades of a 15-digit size in one minute: 1e19 units of size (int64 ends at 9.2e18)."""
    inst = instrument_ensure(exchange_slug="x", market="spot", symbol="ABCUSDT", base="ABC", quote="USDT")
    rows = [TradeRow(i, T0 + 1 + i // 200, "999999.999999999", "999999999.999999", True) for i in range(1, 10_001)]
    market_batch_ingest(instrument=inst, trades=rows, source="t", publish=False)
    # A late trade makes the minute be recomputed from the stored trades (the SQL read path).
    market_batch_ingest(instrument=inst, trades=[TradeRow(20_000, T0, "1", "1", False)], source="t", publish=False)
    bar = PressureBar.objects.get(instrument=inst, interval="1m")
    size, price = Decimal("999999999.999999"), Decimal("999999.999999999")
    assert (bar.taker_sell_base, bar.taker_buy_base) == (10_000 * size, 1)
    assert (bar.taker_sell_quote, bar.taker_buy_quote) == (10_000 * price * size, 1)
    assert bar.taker_sell_ratio == float(10_000 * size / (10_000 * size + 1))


def test_a_batch_the_database_refuses_is_split_down_to_the_offending_row(capsys):
    """2,999 good rows around one the database refuses (a trigger stands in for any refusal)."""
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="ETHUSDT", base="ETH", quote="USDT")
    trades = [TradeRow(*t) for t in raw_trades("spot_ethusdt_20240808.gz")[:3000]]
    refused_id = trades[1234].trade_id
    table = Trade._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN IF NEW.trade_id = {refused_id}"
                           " THEN RAISE EXCEPTION 'trade refused by a test trigger'; END IF; RETURN NEW; END $$"
                           " LANGUAGE plpgsql")
            cursor.execute(f"CREATE TRIGGER refuse_one BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION"
                           " refuse_one()")
        else:
            cursor.execute(f"CREATE TRIGGER refuse_one BEFORE INSERT ON {table} WHEN NEW.trade_id = {refused_id}"
                           " BEGIN SELECT RAISE(ABORT, 'trade refused by a test trigger'); END")
    result = market_batch_ingest(instrument=inst, trades=trades, source="t", publish=False)
    assert (result.trades_inserted, result.rejected) == (2999, 1)
    assert set(Trade.objects.values_list("trade_id", flat=True)) == {t.trade_id for t in trades} - {refused_id}
    (reason,) = [r for r in result.stored.checked.rejected if r.startswith("refused by the database")]
    assert "trade refused by a test trigger" in reason
    assert result.stored.checked.positions[reason] == [1234]


def test_conflicting_duplicates_are_reported_and_the_first_copy_is_kept(tmp_path, capsys):
    inst = instrument_ensure(exchange_slug="binance", market="spot", symbol="BTCUSDT", base="BTC", quote="USDT")
    market_batch_ingest(instrument=inst, trades=[TradeRow(1, T0, "61000", "1", True)], source="t", publish=False)
    path = tmp_path / "dupes.csv"
    path.write_text("1,61000,2,0,1723075200000,true\n"  # stored before with size 1: conflict
                    "1,61000.00,1.0,0,1723075200000,true\n"  # the same trade written differently: duplicate
                    "2,61001,1,0,1723075201000,false\n"
                    "2,61001,3,0,1723075201000,false\n")  # conflicts with the line before it
    call_command("import_trades", str(path), "--symbol", "BTCUSDT")
    captured = capsys.readouterr()
    assert "inserted 1, skipped as duplicates 1, conflicts 2, rejected 0" in captured.out
    assert f"conflicts: 2 x {CONFLICT} (lines 1, 4)" in captured.err
    assert dict(Trade.objects.values_list("trade_id", "qty")) == {1: Decimal(1), 2: Decimal(1)}


def _good_csv(n: int) -> bytes:
    trades = raw_trades("spot_btcusdt_20240809.gz")[:n]
    return "".join(f"{i},{p},{q},0,{t},{str(m).lower()},true\n" for i, t, p, q, m in trades).encode()


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_truncated_gzip_keeps_every_complete_row_before_the_cut(tmp_path, capsys, cut):
    body = _good_csv(3000)
    packed = gzip.compress(body)
    path = tmp_path / "BTCUSDT-trades.csv.gz"
    path.write_bytes(packed[: int(len(packed) * cut)])
    with pytest.raises(CommandError) as exc:
        call_command("import_trades", str(path), "--symbol", "BTCUSDT")
    message = str(exc.value)
    assert "\n" not in message and "gzip stream is damaged or cut short after line" in message
    kept = Trade.objects.count()
    assert 0 < kept < 3000 and f"the {kept:,} rows before it were imported" in message
    # Every stored trade is a complete line of the file, exactly: none was cut into another value.
    stored = {(t.trade_id, t.price, t.qty) for t in Trade.objects.all()}
    first_lines = body.split(b"\n")[:kept]
    assert stored == {(int(c[0]), Decimal(c[1].decode()), Decimal(c[2].decode()))
                      for c in (line.split(b",") for line in first_lines)}


def test_a_truncated_zip_keeps_the_rows_before_the_cut(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-trades.csv", _good_csv(3000))
    path = tmp_path / "BTCUSDT-trades.zip"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    with pytest.raises(CommandError, match="zip archive is damaged or cut short"):
        call_command("import_trades", str(path), "--symbol", "BTCUSDT")
    assert 0 < Trade.objects.count() < 3000


@pytest.mark.parametrize(("name", "body", "message"), [
    ("empty.zip", b"PK\x05\x06" + b"\x00" * 18, "the zip archive is empty"),
    ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "a binary file, not text"),
    ("utf16.csv", "1,61000,1,0,1723075200000,true\n".encode("utf-16"), "UTF-16 text"),
    ("klines.csv", b"".join(b"1723075200000,61000.1,61010.2,60990.3,61005.4,12.5,1723075259999,7.6e5,345,6.1,3.7e5,0\n"
                            for _ in range(150)), "not a trades file in a known layout"),
    ("empty.csv", b"", "no data (the file is empty)"),
])
def test_files_that_cannot_be_read_end_in_one_clear_line(tmp_path, name, body, message):
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(CommandError) as exc:
        call_command("import_trades", str(path), "--symbol", "BTCUSDT")
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not Trade.objects.exists()


def test_a_directory_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(CommandError, match="is a directory"):
        call_command("import_trades", str(tmp_path), "--symbol", "BTCUSDT")
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_trades", str(tmp_path / "nope.csv"), "--symbol", "BTCUSDT")


def test_a_bom_and_a_latin1_line_do_not_stop_the_import(tmp_path, capsys):
    """Excel writes a byte-order mark; a stray latin-1 byte loses only its own row, not the one before."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n1,61000,1,0,1723075200000,true,true\r\n"
                     b"2,61000,1,0,1723075200000,caf\xe9,true\r\n3,61001,2,0,1723075201000,false,true\r\n")
    call_command("import_trades", str(path), "--symbol", "BTCUSDT")
    assert set(Trade.objects.values_list("trade_id", flat=True)) == {1, 3}
    assert "unreadable: 1 x not UTF-8 text (line 3)" in capsys.readouterr().err
