"""The kline reader's text-to-units parsing and the kline bar math, against Decimal and Fraction references."""

from __future__ import annotations

import os
import re
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.markets.decimal_text import digits_of, text_matrix, units_of, units_text
from apps.markets.importers import ReadStats
from apps.markets.klines import Klines, read_klines
from apps.pressure import kline_bars as kb

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "200"))
PLAIN = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")  # a plain decimal, as the validation rules define it

decimal_texts = st.builds(
    lambda whole, frac, lead, trail, dot: ("0" * lead + whole) + (("." + frac + "0" * trail) if dot else ""),
    st.from_regex(r"[0-9]{0,12}", fullmatch=True), st.from_regex(r"[0-9]{0,10}", fullmatch=True),
    st.integers(0, 3), st.integers(0, 4), st.booleans(),
).filter(lambda t: any(c.isdigit() for c in t))
junk = st.text(alphabet="0123456789.-e_ +\u0660\u0661x", min_size=0, max_size=14)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(decimal_texts, min_size=1, max_size=30), st.integers(0, 4))
def test_units_are_the_exact_decimal_value(texts, extra):
    digits = digits_of(*text_matrix(texts))
    assert digits.plain.all()
    scale = int(digits.decimals.max()) + extra
    units = units_of(digits, scale)
    for i, text in enumerate(texts):
        value = Decimal(text)
        assert int(units[i]) == int(value.scaleb(scale))
        normal = value.normalize().as_tuple()
        assert digits.decimals[i] == (max(0, -normal.exponent) if value else 0)
        assert digits.significant[i] == (len(normal.digits) if value else 0)
    assert [Decimal(t) for t in units_text(units, scale)] == [Decimal(t) for t in texts]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(junk, min_size=1, max_size=30))
def test_only_plain_ascii_decimals_are_plain(texts):
    encoded = [t.encode() for t in texts]
    width = max(max(map(len, encoded)), 1)
    mat = np.zeros((len(texts), width), dtype=np.uint8)
    for i, raw in enumerate(encoded):
        mat[i, : len(raw)] = list(raw)
    digits = digits_of(mat, np.array([len(raw) for raw in encoded]))
    assert digits.plain.tolist() == [bool(PLAIN.match(t)) for t in texts]
    assert digits.negative.tolist() == [t.startswith("-") and bool(PLAIN.match(t[1:])) for t in texts]


def test_values_beyond_int64_stay_exact():
    texts = ["123456789012345678.5", "0.0000000001", "99999999999999999999"]
    digits = digits_of(*text_matrix(texts))
    units = units_of(digits, 10)
    assert units.dtype == object
    assert [int(u) for u in units] == [int(Decimal(t).scaleb(10)) for t in texts]


_VWAP = Context(prec=60)


def _vwap_by_hand(quote: Decimal, volume: Decimal) -> Decimal:
    """12 significant digits, but no finer than the column's 22 decimals."""
    exact = _VWAP.divide(quote, volume)
    quantum = max(Decimal(1).scaleb(exact.adjusted() - 11), Decimal("1e-22"))
    return exact.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_VWAP)


def _bars(quote_units, volume_units, *, base_scale=8, quote_scale=8) -> kb.KlineBars:
    n = len(quote_units)
    zeros = np.zeros(n, dtype=np.int64)
    return kb.KlineBars(zeros, zeros, zeros, zeros, zeros, zeros, np.asarray(volume_units, dtype=np.int64), zeros,
                        np.asarray(quote_units, dtype=np.int64), zeros, zeros, zeros, 2, base_scale, quote_scale)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**17), st.integers(1, 10**15)), min_size=1, max_size=40),
       st.integers(0, 10), st.integers(0, 10))
def test_vwap_is_quote_over_volume_to_12_significant_digits(pairs, base_scale, quote_scale):
    bars = _bars([q for q, _ in pairs], [v for _, v in pairs], base_scale=base_scale, quote_scale=quote_scale)
    significand, exponent, defined = kb.vwap_digits(bars)
    assert defined.all()
    for (q, v), s, e in zip(pairs, significand.tolist(), exponent.tolist(), strict=True):
        assert Decimal(s).scaleb(e) == _vwap_by_hand(Decimal(q).scaleb(-quote_scale), Decimal(v).scaleb(-base_scale))


def test_vwap_rounds_exact_ties_half_even():
    """8 BTC for 8 x 12345.67890125: the VWAP is a tie at its 12th digit, rounded half-even."""
    quotes = [8 * 1234567890125, 8 * 1234567890135, 8 * 1234567890126]  # units of 1e-8
    significand, exponent, _ = kb.vwap_digits(_bars(quotes, [8 * 10**8] * 3))
    got = [Decimal(s).scaleb(e) for s, e in zip(significand.tolist(), exponent.tolist(), strict=True)]
    assert got == [Decimal("12345.6789012"), Decimal("12345.6789014"), Decimal("12345.6789013")]


def test_vwap_just_below_a_tie_is_not_rounded_up():
    """Quotients a hair below ...013.5 at the 12th digit, where the float quotient is exactly ...013.5."""
    pairs = [(24559796437919859, 1989343529357), (34646743698589670, 2806386264817)]  # units of 1e-8
    quotes, volumes = zip(*pairs, strict=True)
    assert all(float(q) / float(v) * 1e7 == 123456789013.5 for q, v in pairs)  # what float division sees
    significand, exponent, _ = kb.vwap_digits(_bars(list(quotes), list(volumes)))
    got = [Decimal(s).scaleb(e) for s, e in zip(significand.tolist(), exponent.tolist(), strict=True)]
    assert got == [Decimal("12345.6789013")] * 2


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**16), st.integers(0, 10**16)), min_size=1, max_size=40))
def test_taker_sell_ratio_is_correctly_rounded(pairs):
    n = len(pairs)
    zeros = np.zeros(n, dtype=np.int64)
    buy = np.array([b for b, _ in pairs], dtype=np.int64)
    sell = np.array([s for _, s in pairs], dtype=np.int64)
    bars = kb.KlineBars(zeros, zeros, zeros, zeros, zeros, zeros, buy, sell, zeros, zeros, zeros, zeros)
    ratio = kb.sell_ratio(bars)
    for (b, s), r in zip(pairs, ratio.tolist(), strict=True):
        assert (r != r) if b + s == 0 else r == float(Fraction(s, b + s))


kline_rows = st.lists(st.tuples(
    st.integers(0, 200), st.integers(1, 10**9), st.integers(0, 10**6), st.integers(0, 10**6),
    st.integers(0, 10**13), st.integers(0, 10**6), st.integers(0, 10**13)), min_size=1, max_size=60)


@settings(max_examples=EXAMPLES, deadline=None)
@given(kline_rows)
def test_rollup_sums_and_extremes_match_decimal_loops(rows):
    """5m bars (any subset of buckets, any order of values) into 1h bars."""
    rows = sorted({r[0]: r for r in rows}.values())
    n = len(rows)
    bucket = np.array([1_700_000_000_000 - 1_700_000_000_000 % 3_600_000 + r[0] * 300_000 for r in rows])
    price = np.array([r[1] for r in rows], dtype=np.int64)
    high = price + np.array([r[2] for r in rows])
    low = price - np.array([r[3] for r in rows]) // 2
    buy, sell = np.array([r[4] for r in rows]), np.array([r[6] for r in rows])
    trades = np.array([r[5] for r in rows])
    bars = kb.KlineBars(bucket, price, high, np.maximum(low, 1), price, trades, buy, sell, buy * 7, sell * 3,
                        np.arange(n) + 1, np.ones(n, dtype=np.int64), 2, 8, 8)
    rolled = kb.bars_rollup(bars, "1h")
    want: dict[int, dict] = {}
    for i in range(n):
        key = int(bucket[i]) - int(bucket[i]) % 3_600_000
        w = want.setdefault(key, {"open": int(price[i]), "high": 0, "low": 10**20, "sums": [0, 0, 0, 0, 0], "n": 0})
        w["close"] = int(price[i])
        w["high"] = max(w["high"], int(high[i]))
        w["low"] = min(w["low"], int(max(low[i], 1)))
        for k, value in enumerate((buy[i], sell[i], buy[i] * 7, sell[i] * 3, trades[i])):
            w["sums"][k] += int(value)
        w["n"] += 1
    assert rolled.bucket_ms.tolist() == sorted(want)
    for j, key in enumerate(rolled.bucket_ms.tolist()):
        w = want[key]
        got = [int(x) for x in (rolled.buy_base[j], rolled.sell_base[j], rolled.buy_quote[j], rolled.sell_quote[j],
                                rolled.trades[j])]
        assert (int(rolled.open[j]), int(rolled.close[j]), int(rolled.high[j]), int(rolled.low[j])) == (
            w["open"], w["close"], w["high"], w["low"])
        assert got == w["sums"] and int(rolled.count[j]) == w["n"]


def test_copies_in_a_file_keep_the_first_and_name_the_conflicts():
    t = 1_700_000_100_000 - 1_700_000_100_000 % 300_000
    ones = np.ones(4, dtype=np.int64)
    klines = Klines(np.array([1, 2, 3, 4]), np.array([t + 300_000, t, t + 300_000, t + 300_000]),
                    ones * 5, ones * 6, ones * 4, np.array([5, 5, 5, 6]), ones, ones, ones, ones, ones, 2, 0, 0)
    kept, copies, conflicts = kb.klines_dedupe(klines)
    assert kept.line.tolist() == [2, 1] and copies == 1 and conflicts.tolist() == [4]


def test_a_line_with_any_bad_value_never_takes_its_neighbours(tmp_path):
    good = "1700000100000,1.5,2,1,1.5,10,1700000399999,15,3,4,6,0"
    lines = [good.replace("1700000100000", str(1700000100000 + 300_000 * i)).replace(
        "1700000399999", str(1700000399999 + 300_000 * i)) for i in range(5)]
    lines[2] = lines[2].replace(",10,", ",1\u0660,")
    path = tmp_path / "k.csv"
    path.write_text("\n".join(lines) + "\n")
    stats = ReadStats()
    klines = read_klines(path, interval="5m", stats=stats)
    assert klines.line.tolist() == [1, 2, 4, 5]
    assert dict(stats.unreadable) == {"volume not a plain decimal (ASCII digits and one dot only)": 1}
    assert stats.unreadable_lines == {"volume not a plain decimal (ASCII digits and one dot only)": [3]}
