"""Bar math: pure numpy, no ORM, so it is fast and testable on its own.

Trades arrive as parallel arrays sorted by (exchange time, trade id). Prices and sizes are
integers in units of 10**-decimals of the instrument, so sums are exact: the API promises
quantities exact to the exchange's precision.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Context, Decimal

import numpy as np

INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000}
BAND_NAMES = ("0_1pct", "0_5pct", "1pct", "2pct")
_INT64_SAFE = 2**62


def to_units(values, decimals: int) -> np.ndarray:
    """Decimal strings or floats to exact int64 units.

    Exact while value x 10**decimals has at most 15 digits, which validation guarantees for
    every stored trade (apps.markets.validation.scale_admit): the float product then rounds
    to the right integer."""
    arr = np.asarray(values, dtype=np.float64)
    return np.rint(arr * 10.0**decimals).astype(np.int64)


def from_units(value, decimals: int) -> Decimal:
    return Decimal(int(value)).scaleb(-decimals)


def bucket_floor(time_ms: np.ndarray, interval_ms: int) -> np.ndarray:
    return time_ms - np.mod(time_ms, interval_ms)


@dataclass(frozen=True)
class BarArrays:
    """Bars as parallel arrays, a bucket each: OHLC, the trade count and taker buy and sell volumes in
    base and quote. Their units are the subclass's to say."""

    bucket_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    trades: np.ndarray
    buy_base: np.ndarray
    sell_base: np.ndarray
    buy_quote: np.ndarray
    sell_quote: np.ndarray

    def __len__(self) -> int:
        return len(self.bucket_ms)


BAR_ARRAYS = tuple(f.name for f in fields(BarArrays))


@dataclass(frozen=True)
class TradeBars(BarArrays):
    """Per-bucket trade aggregates in integer units (quote = price units x qty units)."""


def trade_bars(
    time_ms: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    taker_sell: np.ndarray,
    *,
    interval_ms: int,
) -> TradeBars:
    """Aggregate trades into bars. Inputs must be sorted by time (then trade id)."""
    time_ms = np.asarray(time_ms, dtype=np.int64)
    n = len(time_ms)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TradeBars(*(empty,) * len(BAR_ARRAYS))
    if n > 1 and np.any(np.diff(time_ms) < 0):
        raise ValueError("trades must be sorted by time")
    price = np.asarray(price, dtype=np.int64)
    qty = np.asarray(qty, dtype=np.int64)
    sell = np.asarray(taker_sell, dtype=bool)

    bucket = bucket_floor(time_ms, interval_ms)
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [n])) - 1

    # Sums of sizes and quote amounts (the product of two integers) fall back to exact Python
    # ints only when int64 could overflow (fine tick sizes on huge notional, or many huge trades).
    if int(qty.max()) * n >= _INT64_SAFE:
        qty = qty.astype(object)
    if int(price.max()) * int(qty.max()) * n < _INT64_SAFE:
        quote = price * qty
    else:
        quote = price.astype(object) * qty.astype(object)
    zero = quote.dtype.type(0) if quote.dtype != object else 0
    buy_quote = np.where(sell, zero, quote)
    sell_quote = np.where(sell, quote, zero)
    if quote.dtype == object:
        buy_quote = buy_quote.astype(object)
        sell_quote = sell_quote.astype(object)

    return TradeBars(
        bucket_ms=bucket[starts],
        open=price[starts],
        high=np.maximum.reduceat(price, starts),
        low=np.minimum.reduceat(price, starts),
        close=price[ends],
        trades=ends - starts + 1,
        buy_base=np.add.reduceat(np.where(sell, 0, qty), starts),
        sell_base=np.add.reduceat(np.where(sell, qty, 0), starts),
        buy_quote=np.add.reduceat(buy_quote, starts),
        sell_quote=np.add.reduceat(sell_quote, starts),
    )


def spread_bps(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """(ask - bid) / mid * 10,000."""
    mid = (bid + ask) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mid > 0, (ask - bid) / mid * 10_000.0, np.nan)


def imbalance(bid_depth: np.ndarray, ask_depth: np.ndarray) -> np.ndarray:
    """(bid - ask) / (bid + ask): +1 all bids, -1 all asks (selling pressure), NaN if empty."""
    total = bid_depth + ask_depth
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (bid_depth - ask_depth) / total, np.nan)


def cvd(delta: np.ndarray) -> np.ndarray:
    """Cumulative volume delta from the start of the given range."""
    return np.cumsum(delta)


def rollup(rows: list[dict], *, interval_ms: int) -> list[dict]:
    """Combine finer bars (dicts with Decimal sums, sorted by bucket_ms) into coarser ones.

    Sums and OHLC are exact; spread and imbalance are means weighted by book samples.
    """
    out: list[dict] = []
    group: list[dict] = []
    current = None

    def flush():
        if not group:
            return
        priced = [r for r in group if r["open"] is not None]
        samples = sum(r["book_samples"] for r in group)
        bar = {
            "bucket_ms": current,
            "open": priced[0]["open"] if priced else None,
            "close": priced[-1]["close"] if priced else None,
            "high": max(r["high"] for r in priced) if priced else None,
            "low": min(r["low"] for r in priced) if priced else None,
            "trades": sum(r["trades"] for r in group),
            "book_samples": samples,
        }
        for key in ("taker_buy_base", "taker_sell_base", "taker_buy_quote", "taker_sell_quote"):
            bar[key] = sum((r[key] for r in group), Decimal(0))
        for key in ("spread_bps", "bid_depth_0_5pct", *(f"imbalance_{b}" for b in BAND_NAMES)):
            bar[key] = _weighted_mean(group, key, "book_samples")
        large = bar["large_trade_base"] = sum(r.get("large_trade_base") or 0.0 for r in group)
        bar["large_trade_sell_base"] = sum(r.get("large_trade_sell_base") or 0.0 for r in group)
        bar["large_trade_sell_share"] = bar["large_trade_sell_base"] / large if large > 0 else None
        for key in ("buy_trades", "sell_trades"):
            bar[key] = sum(r.get(key) or 0 for r in group)
        ofis = [r["ofi"] for r in group if r.get("ofi") is not None]
        bar["ofi"] = sum(ofis) if ofis else None
        out.append(finish_bar(bar))

    for row in rows:
        bucket = row["bucket_ms"] - row["bucket_ms"] % interval_ms
        if bucket != current:
            flush()
            group, current = [], bucket
        group.append(row)
    flush()
    return out


def _weighted_mean(rows: list[dict], key: str, weight_key: str) -> float | None:
    pairs = [(r[key], r[weight_key]) for r in rows if r.get(key) is not None and r[weight_key]]
    weight = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / weight if weight else None


VWAP_DIGITS = 12  # significant digits: relative precision 1e-12 at any price level
VWAP_MIN_QUANTUM = Decimal("1e-22")  # PressureBar.vwap's decimal places
_VWAP_CONTEXT = Context(prec=40)


def vwap_of(quote: Decimal, volume: Decimal) -> Decimal:
    """quote / volume rounded half-even to VWAP_DIGITS significant digits."""
    value = _VWAP_CONTEXT.divide(quote, volume)
    quantum = Decimal(1).scaleb(value.adjusted() - VWAP_DIGITS + 1)
    return value.quantize(max(quantum, VWAP_MIN_QUANTUM), rounding=ROUND_HALF_EVEN, context=_VWAP_CONTEXT)


def finish_bar(bar: dict) -> dict:
    """Derived fields from the sums: delta, taker sell ratio, VWAP."""
    buy, sell = bar["taker_buy_base"], bar["taker_sell_base"]
    volume = buy + sell
    bar["delta_base"] = buy - sell
    bar["taker_sell_ratio"] = float(sell / volume) if volume else None
    quote = bar["taker_buy_quote"] + bar["taker_sell_quote"]
    bar["vwap"] = vwap_of(quote, volume) if volume else None
    return bar
