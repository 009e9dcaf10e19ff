"""Bars from exchange klines: pure numpy in exact integer units, no ORM.

A kline gives OHLC, the trade count, base and quote volume and the taker-buy part of each, so a
bar's taker buy and sell volumes follow exactly: sell = volume - taker buy. What klines do not
carry stays empty in their bars (book fields, the trade-count split, large trades). Coarser bars are
exact rollups of finer ones. Derived fields match :func:`apps.pressure.bars.finish_bar`: delta =
buy - sell, taker sell ratio = sell / volume (correctly rounded), VWAP = quote / volume to
``VWAP_DIGITS`` significant digits (:func:`apps.pressure.bars.vwap_of`, computed here a column at a time;
none when the quote volume is zero, as tiny trades at tiny prices can round to).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal

import numpy as np

from apps.markets.decimal_text import rescale
from apps.markets.klines import KLINE_INTERVAL_MS, Klines
from apps.pressure.bars import BAR_ARRAYS, VWAP_DIGITS, BarArrays, vwap_of

# The intervals bars are stored at, and what each kline interval is rolled up into.
STORED = ("1m", "5m", "1h")
ROLLUPS = {"1m": ("5m", "1h"), "5m": ("1h",), "15m": ("1h",), "1h": ()}
_SAFE = 2**62
# A float VWAP is off by at most ~8e-16 relative, i.e. 8e-4 of a unit of its 12th digit: nearer than this
# to a rounding tie (or a power of ten) it is recomputed with Decimals.
_TIE_MARGIN = 4e-3


@dataclass(frozen=True)
class KlineBars(BarArrays):
    """Bars of one interval as parallel arrays: prices, base and quote amounts in units at their scales."""

    line: np.ndarray  # the file line of the (first) kline each bar comes from
    count: np.ndarray  # how many klines it holds
    price_scale: int = 0
    base_scale: int = 0
    quote_scale: int = 0

    ARRAYS = (*BAR_ARRAYS, "line", "count")
    VALUES = BAR_ARRAYS[1:]

    def take(self, index) -> KlineBars:
        return replace(self, **{name: getattr(self, name)[index] for name in self.ARRAYS})

    def at_scales(self, price: int, base: int, quote: int) -> KlineBars:
        """The same bars with amounts at finer (or equal) scales."""
        change = {}
        for names, old, new in ((("open", "high", "low", "close"), self.price_scale, price),
                                (("buy_base", "sell_base"), self.base_scale, base),
                                (("buy_quote", "sell_quote"), self.quote_scale, quote)):
            change.update({name: rescale(getattr(self, name), old, new) for name in names})
        return replace(self, **change, price_scale=price, base_scale=base, quote_scale=quote)

    @classmethod
    def concat(cls, parts: list[KlineBars]) -> KlineBars:
        """Bars of several sets, sorted by bucket (the sets must not share a bucket)."""
        parts = [p for p in parts if len(p)] or parts[:1]
        scales = [max(getattr(p, name) for p in parts) for name in ("price_scale", "base_scale", "quote_scale")]
        parts = [p.at_scales(*scales) for p in parts]
        arrays = {}
        for name in cls.ARRAYS:
            pieces = [getattr(p, name) for p in parts]
            kind = object if any(piece.dtype == object for piece in pieces) else np.int64
            arrays[name] = np.concatenate([piece.astype(kind) for piece in pieces])
        merged = cls(**arrays, price_scale=scales[0], base_scale=scales[1], quote_scale=scales[2])
        return merged.take(np.argsort(merged.bucket_ms, kind="stable"))


def klines_bars(k: Klines) -> KlineBars:
    """One bar per kline, at the kline's own interval."""
    return KlineBars(
        bucket_ms=k.open_ms, open=k.open, high=k.high, low=k.low, close=k.close, trades=k.trades,
        buy_base=k.taker_buy_base, sell_base=k.volume - k.taker_buy_base,
        buy_quote=k.taker_buy_quote, sell_quote=k.quote_volume - k.taker_buy_quote,
        line=k.line, count=np.ones(len(k), dtype=np.int64),
        price_scale=k.price_scale, base_scale=k.base_scale, quote_scale=k.quote_scale,
    )


def klines_dedupe(k: Klines) -> tuple[Klines, int, np.ndarray]:
    """Klines sorted by open time with one copy per open time: the first in the file.

    Returns them, the number of exact copies dropped and the lines of conflicting copies (same open
    time, other values), which are dropped too.
    """
    k = k.take(np.lexsort((k.line, k.open_ms)))
    if len(k) < 2:
        return k, 0, np.zeros(0, dtype=np.int64)
    repeat = np.concatenate(([False], k.open_ms[1:] == k.open_ms[:-1]))
    if not repeat.any():
        return k, 0, np.zeros(0, dtype=np.int64)
    first = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(k))))
    names = [f.name for f in fields(Klines)[2:11]]
    same = np.ones(len(k), dtype=bool)
    for name in names:
        values = getattr(k, name)
        same &= values == values[first]
    conflict = repeat & ~same
    return k.take(~repeat), int((repeat & same).sum()), k.line[conflict]


def bars_rollup(bars: KlineBars, interval: str) -> KlineBars:
    """Bars of a coarser interval: OHLC, counts and sums over the finer bars of each bucket, exactly."""
    size = KLINE_INTERVAL_MS[interval]
    if not len(bars):
        return replace(bars)
    bucket = bars.bucket_ms - bars.bucket_ms % size
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [len(bucket)])) - 1
    widest = int(np.diff(np.concatenate((starts, [len(bucket)]))).max())

    def total(values: np.ndarray) -> np.ndarray:
        if values.dtype != object and int(np.abs(values).max()) * widest >= _SAFE:
            values = values.astype(object)
        return np.add.reduceat(values, starts)

    return replace(
        bars, bucket_ms=bucket[starts], open=bars.open[starts], close=bars.close[ends],
        high=np.maximum.reduceat(bars.high, starts), low=np.minimum.reduceat(bars.low, starts),
        trades=np.add.reduceat(bars.trades, starts), line=np.minimum.reduceat(bars.line, starts),
        count=np.add.reduceat(bars.count, starts),
        **{name: total(getattr(bars, name)) for name in ("buy_base", "sell_base", "buy_quote", "sell_quote")},
    )


def sell_ratio(bars: KlineBars) -> np.ndarray:
    """Taker sell volume / volume, correctly rounded; NaN without volume."""
    sell, volume = bars.sell_base, bars.buy_base + bars.sell_base
    out = np.full(len(bars), np.nan)
    traded = volume != 0
    if sell.dtype == object or volume.dtype == object or (len(volume) and int(volume.max()) >= 2**53):
        # Above 2**53 the float of an integer is rounded: Python's int / int is correctly rounded.
        out[traded] = [int(s) / int(v) for s, v in zip(sell[traded], volume[traded], strict=True)]
        return out
    # Both exact as floats, and IEEE division rounds correctly.
    out[traded] = sell[traded].astype(np.float64) / volume[traded].astype(np.float64)
    return out


def vwap_digits(bars: KlineBars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """VWAP as (significand, exponent, defined): significand x 10**exponent == vwap_of(quote, volume).

    The float quotient picks the rounding of the VWAP_DIGITS-th digit; where it is too near a tie to be
    sure, the row is computed again with Decimals.
    """
    volume = bars.buy_base + bars.sell_base
    quote = bars.buy_quote + bars.sell_quote
    # A quote volume rounded to zero (tiny trades at tiny prices) tells no price: no VWAP then.
    defined = (volume != 0) & (quote != 0)
    n = len(bars)
    significand = np.zeros(n, dtype=np.int64)
    exponent = np.zeros(n, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (quote.astype(np.float64) / volume.astype(np.float64)) * 10.0 ** (bars.base_scale - bars.quote_scale)
        digits = VWAP_DIGITS - 1
        power = np.floor(np.log10(np.where(defined & (value > 0), value, 1.0))).astype(np.int64)
        scaled = value * 10.0 ** (digits - power)
        power = np.where(scaled >= 10.0 ** (digits + 1), power + 1, np.where(scaled < 10.0**digits, power - 1, power))
        scaled = value * 10.0 ** (digits - power)
    fraction = scaled - np.floor(scaled)
    near_decade = (np.abs(scaled / 10.0**digits - 1) < 1e-12) | (np.abs(scaled / 10.0 ** (digits + 1) - 1) < 1e-12)
    unsure = defined & ((np.abs(fraction - 0.5) < _TIE_MARGIN) | ~np.isfinite(scaled) | (value <= 0) | near_decade
                        | (power - digits < -22))
    sure = defined & ~unsure
    significand[sure] = np.rint(scaled[sure]).astype(np.int64)
    exponent[sure] = power[sure] - digits
    for i in np.flatnonzero(unsure):
        exact = vwap_of(Decimal(int(quote[i])).scaleb(-bars.quote_scale),
                        Decimal(int(volume[i])).scaleb(-bars.base_scale))
        _, digit_tuple, exp = exact.as_tuple()
        significand[i] = int("".join(map(str, digit_tuple)))
        exponent[i] = exp
    return significand, exponent, defined
