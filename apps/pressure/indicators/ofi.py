"""Order Flow Imbalance (Cont, Kukanov & Stoikov 2014) from best bid/ask updates, and its price impact.

For consecutive top-of-book states n-1, n (bid price Pb, bid size qb, ask price Pa, ask size qa):

    e_n = 1{Pb_n >= Pb_n-1} qb_n - 1{Pb_n <= Pb_n-1} qb_n-1 - 1{Pa_n <= Pa_n-1} qa_n + 1{Pa_n >= Pa_n-1} qa_n-1

so bids added or lifted in price count positive, bids cancelled/hit and asks added count negative.
``ofi`` per bar = sum of e_n over the updates in the bar (base currency); negative = selling
pressure. The first update has no predecessor and contributes 0 unless ``previous`` is given.

Price impact: OLS of the mid-price change per bar (mid at the bar end minus mid at the previous
bar end) on the bar's OFI over a rolling window of bars: ``beta`` (price units per unit of OFI)
and ``r2``. CKS find this relation close to linear with high R^2 at short horizons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._bars import bar_last, bar_sum, ffill, place_in_bars, rolling_ols

Quote = tuple[float, float, float, float]  # bid_px, bid_qty, ask_px, ask_qty


def ofi_events(
    bid_px: np.ndarray,
    bid_qty: np.ndarray,
    ask_px: np.ndarray,
    ask_qty: np.ndarray,
    *,
    previous: Quote | None = None,
) -> np.ndarray:
    """e_n for every update (vectorised). ``previous`` is the state before the first update."""
    pb, qb, pa, qa = (np.asarray(a, dtype=np.float64) for a in (bid_px, bid_qty, ask_px, ask_qty))
    if len(pb) == 0:
        return np.zeros(0)
    if previous is None:
        previous = (pb[0], qb[0], pa[0], qa[0])  # makes e_0 = qb - qb - qa + qa = 0
    pb0, qb0, pa0, qa0 = (np.concatenate(([p], a[:-1])) for p, a in zip(previous, (pb, qb, pa, qa), strict=True))
    return ((pb >= pb0) * qb - (pb <= pb0) * qb0 - (pa <= pa0) * qa + (pa >= pa0) * qa0).astype(np.float64)


def ofi_bars(
    time_ms: np.ndarray,
    bid_px: np.ndarray,
    bid_qty: np.ndarray,
    ask_px: np.ndarray,
    ask_qty: np.ndarray,
    *,
    interval_ms: int,
    index=None,
    previous: Quote | None = None,
    last_mid: float = np.nan,
) -> pd.DataFrame:
    """Per bar ``ofi`` (sum of e_n), ``updates`` (count) and ``mid`` (mid at or before the bar end,
    carried over bars without updates and starting from ``last_mid``)."""
    grid, pos, inside = place_in_bars(time_ms, "quotes", interval_ms=interval_ms, index=index)
    e = ofi_events(bid_px, bid_qty, ask_px, ask_qty, previous=previous)
    mid = (np.asarray(bid_px, dtype=np.float64) + np.asarray(ask_px, dtype=np.float64)) / 2.0
    pos, n = pos[inside], len(grid)
    return pd.DataFrame(
        {"ofi": bar_sum(pos, e[inside], n), "updates": bar_sum(pos, None, n),
         "mid": ffill(bar_last(pos, mid[inside], n), last_mid)},
        index=grid,
    )


def price_impact(mid: pd.Series, ofi: pd.Series, *, window: int = 30, min_periods: int | None = None) -> pd.DataFrame:
    """Rolling OLS of mid change per bar on OFI per bar: columns ``beta`` and ``r2``.

    NaN with fewer than ``min_periods`` (default ``window``) usable bars or without OFI variance.
    """
    fit = rolling_ols(ofi, mid.diff(), window=window, min_periods=min_periods)
    return fit[["beta", "r2"]]
