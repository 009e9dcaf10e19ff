"""Order-book state per bar from book samples: band imbalance, bid-depth withdrawal, spread widening.

A book sample is (time_ms, best bid, best ask, bid depth per band, ask depth per band), depth in
quote currency within b% of mid, as the app stores them (README "Definitions"). Samples must be
sorted by time. Per bar, each figure is the mean over the bar's samples (NaN without samples).

Definitions:

- imbalance_<band> = mean of (bid - ask) / (bid + ask) depth; -1 all asks (selling pressure).
- bid_withdrawal = 1 - bid depth / median bid depth of the previous ``window`` bars: 0.3 means
  30% of the usual bids are gone (positive = withdrawn, negative = more bids than usual).
- spread_widening = spread_bps / median spread_bps of the previous ``window`` bars - 1, a ratio:
  1.0 means twice the usual spread.

The trailing medians exclude the current bar, so a sudden change is measured against what came
before it, not diluted by itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from apps.pressure.bars import BAND_NAMES, imbalance, spread_bps

from ._bars import bar_sum, place_in_bars, trailing_median


def band_names(bid_depth: np.ndarray, bands: tuple[str, ...] | None = None) -> tuple[str, ...]:
    columns = 1 if np.ndim(bid_depth) == 1 else np.shape(bid_depth)[1]
    if bands is not None:
        if len(bands) != columns:
            raise ValueError(f"{len(bands)} band names for {columns} depth columns")
        return tuple(bands)
    return BAND_NAMES if columns == len(BAND_NAMES) else tuple(f"band{i}" for i in range(columns))


def book_sample_sums(
    time_ms: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_depth: np.ndarray,
    ask_depth: np.ndarray,
    *,
    interval_ms: int,
    bands: tuple[str, ...],
    index=None,
) -> tuple[pd.Index, dict[str, np.ndarray]]:
    """The bar grid and additive per-bar sums and counts of the sample figures on it (so batches can be merged):
    ``samples``, ``spread_sum``/``spread_n`` and per band ``imbalance_sum_<b>``/``imbalance_n_<b>``,
    ``bid_depth_sum_<b>``, ``ask_depth_sum_<b>``, ``depth_n_<b>``."""
    grid, pos, inside = place_in_bars(time_ms, "book samples", interval_ms=interval_ms, index=index)
    bid_depth = np.asarray(bid_depth, dtype=np.float64).reshape(len(pos), len(bands))
    ask_depth = np.asarray(ask_depth, dtype=np.float64).reshape(len(pos), len(bands))
    pos = pos[inside]
    n = len(grid)
    spreads = spread_bps(np.asarray(bid, dtype=np.float64)[inside], np.asarray(ask, dtype=np.float64)[inside])
    bd, ad = bid_depth[inside], ask_depth[inside]
    imb = imbalance(bd, ad)
    cols = {"samples": bar_sum(pos, None, n)}
    finite = np.isfinite(spreads)
    cols["spread_sum"] = bar_sum(pos, np.where(finite, spreads, 0.0), n)
    cols["spread_n"] = bar_sum(pos, finite, n)
    for j, band in enumerate(bands):
        ok = np.isfinite(imb[:, j])
        cols[f"imbalance_sum_{band}"] = bar_sum(pos, np.where(ok, imb[:, j], 0.0), n)
        cols[f"imbalance_n_{band}"] = bar_sum(pos, ok, n)
        ok = np.isfinite(bd[:, j]) & np.isfinite(ad[:, j])
        cols[f"bid_depth_sum_{band}"] = bar_sum(pos, np.where(ok, bd[:, j], 0.0), n)
        cols[f"ask_depth_sum_{band}"] = bar_sum(pos, np.where(ok, ad[:, j], 0.0), n)
        cols[f"depth_n_{band}"] = bar_sum(pos, ok, n)
    return grid, cols


def book_means(sums: dict[str, np.ndarray], bands: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-bar means from :func:`book_sample_sums`: ``spread_bps``, ``imbalance_<b>``,
    ``bid_depth_<b>``, ``ask_depth_<b>`` (NaN for bars without samples) and ``samples``."""
    def mean(total: str, count: str) -> np.ndarray:
        n = sums[count]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, sums[total] / np.where(n > 0, n, 1.0), np.nan)

    out = {"samples": sums["samples"], "spread_bps": mean("spread_sum", "spread_n")}
    for band in bands:
        out[f"imbalance_{band}"] = mean(f"imbalance_sum_{band}", f"imbalance_n_{band}")
        out[f"bid_depth_{band}"] = mean(f"bid_depth_sum_{band}", f"depth_n_{band}")
        out[f"ask_depth_{band}"] = mean(f"ask_depth_sum_{band}", f"depth_n_{band}")
    return out


def book_sample_bar_arrays(
    time_ms: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_depth: np.ndarray,
    ask_depth: np.ndarray,
    *,
    interval_ms: int,
    bands: tuple[str, ...] | None = None,
    index=None,
) -> tuple[pd.Index, dict[str, np.ndarray]]:
    """:func:`book_sample_bars` as the bar grid and plain arrays: every live batch computes them, and building
    DataFrames cost more than the arithmetic."""
    bands = band_names(bid_depth, bands)
    grid, sums = book_sample_sums(time_ms, bid, ask, bid_depth, ask_depth, interval_ms=interval_ms, bands=bands,
                                  index=index)
    return grid, book_means(sums, bands)


def book_sample_bars(*args, **kwargs) -> pd.DataFrame:
    """Mean spread, band imbalances and band depths per bar (see :func:`book_means`) as a DataFrame on the bar
    grid; the arguments of :func:`book_sample_bar_arrays`."""
    grid, means = book_sample_bar_arrays(*args, **kwargs)
    return pd.DataFrame(means, index=grid)


def bid_withdrawal(bid_depth, *, window: int = 60, min_periods: int = 10):
    """1 - depth / trailing median depth (previous ``window`` bars), per column for a DataFrame.

    NaN until ``min_periods`` earlier bars have depth, and where the median is not positive.
    """
    median = trailing_median(bid_depth, window=window, min_periods=min_periods)
    out = 1.0 - bid_depth / median.where(median > 0)
    return out.rename("bid_withdrawal") if isinstance(out, pd.Series) else out


def spread_widening(spread: pd.Series, *, window: int = 60, min_periods: int = 10) -> pd.Series:
    """spread_bps / trailing median spread_bps (previous ``window`` bars) - 1; NaN where undefined."""
    median = trailing_median(spread, window=window, min_periods=min_periods)
    return (spread / median.where(median > 0) - 1.0).rename("spread_widening")


def orderbook_components(
    time_ms: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_depth: np.ndarray,
    ask_depth: np.ndarray,
    *,
    interval_ms: int,
    bands: tuple[str, ...] | None = None,
    window: int = 60,
    min_periods: int = 10,
    index=None,
) -> pd.DataFrame:
    """Per bar: ``spread_bps``, ``spread_widening``, ``imbalance_<b>`` and ``bid_withdrawal_<b>``."""
    bands = band_names(bid_depth, bands)
    bars = book_sample_bars(time_ms, bid, ask, bid_depth, ask_depth, interval_ms=interval_ms, bands=bands,
                            index=index)
    out = {"spread_bps": bars["spread_bps"],
           "spread_widening": spread_widening(bars["spread_bps"], window=window, min_periods=min_periods)}
    for band in bands:
        out[f"imbalance_{band}"] = bars[f"imbalance_{band}"]
        out[f"bid_withdrawal_{band}"] = bid_withdrawal(bars[f"bid_depth_{band}"], window=window,
                                                       min_periods=min_periods)
    return pd.DataFrame(out, index=bars.index)
