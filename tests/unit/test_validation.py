from hypothesis import given, settings
from hypothesis import strategies as st

from apps.markets.validation import TradeRow, _clean_mask, _validate_rows, decimals_of, trades_validate

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
        "qty absurdly large": TradeRow(8, NOW, "1", "1e12", False),
        "time out of range": TradeRow(9, 1000, "1", "1", False),
        "bad trade id": TradeRow(-1, NOW, "1", "1", False),
        "taker side unknown": TradeRow(10, NOW, "1", "1", None),
        "qty has more than 15 significant digits": TradeRow(11, NOW, "1", "1.0000000000000001", False),
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
