"""Bar-grid and rolling helpers shared by the indicator families (pure numpy/pandas, private).

A bar grid is a contiguous ``pd.Index`` of bar start times in ms (UTC exchange time), named
``bucket_ms``, one row per ``interval_ms`` with no gaps: empty bars are rows too, so windows
"over the last n bars" always mean n intervals of wall-clock time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

INDEX_NAME = "bucket_ms"


def bar_grid(start_ms: int, stop_ms: int, *, interval_ms: int) -> pd.Index:
    """Contiguous bar starts covering the times ``start_ms`` .. ``stop_ms`` (both inclusive)."""
    if interval_ms <= 0:
        raise ValueError("interval_ms must be positive")
    first = start_ms - start_ms % interval_ms
    last = stop_ms - stop_ms % interval_ms
    return pd.Index(np.arange(first, last + 1, interval_ms, dtype=np.int64), name=INDEX_NAME)


def empty_grid() -> pd.Index:
    return pd.Index(np.zeros(0, dtype=np.int64), name=INDEX_NAME)


def resolve_grid(time_ms: np.ndarray, *, interval_ms: int, index=None) -> pd.Index:
    """The given index (validated contiguous), or the grid spanning the events."""
    if index is not None:
        index = pd.Index(np.asarray(index, dtype=np.int64), name=INDEX_NAME)
        if len(index) > 1 and not np.all(np.diff(index.to_numpy()) == interval_ms):
            raise ValueError("index must be contiguous bar starts, one per interval_ms")
        if len(index) and index[0] % interval_ms:
            raise ValueError("index must hold bar starts (multiples of interval_ms)")
        return index
    if len(time_ms) == 0:
        return empty_grid()
    return bar_grid(int(time_ms[0]), int(time_ms[-1]), interval_ms=interval_ms)


def check_sorted(time_ms: np.ndarray, what: str = "events") -> np.ndarray:
    time_ms = np.asarray(time_ms, dtype=np.int64)
    if len(time_ms) > 1 and np.any(time_ms[1:] < time_ms[:-1]):
        raise ValueError(f"{what} must be sorted by time")
    return time_ms


def positions(time_ms: np.ndarray, grid: pd.Index, *, interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Row of each event in the grid and a mask of events that fall inside it."""
    if len(grid) == 0:
        return np.zeros(len(time_ms), dtype=np.int64), np.zeros(len(time_ms), dtype=bool)
    pos = (np.asarray(time_ms, dtype=np.int64) - int(grid[0])) // interval_ms
    inside = (pos >= 0) & (pos < len(grid))
    return pos, inside


def place_in_bars(time_ms: np.ndarray, what: str, *, interval_ms: int,
                  index=None) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Events (their times checked sorted) placed in bars: the grid (``index``, or the one spanning them),
    each event's row in it and the mask of the events inside it."""
    time_ms = check_sorted(time_ms, what)
    grid = resolve_grid(time_ms, interval_ms=interval_ms, index=index)
    pos, inside = positions(time_ms, grid, interval_ms=interval_ms)
    return grid, pos, inside


def bar_sum(pos: np.ndarray, weights: np.ndarray | None, n: int) -> np.ndarray:
    """Per-row sum (or count when weights is None) of events already restricted to the grid."""
    if weights is None:
        return np.bincount(pos, minlength=n).astype(np.float64)
    return np.bincount(pos, weights=np.asarray(weights, dtype=np.float64), minlength=n)


def bar_last(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Value of the last event of each row (events sorted by time), NaN for rows without events."""
    out = np.full(n, np.nan)
    if len(pos):
        ends = np.flatnonzero(np.concatenate((pos[1:] != pos[:-1], [True])))
        out[pos[ends]] = values[ends]
    return out


def ffill(values: np.ndarray, initial: float = np.nan) -> np.ndarray:
    """Forward-fill NaNs along a 1-D array, starting from ``initial``."""
    values = np.asarray(values, dtype=np.float64)
    filled = np.concatenate(([initial], values))
    idx = np.where(np.isnan(filled), 0, np.arange(len(filled)))
    np.maximum.accumulate(idx, out=idx)
    return filled[idx][1:]


def windows(values: np.ndarray, window: int) -> np.ndarray:
    """Rows ``t`` hold ``values[t - window + 1 .. t]`` (NaN-padded at the start): a view, no copy of data."""
    values = np.asarray(values, dtype=np.float64)
    padded = np.concatenate((np.full(window - 1, np.nan), values))
    return sliding_window_view(padded, window)


def rolling_sum(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the finite values among the last ``window`` rows (current included).

    Each window is summed on its own (not by a running add/remove), so a row's figure does not
    drift with the length of the history before it: the incremental path relies on that.
    """
    w = windows(values, window)
    finite = np.isfinite(w)
    return np.where(finite, w, 0.0).sum(axis=1), finite.sum(axis=1)


def rolling_ols(x, y, *, window: int, min_periods: int | None = None) -> pd.DataFrame:
    """OLS of y on x with intercept over the last ``window`` rows (current included), per row.

    Returns ``beta`` (slope), ``r2`` and ``n`` (pairs used; pairs with a NaN are skipped). The
    slope is NaN with fewer than ``min_periods`` pairs (default: the full window) or when x has
    no variance (relative to its magnitude), r2 is NaN when y has none either.
    """
    index = x.index if isinstance(x, pd.Series) else None
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if window < 2:
        raise ValueError("window must be at least 2")
    min_periods = window if min_periods is None else max(2, min_periods)
    valid = np.isfinite(x) & np.isfinite(y)
    xv = np.where(valid, x, np.nan)
    yv = np.where(valid, y, np.nan)
    sx, n = rolling_sum(xv, window)
    sy, _ = rolling_sum(yv, window)
    sxx, _ = rolling_sum(xv * xv, window)
    syy, _ = rolling_sum(yv * yv, window)
    sxy, _ = rolling_sum(xv * yv, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        nn = np.maximum(n, 1)
        cov = sxy - sx * sy / nn
        varx = sxx - sx * sx / nn
        vary = syy - sy * sy / nn
        # Round-off leaves tiny non-zero variances for constant inputs: treat them as zero.
        okx = (n >= min_periods) & (varx > 1e-12 * sxx) & (varx > 0)
        oky = okx & (vary > 1e-12 * syy) & (vary > 0)
        beta = np.where(okx, cov / np.where(okx, varx, 1.0), np.nan)
        r2 = np.where(oky, cov * cov / np.where(oky, varx * vary, 1.0), np.nan)
    return pd.DataFrame({"beta": beta, "r2": np.clip(r2, 0.0, 1.0), "n": n}, index=index)


def trailing_median(series: pd.Series, *, window: int, min_periods: int) -> pd.Series:
    """Median of the previous ``window`` rows (current excluded), NaN with fewer than ``min_periods``."""
    return series.shift(1).rolling(window, min_periods=min_periods).median()

