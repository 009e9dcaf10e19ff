from apps.markets.validation import TradeRow, decimals_of, trades_validate

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
