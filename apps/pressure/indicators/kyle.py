"""Kyle's lambda: price impact per unit of signed volume, from bars.

Per bar t: dp_t = close_t - close_{t-1} (last trade prices, carried over bars without trades) and
q_t = delta_t = taker buy - taker sell (base). Over the last ``window`` bars (current included)

    kyles_lambda = cov(dp, q) / var(q)        (OLS slope of dp on q, with intercept)

in quote price per unit of base. NaN with fewer than ``min_periods`` usable bars, or when the
signed volume has no variance in the window (the slope is undefined, not infinite).
"""

from __future__ import annotations

import pandas as pd

from ._bars import rolling_ols


def kyles_lambda(close: pd.Series, signed_volume: pd.Series, *, window: int = 30,
                 min_periods: int | None = None) -> pd.Series:
    """Rolling OLS slope of close-to-close price change on signed volume (delta, base)."""
    dp = close.astype(float).ffill().diff()
    fit = rolling_ols(signed_volume.astype(float), dp, window=window, min_periods=min_periods)
    return fit["beta"].rename("kyles_lambda")
