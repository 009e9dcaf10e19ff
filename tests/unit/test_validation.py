from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.markets.models import Trade
from apps.markets.validation import (
    MAX_DECIMALS,
    MAX_ID,
    Scale,
    TradeRow,
    _clean_mask,
    _validate_rows,
    decimals_of,
    int_digits_of,
    scale_admit,
    trades_validate,
)

NOW = 1_723_161_600_000
GOOD = TradeRow(1, NOW, "61837.63000000", "0.02000000", True)


def test_good_rows_pass_and_decimals_are_detected():
    out = trades_validate([GOOD, TradeRow(2, NOW, "1.5", "0.00001", False)], now_ms=NOW)
    assert out.rows == [GOOD, TradeRow(2, NOW, "1.5", "0.00001", False)]
    assert not out.rejected
    assert (out.price_decimals, out.qty_decimals) == (2, 5)


def test_each_kind_of_bad_row_is_rejected_with_its_reason_and_good_rows_survive():
    bad = {
        "price not a number": TradeRow(3, NOW, "abc", "1", True),
        "price not finite": TradeRow(4, NOW, "NaN", "1", True),
        "qty not finite": TradeRow(5, NOW, "1", "inf", True),
        "qty not positive": TradeRow(6, NOW, "1", "-0.5", False),
        "price not positive": TradeRow(7, NOW, "0", "1", False),
        "qty absurdly large": TradeRow(8, NOW, "1", "1000000000000", False),
        "time out of range": TradeRow(9, 1000, "1", "1", False),
        "bad trade id": TradeRow(-1, NOW, "1", "1", False),
        "taker side unknown": TradeRow(10, NOW, "1", "1", None),
        "qty has more than 15 significant digits": TradeRow(11, NOW, "1", "1234567.123456789", False),
        "qty has more than 10 decimals": TradeRow(12, NOW, "1", "0.000000000001", False),
        "price not a plain decimal (ASCII digits and one dot only)": TradeRow(13, NOW, "1e5", "1", False),
        "qty not a plain decimal (ASCII digits and one dot only)": TradeRow(14, NOW, "1", "1_0", False),
        "malformed row": ("only", "three", "cells"),
    }
    out = trades_validate([GOOD, *bad.values()], now_ms=NOW)
    assert out.rows == [GOOD]
    assert dict(out.rejected) == {reason: 1 for reason in bad}
    assert out.examples["qty not positive"] == bad["qty not positive"]


def test_float_nan_is_rejected():
    out = trades_validate([TradeRow(1, NOW, float("nan"), "1", True)], now_ms=NOW)
    assert dict(out.rejected) == {"price not finite": 1}


def test_decimals_of():
    assert decimals_of("61837.63000000") == 2
    assert decimals_of("100") == 0
    assert decimals_of("0.00001000") == 5


ODD_TEXTS = ["1e5", "1E-3", "nan", "NaN", "inf", "-1", "+1", " 1", "1 ", "", ".", "1.2.3", "0", "0.0", "00.5", "5.",
             ".5", "1e12", "9" * 16, "0.000000000000001", "1" * 15, "1" * 14 + ".5", "1.000000000000001",
             "12345.67890123456", "1_000", "١٢", "0x10"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.sampled_from([*ODD_TEXTS, None, 1.5, float("inf"), True]),
                          st.sampled_from(["price", "qty", "id", "time", "side"])), max_size=4),
       st.integers(65, 120))
def test_bulk_checks_of_large_batches_agree_with_the_per_row_checks(odd, size):
    """Batches over 64 rows are vetted in bulk first; whatever they hold, the outcome (rows kept,
    reasons, decimals) must be exactly the per-row checks' outcome."""
    rows = [TradeRow(i, NOW + i, f"{61_000 + i}.{i % 100:02d}", f"0.{i:05d}1", i % 3 == 0) for i in range(size)]
    for index, value, field in odd:
        row = rows[index % size]
        if field == "price":
            row = row._replace(price=value)
        elif field == "qty":
            row = row._replace(qty=value)
        elif field == "id":
            row = row._replace(trade_id=value)
        elif field == "time":
            row = row._replace(time_ms=value)
        else:
            row = row._replace(taker_sell=value)
        rows[index % size] = row
    bulk = trades_validate(rows, now_ms=NOW)
    one_by_one = _validate_rows(rows, NOW)
    assert bulk.rows == one_by_one.rows
    assert bulk.rejected == one_by_one.rejected
    assert (bulk.price_decimals, bulk.qty_decimals) == (one_by_one.price_decimals, one_by_one.qty_decimals)


def test_a_clean_large_batch_takes_the_bulk_path_with_exact_decimals():
    rows = [TradeRow(i, NOW, f"{100 + i}.{i % 7}0", "0.02000000" if i else "3.123456789", bool(i % 2))
            for i in range(500)]
    mask = _clean_mask(rows, NOW)
    assert mask is not None and mask.all()
    out = trades_validate(rows, now_ms=NOW)
    assert out.rows == rows and (out.price_decimals, out.qty_decimals) == (1, 9)


def test_other_scripts_digits_underscores_and_huge_ids_are_refused_with_reasons():
    """Decimal() and int() read these, and the backends then stored them as text or refused a whole batch."""
    rows = [
        GOOD,
        TradeRow(2, NOW, "\u0666\u0661\u0660\u0660\u0660", "1", False),  # Arabic-Indic 61000
        TradeRow(3, NOW, "61000", "\uff11", False),  # fullwidth 1
        TradeRow(4, NOW, "61_000", "1", False),
        TradeRow(MAX_ID + 1, NOW, "61000", "1", False),
        TradeRow(MAX_ID, NOW, "61000", "1", False),
    ]
    out = trades_validate(rows, now_ms=NOW)
    assert [r.trade_id for r in out.rows] == [1, MAX_ID]
    assert dict(out.rejected) == {
        "price not a plain decimal (ASCII digits and one dot only)": 2,
        "qty not a plain decimal (ASCII digits and one dot only)": 1,
        "bad trade id": 1,
    }
    assert out.positions["bad trade id"] == [4]


def test_floats_are_accepted_as_their_plain_decimal_text():
    out = trades_validate([TradeRow(1, NOW, 61000.5, 1e-05, True)], now_ms=NOW)
    assert out.rows == [TradeRow(1, NOW, "61000.5", "0.00001", True)]
    assert out.scale == Scale(1, 5, 5, 0)


def test_limits_match_the_trade_columns():
    for name in ("price", "qty"):
        assert Trade._meta.get_field(name).decimal_places == MAX_DECIMALS


def test_digits_of_texts():
    assert [int_digits_of(t) for t in ("061837.63", "0.001", "100", ".5")] == [5, 0, 3, 0]


def test_scale_admits_what_fits_in_15_digits_first_come_first_kept():
    rows = [TradeRow(1, NOW, "61000.5", "10000000", True),  # qty: 8 integer digits
            TradeRow(2, NOW, "61000.5", "0.00000001", True),  # 8 decimals: 16 digits with the first
            TradeRow(3, NOW, "61000.5", "0.5", True)]
    out, scale = scale_admit(trades_validate(rows, now_ms=NOW), Scale())
    assert [r.trade_id for r in out.rows] == [1, 3]
    assert out.positions == {"qty needs more than 15 digits beside this instrument's other qtys": [1]}
    assert scale == Scale(price_decimals=1, price_int_digits=5, qty_decimals=1, qty_int_digits=8)
    # The instrument's stored values count as well: fine sizes first, then a huge one is refused.
    out, scale = scale_admit(trades_validate([TradeRow(4, NOW, "1", "123456789", True)], now_ms=NOW),
                             Scale(qty_decimals=8))
    assert not out.rows and scale == Scale(qty_decimals=8)


def test_rejected_positions_point_into_the_original_batch():
    rows = [TradeRow(1, NOW, "x", "1", True), GOOD._replace(trade_id=2),
            TradeRow(3, NOW, "1", "123456789", True), TradeRow(4, NOW, "1", "0.0000001", True)]
    out, _ = scale_admit(trades_validate(rows, now_ms=NOW), Scale())
    assert out.positions["price not a number"] == [0]
    assert out.positions["qty needs more than 15 digits beside this instrument's other qtys"] == [3]
    assert [out.origin(i) for i in range(len(out.rows))] == [1, 2]
    assert Decimal(out.rows[1].qty) == 123456789
