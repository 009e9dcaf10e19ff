"""Order flow per bar from trades: taker sell ratio, delta and CVD slope, trade-count imbalance,
large-trade sell share.

Inputs are parallel arrays sorted by exchange time: ``time_ms`` (int64), ``price`` and ``qty``
(floats, base currency) and ``taker_sell`` (bool; Binance ``m`` true = the taker sold). Outputs are
indexed by bar start (``bucket_ms``) on a contiguous grid: the given ``index`` or the span of the
trades, so empty bars are rows (zero volume, NaN ratios).

Definitions (per bar, base currency):

- taker_sell_ratio = sell / (buy + sell); NaN without volume.
- delta = buy - sell; CVD is its running sum.
- cvd_slope = least-squares slope of CVD against bar number over the last ``window`` bars
  (current included), in base per bar. The slope does not depend on where CVD starts.
- trade_count_imbalance = (buy trades - sell trades) / all trades; positive = buy-heavy.
- large_trade_sell_share = sell volume of large trades / volume of large trades, where trade i
  is large when qty_i >= the ``quantile`` (linear interpolation) of the sizes of the ``window``
  trades strictly before it (at least ``min_trades`` of them, else it is not classified). Only
  earlier trades set the threshold, so there is no look-ahead and a block cannot hide itself by
  raising its own threshold. NaN in bars without a large trade.
"""

from __future__ import annotations

import bisect

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ._bars import bar_last, bar_sum, ffill, place_in_bars


def trade_flow_bars(
    time_ms: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    taker_sell: np.ndarray,
    *,
    interval_ms: int,
    index=None,
    last_close: float = np.nan,
) -> pd.DataFrame:
    """Additive trade aggregates per bar: ``buy``, ``sell`` (base), ``buy_trades``, ``sell_trades``
    (counts) and ``close`` (last price at or before the bar end, carried over empty bars and
    starting from ``last_close``)."""
    grid, pos, inside = place_in_bars(time_ms, "trades", interval_ms=interval_ms, index=index)
    pos = pos[inside]
    qty = np.asarray(qty, dtype=np.float64)[inside]
    sell = np.asarray(taker_sell, dtype=bool)[inside]
    price = np.asarray(price, dtype=np.float64)[inside]
    n = len(grid)
    sell_qty = np.where(sell, qty, 0.0)
    volume = bar_sum(pos, qty, n)
    sells = bar_sum(pos, sell_qty, n)
    trades = bar_sum(pos, None, n)
    sell_trades = bar_sum(pos, sell, n)
    return pd.DataFrame(
        {
            "buy": volume - sells,
            "sell": sells,
            "buy_trades": trades - sell_trades,
            "sell_trades": sell_trades,
            "close": ffill(bar_last(pos, price, n), last_close),
        },
        index=grid,
    )


def taker_sell_ratio(flow: pd.DataFrame) -> pd.Series:
    """sell / (buy + sell) per bar; NaN for bars without volume."""
    volume = flow["buy"] + flow["sell"]
    return (flow["sell"] / volume.where(volume > 0)).rename("taker_sell_ratio")


def delta(flow: pd.DataFrame) -> pd.Series:
    """buy - sell (base) per bar: negative = net taker selling."""
    return (flow["buy"] - flow["sell"]).rename("delta")


def trade_count_imbalance(flow: pd.DataFrame) -> pd.Series:
    """(buy trades - sell trades) / trades per bar: +1 all buys, -1 all sells, NaN without trades."""
    count = flow["buy_trades"] + flow["sell_trades"]
    return ((flow["buy_trades"] - flow["sell_trades"]) / count.where(count > 0)).rename("trade_count_imbalance")


def cvd_slope(delta: pd.Series, *, window: int = 30) -> pd.Series:
    """Least-squares slope of CVD on bar number over the last ``window`` bars (current included).

    With x_k = k - (w-1)/2 the slope is sum(x_k cvd_k) / sum(x_k^2); since sum(x_k) = 0, the CVD
    level before the window cancels and the slope is a fixed weighted sum of the window's last
    w-1 deltas, g_i = sum_{k>=i} x_k / sum(x_k^2). NaN until ``window`` bars are available or if a
    delta in the window is NaN.
    """
    if window < 2:
        raise ValueError("window must be at least 2")
    values = np.asarray(delta, dtype=np.float64)
    x = np.arange(window) - (window - 1) / 2.0
    g = np.cumsum(x[::-1])[::-1][1:] / np.dot(x, x)  # weight of the delta at window offset i = 1..w-1
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        # One dot product per window: no running sum whose round-off depends on the history.
        out[window - 1:] = sliding_window_view(values, window)[:, 1:] @ g
    return pd.Series(out, index=delta.index, name="cvd_slope")


def large_trade_threshold(
    qty: np.ndarray,
    *,
    quantile: float = 0.95,
    window: int = 5_000,
    min_trades: int = 500,
    history: np.ndarray | None = None,
) -> np.ndarray:
    """Per trade, the ``quantile`` of the sizes of the ``window`` trades strictly before it.

    ``history`` holds the sizes of the trades that preceded ``qty`` (only the last ``window``
    matter), so a batch can be classified exactly as it would be inside the full stream. NaN when
    fewer than ``min_trades`` earlier sizes are known.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError("quantile must be within [0, 1]")
    qty = np.asarray(qty, dtype=np.float64)
    prior = np.zeros(0) if history is None else np.asarray(history, dtype=np.float64)[-window:]
    if 0.0 < quantile < 1.0 and len(qty) <= _SHORT_BATCH:
        return _threshold_short(qty, prior, quantile=quantile, window=window, min_trades=max(1, min_trades))
    sizes = pd.Series(np.concatenate((prior, qty)))
    q = sizes.rolling(window, min_periods=max(1, min_trades)).quantile(quantile, interpolation="linear")
    # Shift by one trade: a trade's threshold comes from the trades before it only.
    return q.shift(1).to_numpy()[len(prior):]


# A live batch holds a few dozen trades: a sorted window beats a rolling pass over the whole history.
_SHORT_BATCH = 256


def _threshold_short(qty: np.ndarray, prior: np.ndarray, *, quantile: float, window: int,
                     min_trades: int) -> np.ndarray:
    """large_trade_threshold for a short batch: the same numbers as pandas' rolling quantile (linear
    interpolation between order statistics, the formula and operation order of its skiplist), from one
    sorted copy of the window updated trade by trade."""
    stream = [*prior.tolist(), *qty.tolist()]
    ordered = np.sort(prior).tolist()
    oldest = 0
    out = np.full(len(qty), np.nan)
    for i, size in enumerate(stream[len(prior):]):
        nobs = len(ordered)
        if nobs >= min_trades:
            at = quantile * (nobs - 1)
            low = int(at)
            out[i] = ordered[low] if at == low else ordered[low] + (ordered[low + 1] - ordered[low]) * (at - low)
        bisect.insort(ordered, size)
        if len(ordered) > window:
            del ordered[bisect.bisect_left(ordered, stream[oldest])]
            oldest += 1
    return out


def large_trade_bars(
    time_ms: np.ndarray,
    qty: np.ndarray,
    taker_sell: np.ndarray,
    *,
    interval_ms: int,
    quantile: float = 0.95,
    window: int = 5_000,
    min_trades: int = 500,
    history: np.ndarray | None = None,
    index=None,
) -> pd.DataFrame:
    """Per bar ``large_buy`` and ``large_sell``: base volume of large trades by taker side."""
    grid, pos, inside = place_in_bars(time_ms, "trades", interval_ms=interval_ms, index=index)
    qty = np.asarray(qty, dtype=np.float64)
    threshold = large_trade_threshold(qty, quantile=quantile, window=window, min_trades=min_trades, history=history)
    large = qty >= threshold  # NaN threshold compares False: unclassified trades are not large
    keep = inside & large
    sell = np.asarray(taker_sell, dtype=bool)[keep]
    pos, qty = pos[keep], qty[keep]
    sells = bar_sum(pos, np.where(sell, qty, 0.0), len(grid))
    return pd.DataFrame({"large_buy": bar_sum(pos, qty, len(grid)) - sells, "large_sell": sells}, index=grid)


def large_trade_sell_share(large: pd.DataFrame) -> pd.Series:
    """large_sell / (large_buy + large_sell) per bar; NaN for bars without a large trade."""
    volume = large["large_buy"] + large["large_sell"]
    return (large["large_sell"] / volume.where(volume > 0)).rename("large_trade_sell_share")


def orderflow_components(
    time_ms: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    taker_sell: np.ndarray,
    *,
    interval_ms: int,
    cvd_window: int = 30,
    quantile: float = 0.95,
    large_window: int = 5_000,
    large_min_trades: int = 500,
    index=None,
) -> pd.DataFrame:
    """All order-flow metrics per bar: taker_sell_ratio, delta, cvd_slope, trade_count_imbalance,
    large_trade_sell_share (plus ``close``)."""
    flow = trade_flow_bars(time_ms, price, qty, taker_sell, interval_ms=interval_ms, index=index)
    large = large_trade_bars(time_ms, qty, taker_sell, interval_ms=interval_ms, quantile=quantile,
                             window=large_window, min_trades=large_min_trades, index=flow.index)
    d = delta(flow)
    return pd.DataFrame({
        "taker_sell_ratio": taker_sell_ratio(flow),
        "delta": d,
        "cvd_slope": cvd_slope(d, window=cvd_window),
        "trade_count_imbalance": trade_count_imbalance(flow),
        "large_trade_sell_share": large_trade_sell_share(large),
        "close": flow["close"],
    })


__all__ = [
    "cvd_slope",
    "delta",
    "large_trade_bars",
    "large_trade_sell_share",
    "large_trade_threshold",
    "orderflow_components",
    "taker_sell_ratio",
    "trade_count_imbalance",
    "trade_flow_bars",
]
