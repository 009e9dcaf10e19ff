"""VPIN (Easley, López de Prado & O'Hara 2012) with exact taker sides instead of bulk classification.

The trade volume stream is cut into consecutive buckets of exactly ``bucket_volume`` V (base).
A trade that crosses a boundary is split at it, pro rata, so each bucket holds exactly V; buy and
sell volume come from the trades' taker sides. For bucket k:

    imbalance_k = |buy_k - sell_k| / V
    VPIN_k      = mean(imbalance_{k-n+1} .. imbalance_k)      (the last ``n_buckets`` buckets)

A bucket completes at the time of the trade that fills it. Per bar, ``vpin`` is the VPIN of the
last bucket completed at or before the bar end (carried forward over bars in which no bucket
completes), NaN until ``n_buckets`` buckets exist.

The default V is the input's total volume / 50 (the paper's "daily volume / 50" on the given
span). A live stream needs a fixed V: boundaries must not move as volume arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ._bars import bar_last, check_sorted, ffill, positions, resolve_grid

DEFAULT_BUCKETS_PER_INPUT = 50
DEFAULT_N_BUCKETS = 50
_REL_TOL = 1e-12  # cumulative-volume round-off allowed when deciding that a boundary is reached


@dataclass(frozen=True)
class VolumeBuckets:
    """Complete buckets (``end_ms``, ``buy``, ``sell``, ``imbalance`` per bucket) and the carry:
    volume and buy volume already in the next, incomplete bucket."""

    bucket_volume: float
    end_ms: np.ndarray
    buy: np.ndarray
    sell: np.ndarray
    imbalance: np.ndarray
    carry_volume: float
    carry_buy: float


def volume_buckets(
    time_ms: np.ndarray,
    qty: np.ndarray,
    taker_sell: np.ndarray,
    *,
    bucket_volume: float | None = None,
    carry_volume: float = 0.0,
    carry_buy: float = 0.0,
) -> VolumeBuckets:
    """Split the volume stream into equal-volume buckets (vectorised, trades split exactly).

    ``carry_volume``/``carry_buy`` describe a bucket already partly filled by earlier trades.
    The buy volume as a function of cumulative volume is piecewise linear (slope 1 inside a buy,
    0 inside a sell), so interpolating it at the boundaries k*V splits trades exactly.
    """
    time_ms = check_sorted(time_ms, "trades")
    qty = np.asarray(qty, dtype=np.float64)
    buy_qty = np.where(np.asarray(taker_sell, dtype=bool), 0.0, qty)
    # Knots of the buy curve: origin, the carried partial bucket, then one knot per trade end.
    xs = np.concatenate(([0.0, carry_volume], carry_volume + np.cumsum(qty)))
    ys = np.concatenate(([0.0, carry_buy], carry_buy + np.cumsum(buy_qty)))
    total = float(xs[-1])
    if bucket_volume is None:
        if carry_volume:
            raise ValueError("a carried bucket needs an explicit bucket_volume")
        bucket_volume = total / DEFAULT_BUCKETS_PER_INPUT
    if not bucket_volume > 0:
        empty = np.zeros(0)
        return VolumeBuckets(0.0, np.zeros(0, np.int64), empty, empty, empty, total, float(ys[-1]))
    k = int(np.floor(total / bucket_volume * (1 + _REL_TOL)))
    bounds = bucket_volume * np.arange(k + 1)
    buy_at = np.interp(np.minimum(bounds, total), xs, ys)
    buy = np.diff(buy_at)
    sell = bucket_volume - buy
    # The trade filling boundary j is the first whose cumulative volume reaches it.
    filled = np.searchsorted(xs[2:], bounds[1:] * (1 - _REL_TOL), side="left")
    end_ms = time_ms[np.minimum(filled, len(time_ms) - 1)] if k else np.zeros(0, np.int64)
    return VolumeBuckets(
        bucket_volume=float(bucket_volume),
        end_ms=np.asarray(end_ms, dtype=np.int64),
        buy=buy,
        sell=sell,
        imbalance=np.abs(buy - sell) / bucket_volume,
        carry_volume=float(max(total - k * bucket_volume, 0.0)),
        carry_buy=float(min(max(ys[-1] - buy_at[-1], 0.0), max(total - k * bucket_volume, 0.0))),
    )


def rolling_vpin(imbalance: np.ndarray, *, n_buckets: int = DEFAULT_N_BUCKETS,
                 history: np.ndarray | None = None) -> np.ndarray:
    """Mean of the last ``n_buckets`` imbalances per bucket (``history`` = earlier buckets' imbalances)."""
    if n_buckets < 1:
        raise ValueError("n_buckets must be at least 1")
    prior = np.zeros(0) if history is None else np.asarray(history, dtype=np.float64)
    prior = prior[max(len(prior) - (n_buckets - 1), 0):]
    values = np.concatenate((prior, np.asarray(imbalance, dtype=np.float64)))
    out = np.full(len(values), np.nan)
    if len(values) >= n_buckets:
        out[n_buckets - 1:] = sliding_window_view(values, n_buckets).mean(axis=1)
    return out[len(prior):]


def vpin(
    time_ms: np.ndarray,
    qty: np.ndarray,
    taker_sell: np.ndarray,
    *,
    bucket_volume: float | None = None,
    n_buckets: int = DEFAULT_N_BUCKETS,
) -> pd.Series:
    """VPIN per completed bucket, indexed by the bucket's completion time (ms)."""
    b = volume_buckets(time_ms, qty, taker_sell, bucket_volume=bucket_volume)
    return pd.Series(rolling_vpin(b.imbalance, n_buckets=n_buckets), index=pd.Index(b.end_ms, name="end_ms"),
                     name="vpin")


def vpin_to_bars(end_ms: np.ndarray, values: np.ndarray, *, interval_ms: int, index, last: float = np.nan
                 ) -> pd.Series:
    """Per bar, the value of the last bucket completed at or before the bar end (``last`` before any)."""
    grid = resolve_grid(np.asarray(end_ms, dtype=np.int64), interval_ms=interval_ms, index=index)
    pos, inside = positions(end_ms, grid, interval_ms=interval_ms)
    before = (pos < 0)
    if before.any():
        # Buckets completed before the grid set the starting value.
        tail = np.asarray(values)[before]
        last = tail[-1] if np.isfinite(tail[-1]) else last
    per_bar = bar_last(pos[inside], np.asarray(values, dtype=np.float64)[inside], len(grid))
    return pd.Series(ffill(per_bar, last), index=grid, name="vpin")


def vpin_bars(
    time_ms: np.ndarray,
    qty: np.ndarray,
    taker_sell: np.ndarray,
    *,
    interval_ms: int,
    bucket_volume: float | None = None,
    n_buckets: int = DEFAULT_N_BUCKETS,
    index=None,
) -> pd.Series:
    """VPIN per bar: the VPIN of the last bucket completed at or before the bar end."""
    time_ms = check_sorted(time_ms, "trades")
    series = vpin(time_ms, qty, taker_sell, bucket_volume=bucket_volume, n_buckets=n_buckets)
    grid = resolve_grid(time_ms, interval_ms=interval_ms, index=index)
    return vpin_to_bars(series.index.to_numpy(), series.to_numpy(), interval_ms=interval_ms, index=grid)
